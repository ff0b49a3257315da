"""`ClusterState.prio_nodes` (nodes of running jobs per priority, kept at every start, adopt and
stop) bounds `nodes_by_top_prio` from above, so `_enough_nodes` may say no from it without
flushing the lazy summaries and still answer as the exact count does."""

from __future__ import annotations

import random

import testkit
from cortex.scheduler.preemption import _enough, _enough_nodes
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job


def _below(hist: dict[int, int], p: int, or_equal: bool) -> int:
    return sum(c for q, c in hist.items() if q < p or (or_equal and q == p))


def _recount(st: ClusterState) -> list[dict[int, int]]:
    out: list[dict[int, int]] = [{} for _ in st.gpn]
    for jid, job in st.running.items():
        alloc = st.allocations[jid]
        hist = out[alloc.flavor]
        hist[job.priority] = hist.get(job.priority, 0) + len(alloc.placement)
    return out


def test_the_bound_follows_starts_and_stops_and_never_undercounts() -> None:
    rng = random.Random(5)
    st, pend, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, one flavor
    running: list[Job] = []
    jid = 0
    tried = 0
    for step in range(400):
        free = [n for n in range(8) if st.node_free[n]]
        if free and (not running or rng.random() < 0.55):
            n = rng.choice(free)
            k = rng.randint(1, st.node_free[n])
            whole = [m for m in free if st.node_free[m] == 8 and m != n]
            placement = ((n, k),) if k < 8 or not whole else ((n, 8), (whole[0], 8))
            jid += 1
            prio = rng.choice([10, 100, 1000])
            running.append(testkit.running_job(st, jid, placement, prio=prio))
        elif running:
            job = running.pop(rng.randrange(len(running)))
            st.stop(job, job.queue_idx)
        assert st.prio_nodes == [{q: c for q, c in h.items() if c} for h in _recount(st)]
        exact = st.nodes_by_top_prio[0]
        snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
        for p in (10, 100, 1000, 5000):
            for or_equal in (False, True):
                assert _below(st.prio_nodes[0], p, or_equal) >= _below(exact, p, or_equal)
                for alloc in (4, 8, 16, 24, 40):
                    head = Job(-1, "h", "a", alloc, 1.0)
                    head.priority = p
                    # The two-step answer equals the exact count's alone.
                    want = _enough(st, st.nodes_by_top_prio, head, 0, alloc, or_equal)
                    assert _enough_nodes(snap, head, 0, alloc, or_equal) == want, step
                    tried += not _enough(st, st.prio_nodes, head, 0, alloc, or_equal)
    assert tried > 0  # the bound alone said no at least once
