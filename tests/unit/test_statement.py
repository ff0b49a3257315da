"""Statement rollback restores the state exactly, iteration order included.

Placement breaks ties by the insertion order of the indices (`part`, `pod_whole`, `pod_bucket`),
and the victim search reads `node_jobs` in order, so a rollback that leaves the same sets in
another order changes later decisions. `testkit.state_contents` compares in order.
"""

from __future__ import annotations

import numpy as np

import testkit
from cortex.scheduler.statement import Statement
from cortex.workload.job import Job

_contents = testkit.state_contents


def _pending(jid: int, gpus: int) -> Job:
    job = Job(jid, f"p{jid}", "a", gpus, 1.0)
    job.queue_idx = 0
    return job


def test_rollback_over_two_marks_restores_a_bucket_touched_in_both() -> None:
    # Nodes 0, 4 and 7 have 4 GPUs free: part[4] == [0, 4, 7]. Taking 2 GPUs on node 0, then
    # (after a mark) 2 on node 4, deletes from part[4] in both segments.
    st, _, _ = testkit.setup_cycle()
    for jid, n in ((100, 0), (101, 4), (102, 7)):
        testkit.running_job(st, jid, ((n, 4),))
    assert list(st.part[0][4]) == [0, 4, 7]
    before = _contents(st)
    stmt = Statement(st)
    stmt.allocate(_pending(1, 2), 0, ((0, 2),))
    mid = _contents(st)
    mark = stmt.mark()
    stmt.allocate(_pending(2, 2), 0, ((4, 2),))
    assert list(st.part[0][4]) == [7]
    stmt.rollback(mark)
    assert list(st.part[0][4]) == [4, 7]  # node 4 back in its place, before 7
    assert _contents(st) == mid
    stmt.rollback()
    assert list(st.part[0][4]) == [0, 4, 7]
    assert _contents(st) == before


def test_rollback_of_an_eviction_restores_node_jobs_allocations_and_pod_order() -> None:
    # Node 0 runs jobs 10 then 11 (4 GPUs each); pod 0's whole nodes are 1, 2, 3. Evicting 10
    # and taking whole node 2 deletes from node_jobs[0], allocations and pod_whole[0].
    st, _, _ = testkit.setup_cycle()
    ten = testkit.running_job(st, 10, ((0, 4),))
    testkit.running_job(st, 11, ((0, 4),))
    assert list(st.node_jobs[0]) == [10, 11]
    assert list(st.pod_whole[0]) == [1, 2, 3]
    before = _contents(st)
    stmt = Statement(st)
    stmt.evict(ten)
    stmt.allocate(_pending(1, 8), 0, ((2, 8),))
    assert list(st.node_jobs[0]) == [11] and list(st.pod_whole[0]) == [1, 3]
    stmt.rollback()
    assert list(st.node_jobs[0]) == [10, 11]
    assert list(st.allocations) == [10, 11]
    assert list(st.pod_whole[0]) == [1, 2, 3]
    assert _contents(st) == before


def test_random_statements_roll_back_exactly() -> None:
    # Seeded random allocations and evictions with marks in between; after rolling back to
    # each mark the state equals its copy taken at that mark, order included.
    rng = np.random.default_rng(11)
    for _ in range(25):
        st, _, _ = testkit.setup_cycle()
        running = []
        jid = 100
        for n in range(8):
            left = 8
            while left and rng.random() < 0.6:
                k = int(rng.integers(1, left + 1))
                running.append(testkit.running_job(st, jid, ((n, k),)))
                jid += 1
                left -= k
        stmt = Statement(st)
        marks = [(stmt.mark(), _contents(st))]
        for step in range(12):
            if running and rng.random() < 0.4:
                stmt.evict(running.pop(int(rng.integers(len(running)))))
            else:
                free = [n for n in range(8) if st.node_free[n]]
                if not free:
                    continue
                n = int(rng.choice(free))
                k = int(rng.integers(1, st.node_free[n] + 1))
                stmt.allocate(_pending(1000 + step, k), 0, ((n, k),))
            if rng.random() < 0.3:
                marks.append((stmt.mark(), _contents(st)))
        for m, snap in reversed(marks):
            stmt.rollback(m)
            assert _contents(st) == snap
