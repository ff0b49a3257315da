"""The victim search on hand-built states: which jobs a pending one evicts, and why.

Fleet `tiny`: 2 pods x 4 nodes x 8 GPUs (nodes 0-3 in pod 0, 4-7 in pod 1). Priorities:
production 1000, normal 100, preemptible 10. Every running job here started long before
`now`, so min_runtime_s (600 s) never stands in the way unless a case says so. Nodes that a case
does not use run a production job, which a production preemptor may not evict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import testkit
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.preemption import PriorityReclaim
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState, Placement
from cortex.scheduler.victims import find_victims
from cortex.workload.job import Job

PROD, NORMAL, LOW = 1000, 100, 10


def _state(fill_except: set[int]) -> tuple[ClusterState, PendingQueues]:
    st, pend, _ = testkit.setup_cycle()
    for n in range(8):
        if n not in fill_except:
            _run(st, 900 + n, ((n, 8),), prio=PROD)
    return st, pend


def _run(st: ClusterState, jid: int, placement: Placement, **kw: Any) -> Job:
    return testkit.running_job(st, jid, placement, **{"start": -1e6, **kw})


def _victims(
    st: ClusterState, pend: PendingQueues, gang: int, prio: int = PROD
) -> list[int] | None:
    job = Job(1, "p", "a", gang, 100.0)
    job.queue_idx, job.priority = 0, prio
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    before = testkit.state_contents(st)
    got = find_victims(snap, PriorityReclaim(), gang, 0, job)
    assert testkit.state_contents(st) == before  # the search only reads
    return got


# ---- a gang within one node ------------------------------------------------------------------
def test_single_node_evicts_the_lowest_priority_of_two_equal_jobs() -> None:
    # Node 0: job 10 (4 GPUs, normal) and job 11 (4 GPUs, preemptible), nothing free. A 4-GPU
    # production job needs one of them gone; both cost 4 GPUs, so priority decides: 11.
    st, pend = _state({0})
    _run(st, 10, ((0, 4),), prio=NORMAL)
    _run(st, 11, ((0, 4),), prio=LOW)
    assert _victims(st, pend, 4) == [11]


def test_single_node_evicts_the_smallest_job_that_suffices() -> None:
    # Node 0: 2 free, job 10 holds 2, job 11 holds 4 (both normal). A 4-GPU gang needs 2 more:
    # evicting 10 gives 2 + 2 = 4. Evicting the larger 11 would also fit but cost 4, not 2.
    st, pend = _state({0})
    _run(st, 10, ((0, 2),), prio=NORMAL)
    _run(st, 11, ((0, 4),), prio=NORMAL)
    assert _victims(st, pend, 4) == [10]


def test_single_node_drops_a_victim_a_later_one_made_needless() -> None:
    # Node 0 is full: job 10 (1 GPU, preemptible) and job 11 (7 GPUs, normal). A 7-GPU gang:
    # lowest priority first takes 10 (1 free: not enough), then 11 (8 free); without 10 there
    # are still 7 free, so 10 keeps running.
    st, pend = _state({0})
    _run(st, 10, ((0, 1),), prio=LOW)
    _run(st, 11, ((0, 7),), prio=NORMAL)
    assert _victims(st, pend, 7) == [11]


def test_single_node_prefers_the_node_of_lower_priority_victims() -> None:
    # Node 0 runs job 20 (8 GPUs, normal), node 1 runs job 21 (8, preemptible): equal cost in
    # GPUs, so the preemptible one goes.
    st, pend = _state({0, 1})
    _run(st, 20, ((0, 8),), prio=NORMAL)
    _run(st, 21, ((1, 8),), prio=LOW)
    assert _victims(st, pend, 8) == [21]


def test_single_node_costs_a_gang_victim_by_its_whole_allocation() -> None:
    # Nodes 0-1 run job 30 (16 GPUs, normal), node 2 runs job 31 (8 GPUs, normal). Freeing a
    # node of 30 stops all 16 of its GPUs; 31 costs 8. Node 0 comes first by id and top
    # priority; the whole-allocation cost must still pick 31.
    st, pend = _state({0, 1, 2})
    _run(st, 30, ((0, 8), (1, 8)), prio=NORMAL)
    _run(st, 31, ((2, 8),), prio=NORMAL)
    assert _victims(st, pend, 8) == [31]


def test_single_node_skips_nodes_with_only_ineligible_jobs_and_recent_starts() -> None:
    # Node 0: job 40 (normal) started 100 s ago, under min_runtime_s (600 s): not a victim.
    # Node 1: job 41 (normal) started long ago. The search must go on to node 1.
    st, pend = _state({0, 1})
    _run(st, 40, ((0, 8),), prio=NORMAL, start=-100.0)
    _run(st, 41, ((1, 8),), prio=NORMAL)
    assert _victims(st, pend, 8) == [41]


def test_single_node_finds_nothing_when_no_job_may_go() -> None:
    st, pend = _state(set())
    assert _victims(st, pend, 1) is None
    # A normal preemptor may not evict normal jobs of its own queue either.
    st2, pend2 = _state({0})
    _run(st2, 10, ((0, 8),), prio=NORMAL)
    assert _victims(st2, pend2, 8, prio=NORMAL) is None


# ---- gangs of whole nodes --------------------------------------------------------------------
def test_gang_evicts_lower_priority_before_cheaper() -> None:
    # Pod 0: nodes 0-3 each run an 8-GPU normal job (50-53). Pod 1: a 32-GPU preemptible job 60.
    # A 16-GPU gang (2 nodes): pod 0 costs (normal, 16), pod 1 (preemptible, 32). Priority
    # comes first: 60 goes although it costs more GPUs.
    st, pend = _state(set(range(8)))
    for n in range(4):
        _run(st, 50 + n, ((n, 8),), prio=NORMAL)
    _run(st, 60, tuple((n, 8) for n in range(4, 8)), prio=LOW)
    assert _victims(st, pend, 16) == [60]


def test_gang_costs_victims_by_their_whole_allocation() -> None:
    # Pod 0: a 32-GPU normal job 70 on nodes 0-3. Pod 1: 8-GPU normal jobs 71, 72 on nodes 4, 5;
    # production on 6, 7. Two nodes from pod 0 stop all of 70 (32 GPUs); from pod 1 they cost
    # 8 + 8 = 16. Per node both pods look the same (8 GPUs in use, top priority normal).
    st, pend = _state({0, 1, 2, 3, 4, 5})
    _run(st, 70, tuple((n, 8) for n in range(4)), prio=NORMAL)
    _run(st, 71, ((4, 8),), prio=NORMAL)
    _run(st, 72, ((5, 8),), prio=NORMAL)
    assert _victims(st, pend, 16) == [71, 72]


def test_gang_uses_free_nodes_and_drops_a_needless_victim() -> None:
    # Pod 0: node 0 free, node 1 runs preemptible job 80 (8 GPUs), nodes 2-3 run normal job 81
    # (16). A 24-GPU gang needs 3 nodes, 2 beyond the free one: 80 first (1 node, not enough),
    # then 81 (2 nodes); 81 alone suffices, so 80 keeps running. Cost (normal, 16).
    st, pend = _state({0, 1, 2, 3})
    _run(st, 80, ((1, 8),), prio=LOW)
    _run(st, 81, ((2, 8), (3, 8)), prio=NORMAL)
    assert _victims(st, pend, 24) == [81]


def test_gang_keeps_searching_past_a_pod_with_an_ineligible_job() -> None:
    # Pod 1 looks cheapest by its node summaries: nodes 4, 5 each hold a 4-GPU normal job but
    # 5's (job 91) started 100 s ago, under min_runtime_s. Pod 0 holds a 16-GPU normal job 92
    # on nodes 0-1. The 16-GPU gang must fall back to pod 0 and evict 92.
    st, pend = _state({0, 1, 4, 5})
    _run(st, 90, ((4, 4),), prio=NORMAL)
    _run(st, 91, ((5, 4),), prio=NORMAL, start=-100.0)
    _run(st, 92, ((0, 8), (1, 8)), prio=NORMAL)
    assert _victims(st, pend, 16) == [92]


def test_gang_across_pods_skips_ineligible_nodes() -> None:
    # 40 GPUs = 5 nodes, more than a pod. Nodes 0-7 run 8-GPU normal jobs 100-107, except node
    # 0 (production). Good nodes: 1-3 (pod 0) and 4-7 (pod 1): pod 1 first (4 nodes, the most),
    # then node 1 of pod 0 (lowest id among equal nodes).
    st, pend = _state(set(range(1, 8)))
    for n in range(1, 8):
        _run(st, 100 + n, ((n, 8),), prio=NORMAL)
    got = _victims(st, pend, 40)
    assert got is not None
    assert sorted(got) == [101, 104, 105, 106, 107]


def test_gang_finds_nothing_when_too_few_nodes_may_go() -> None:
    # Only nodes 0-1 run normal work: a 24-GPU gang (3 nodes) cannot be made room for.
    st, pend = _state({0, 1})
    _run(st, 110, ((0, 8), (1, 8)), prio=NORMAL)
    assert _victims(st, pend, 24) is None


def test_vector_filter_and_exact_rule_agree_on_a_random_state() -> None:
    # Every victim returned must pass the policy's exact rule, and evicting them must make room:
    # checked on seeded random states for gangs of 1-24 GPUs.
    rng = np.random.default_rng(3)
    for _ in range(30):
        st, pend, _ = testkit.setup_cycle()
        jid = 200
        for n in range(8):
            left = 8
            while left and rng.random() < 0.8:
                k = int(rng.integers(1, left + 1))
                prio = int(rng.choice([LOW, NORMAL, PROD]))
                _run(st, jid, ((n, k),), prio=prio, start=float(rng.choice([-1e6, -10.0])))
                jid += 1
                left -= k
        gang = int(rng.integers(1, 25))
        got = _victims(st, pend, gang)
        if got is None:
            continue
        for v in got:
            job = st.running[v]
            assert job.priority < PROD and job.run_start_s <= -600.0
        freed = {n: st.node_free[n] for n in range(8)}
        for v in got:
            for n, k in st.allocations[v].placement:
                freed[n] += k
        if gang <= 8:
            assert max(freed.values()) >= gang
        else:
            assert sum(f == 8 for f in freed.values()) >= -(-gang // 8)
