"""The victim search on hand-built states: which jobs a pending one evicts, and why.

Fleet `tiny`: 2 pods x 4 nodes x 8 GPUs (nodes 0-3 in pod 0, 4-7 in pod 1). Priorities:
production 1000, normal 100, preemptible 10. Every running job here started long before
`now`, so min_runtime_s (600 s) never stands in the way unless a case says so. Nodes that a case
does not use run a production job, which a production preemptor may not evict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
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


# ---- how far the search looks, ties, pruning, and the cost's first key -----------------------
def _wide(nodes: int) -> Topology:
    spec = {"name": "wide", "halls": [{"name": "h", "groups": [
        {"flavor": "H100-SXM5", "nodes": nodes, "nodes_per_pod": 8}]}]}  # fmt: skip
    return build(parse_fleet(spec, "test"))


def test_single_node_compares_exactly_the_first_16_feasible_nodes() -> None:
    # 24 nodes; by their summaries (top priority 100, 8 GPUs used) nodes 0-17 look alike and
    # are visited by id. Exact costs: nodes 0-13 and 14+16 hold 2-node jobs (16 GPUs each),
    # node 15 an 8-GPU job (cost 8), node 17 a 4-GPU preemptible job beside a 4-GPU normal one
    # (cost (10, 4) for a 4-GPU gang). The 16 nodes compared are 0-15: node 15's job wins; node
    # 17, cheaper still, is the 18th and is not looked at.
    st, pend, _ = testkit.setup_cycle(_wide(24))
    for a in range(0, 14, 2):
        _run(st, 300 + a, ((a, 8), (a + 1, 8)), prio=NORMAL)
    _run(st, 314, ((14, 8), (16, 8)), prio=NORMAL)
    _run(st, 315, ((15, 8),), prio=NORMAL)
    _run(st, 317, ((17, 4),), prio=LOW)
    _run(st, 318, ((17, 4),), prio=NORMAL)
    for n in range(18, 24):
        _run(st, 400 + n, ((n, 8),), prio=PROD)
    assert _victims(st, pend, 4) == [315]


def test_single_node_ties_keep_the_first_node() -> None:
    # Nodes 0 and 1 each run one 8-GPU normal job: equal cost, node 0 comes first.
    st, pend = _state({0, 1})
    _run(st, 20, ((0, 8),), prio=NORMAL)
    _run(st, 21, ((1, 8),), prio=NORMAL)
    assert _victims(st, pend, 8) == [20]


def test_single_node_priority_outranks_size_in_the_cost() -> None:
    # Node 0: one preemptible job of 8 GPUs, cost (10, 8). Node 1: a normal 4-GPU job and 4
    # free, cost (100, 4). The lower priority wins although it costs more GPUs.
    st, pend = _state({0, 1})
    _run(st, 30, ((0, 8),), prio=LOW)
    _run(st, 31, ((1, 4),), prio=NORMAL)
    assert _victims(st, pend, 8) == [30]


@pytest.mark.parametrize(("gang", "victims"), [(6, [12]), (7, [10, 12])])
def test_single_node_keeps_only_the_victims_it_needs(gang: int, victims: list[int]) -> None:
    # Node 0 is full: job 10 (1 GPU, priority 10), job 11 (1 GPU, 20), job 12 (6 GPUs, 100).
    # Lowest priority first takes 10, 11, 12: 1 + 1 + 6 = 8 free. Then, newest first, drop
    # any not needed: for 6 GPUs, 11 (8 - 1 = 7 >= 6) then 10 (7 - 1 = 6 >= 6); for 7, 11
    # (7 >= 7) but not 10 (7 - 1 = 6 < 7).
    st, pend = _state({0})
    _run(st, 10, ((0, 1),), prio=10)
    _run(st, 11, ((0, 1),), prio=20)
    _run(st, 12, ((0, 6),), prio=NORMAL)
    assert _victims(st, pend, gang) == victims


def test_reclaim_finds_nothing_when_the_settled_candidates_may_not_go() -> None:
    # Queue a borrows (48 of nominal 32) but its jobs started 100 s ago; c holds its nominal 16
    # on nodes 6 and 7 in two 8-GPU jobs, settled. In reclaim mode the node filter admits
    # equal-priority nodes, so 6 and 7 are candidates; the exact rule refuses c's jobs (c is
    # within its quota). Nothing is left: no victims.
    quota = build(parse_fleet({"name": "quota", "halls": [{"name": "h", "groups": [
        {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]}], "queues": {
        "cluster_queues": [{"name": "a", "nominal_share": 0.5, "borrowing_limit_share": 0.25},
                           {"name": "b", "nominal_share": 0.25, "borrowing_limit_share": 0.0},
                           {"name": "c", "nominal_share": 0.25}]}}, "test"))  # fmt: skip
    st, pend, _ = testkit.setup_cycle(quota, teams=("a", "b", "c"))
    _run(st, 101, tuple((n, 8) for n in range(4)), prio=NORMAL, start=-100.0)
    _run(st, 102, ((4, 8), (5, 8)), prio=NORMAL, start=-100.0)
    _run(st, 103, ((6, 8),), prio=NORMAL, team=2)
    _run(st, 104, ((7, 8),), prio=NORMAL, team=2)
    job = Job(1, "p", "b", 4, 100.0)
    job.queue_idx, job.priority = 1, NORMAL
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    assert find_victims(snap, PriorityReclaim(), 4, 0, job) is None


def test_gang_across_pods_takes_the_hall_with_the_most_candidate_nodes() -> None:
    # MIXED, flavor H100: hall h1 has pods {0-3}, {4-7}, {8, 9}; hall h2 pods {16-18}, {19, 20}.
    # Normal 8-GPU jobs run on 0, 1, 4, 5 (h1: 4 candidates in 2 pods) and on 16-20 (h2: 5
    # in 2 pods); production everywhere else. A 40-GPU gang needs 5 nodes, more than any pod
    # offers: h2 alone has 5, so it takes all of h2 and nothing of h1.
    st, pend, _ = testkit.setup_cycle(testkit.MIXED)
    h100 = [n for n, f in enumerate(testkit.MIXED.node_flavor) if f == 0]
    for n in h100:
        _run(st, 500 + n, ((n, 8),), prio=NORMAL if n in {0, 1, 4, 5, 16, 17, 18, 19, 20} else PROD)
    assert sorted(_victims(st, pend, 40) or []) == [516, 517, 518, 519, 520]


# ---- a gang of whole nodes inside one pod: free nodes, unit order, pruning -----------------------
def _pod0(layout: dict[int, tuple[int, int]]) -> tuple[ClusterState, PendingQueues]:
    """Pod 1 (nodes 4-7) runs production; in pod 0, node -> (job id, priority) of an 8-GPU job
    (a job id on two nodes is one 16-GPU job); nodes not listed are free."""
    st, pend = _state(set(range(4)))
    by_job: dict[int, list[int]] = {}
    prio: dict[int, int] = {}
    for n, (jid, p) in sorted(layout.items()):
        by_job.setdefault(jid, []).append(n)
        prio[jid] = p
    for jid, nodes in by_job.items():
        _run(st, jid, tuple((n, 8) for n in nodes), prio=prio[jid])
    return st, pend


def test_pod_counts_its_free_nodes_before_evicting() -> None:
    # Nodes 0, 1 free; 2 runs normal job 60, 3 preemptible job 61. A 24-GPU gang needs 3
    # nodes: 1 beyond the 2 free, and the lowest priority is 61.
    st, pend = _pod0({2: (60, NORMAL), 3: (61, LOW)})
    assert _victims(st, pend, 24) == [61]


def test_pod_with_room_already_needs_no_victims() -> None:
    st, pend = _pod0({2: (60, NORMAL), 3: (61, LOW)})
    assert _victims(st, pend, 16) == []


def test_pod_units_go_lowest_priority_first_then_cheapest() -> None:
    # Node 0 free. Preemptible 2-node job 70 (16 GPUs) on 1-2, normal 8-GPU job 71 on 3. One
    # node more is needed for 16 GPUs: 70 goes (priority first) although 71 costs less.
    st, pend = _pod0({1: (70, LOW), 2: (70, LOW), 3: (71, NORMAL)})
    assert _victims(st, pend, 16) == [70]
    # All normal: the cheaper unit goes.
    st2, pend2 = _pod0({1: (70, NORMAL), 2: (70, NORMAL), 3: (71, NORMAL)})
    assert _victims(st2, pend2, 16) == [71]


def test_pod_drops_a_unit_a_later_one_made_needless() -> None:
    # Pod 0 full: job 80 (priority 10) on 0, job 81 (20) on 1, 2-node job 82 (normal) on 2-3.
    # 24 GPUs = 3 nodes: 80, 81 (2 nodes), then 82 (4); without 81 there are 3: drop it; without
    # 80 too there would be 2: keep 80.
    st, pend = _pod0({0: (80, 10), 1: (81, 20), 2: (82, NORMAL), 3: (82, NORMAL)})
    assert _victims(st, pend, 24) == [80, 82]


def test_a_node_with_one_gpu_in_use_is_a_candidate() -> None:
    # Node 0 runs a 1-GPU preemptible job, 7 free: an 8-GPU gang evicts it.
    st, pend = _state({0})
    _run(st, 90, ((0, 1),), prio=LOW)
    assert _victims(st, pend, 8) == [90]


# ---- paths the cases above pass through without pinning down ---------------------------------
def test_a_job_with_id_0_is_a_victim_like_any_other() -> None:
    # Pod 1: job 0 (preemptible) holds nodes 4-7 whole. A production gang of 32 GPUs needs
    # 4 whole nodes: pod 0 runs production jobs, so job 0 is the one victim.
    st, pend = _state({4, 5, 6, 7})
    _run(st, 0, ((4, 8), (5, 8), (6, 8), (7, 8)), prio=LOW)
    assert _victims(st, pend, 32) == [0]


def test_a_node_shared_by_victims_counts_for_a_multi_node_gang() -> None:
    # Pod 1: node 4 shared by jobs 20 and 21 (4 GPUs each, preemptible), node 5 by job 22
    # (preemptible, whole), nodes 6 and 7 free. A production gang of 32 GPUs needs nodes 4-7:
    # all three jobs go, and node 4 is free only once both of its jobs are.
    st, pend = _state({4, 5, 6, 7})
    _run(st, 20, ((4, 4),), prio=LOW)
    _run(st, 21, ((4, 4),), prio=LOW)
    _run(st, 22, ((5, 8),), prio=LOW)
    got = _victims(st, pend, 32)
    assert got is not None and sorted(got) == [20, 21, 22]


def test_a_job_under_its_minimum_runtime_is_passed_over_for_a_costlier_one() -> None:
    # Node 0: job 30 (preemptible) started 100 s before now, under the 600 s minimum runtime:
    # not a victim, though the cheapest. Node 1: job 31 (normal, whole node): it goes.
    st, pend = _state({0, 1})
    _run(st, 30, ((0, 8),), prio=LOW, start=-100.0)
    _run(st, 31, ((1, 8),), prio=NORMAL)
    assert _victims(st, pend, 8) == [31]


def test_equally_cheap_victims_in_a_pod_go_by_node_not_by_job_id() -> None:
    # Pod 1: nodes 4, 5, 6 each run one preemptible job of 8 GPUs, ids 200, 150, 170; node 7
    # runs production. A production gang of 16 needs 2 nodes of pod 1 (pod 0 is production):
    # all three cost (10, 8), so the lowest nodes go, 4 and 5: jobs 200 and 150.
    st, pend = _state({4, 5, 6})
    _run(st, 200, ((4, 8),), prio=LOW)
    _run(st, 150, ((5, 8),), prio=LOW)
    _run(st, 170, ((6, 8),), prio=LOW)
    got = _victims(st, pend, 16)
    assert got is not None and sorted(got) == [150, 200]


def test_gang_across_pods_with_exactly_as_many_candidates_as_it_needs() -> None:
    # A production gang of 3 nodes; the only candidates are node 0 (free), node 1 (job 10)
    # and node 4 (job 11), preemptible: 3 nodes, exactly the need, 2 in pod 0 and 1 in pod 1,
    # so no pod holds the gang. Across pods, the walk takes all three: both jobs go.
    st, pend = _state({0, 1, 4})
    _run(st, 10, ((1, 8),), prio=LOW)
    _run(st, 11, ((4, 8),), prio=LOW)
    assert _victims(st, pend, 24) == [10, 11]


def test_reclaim_passes_over_a_candidate_node_it_may_not_empty() -> None:
    # Queues a (nominal 32, borrowing), b (16), c (16). Queue a borrows: 48 in use (job 101
    # on nodes 0-3, started 100 s ago, and 102 on nodes 5 and 6, settled). Queue c holds 16,
    # its nominal, in 103 (node 4) and 104 (node 7). In reclaim mode every node of normal
    # priority is a candidate; visited by id (equal priority and use): node 4's 103 may not
    # go (c is within its quota), which ends nothing: node 5's 102 may (a borrows, and b's
    # 0 + 4 <= 16). It costs 102's whole 16 GPUs; node 6 costs the same; node 7 refuses.
    quota = build(parse_fleet({"name": "quota", "halls": [{"name": "h", "groups": [
        {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]}], "queues": {
        "cluster_queues": [{"name": "a", "nominal_share": 0.5, "borrowing_limit_share": 0.25},
                           {"name": "b", "nominal_share": 0.25, "borrowing_limit_share": 0.0},
                           {"name": "c", "nominal_share": 0.25}]}}, "test"))  # fmt: skip
    st, pend, _ = testkit.setup_cycle(quota, teams=("a", "b", "c"))
    _run(st, 101, tuple((n, 8) for n in range(4)), prio=NORMAL, start=-100.0)
    _run(st, 102, ((5, 8), (6, 8)), prio=NORMAL)
    _run(st, 103, ((4, 8),), prio=NORMAL, team=2)
    _run(st, 104, ((7, 8),), prio=NORMAL, team=2)
    job = Job(1, "p", "b", 4, 100.0)
    job.queue_idx, job.priority = 1, NORMAL
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    assert find_victims(snap, PriorityReclaim(), 4, 0, job) == [102]


def _reclaim_fleet(halls: int) -> Topology:
    """8 nodes in pods of 2 (in `halls` halls); queues a (nominal 8), b (40), c (16). Used in
    reclaim mode: equal-priority nodes pass the filter, the exact rule decides."""
    groups = [{"flavor": "H100-SXM5", "nodes": 8 // halls, "nodes_per_pod": 2}]
    return build(parse_fleet({"name": "reclaim", "halls": [
        {"name": f"h{i}", "groups": groups} for i in range(halls)], "queues": {
        "cluster_queues": [{"name": "a", "nominal_share": 0.125},
                           {"name": "b", "nominal_share": 0.625},
                           {"name": "c", "nominal_share": 0.25}]}}, "test"))  # fmt: skip


def _reclaim_victims(halls: int, gang: int) -> list[int] | None:
    # Nodes 0 and 1: queue c's jobs 103, 104 (its nominal 16: they may not go). Nodes 2-5:
    # queue a's 8-GPU jobs 105-108, settled; nodes 6 and 7 a's job 101, started 100 s ago.
    # Queue a uses 48 > 8: it borrows, so its settled jobs may go to a normal job of queue
    # b (0 + gang <= 40). A gang of 3 or 5 whole nodes: more than any pod of 2 holds.
    st, pend, _ = testkit.setup_cycle(_reclaim_fleet(halls), teams=("a", "b", "c"))
    _run(st, 103, ((0, 8),), prio=NORMAL, team=2)
    _run(st, 104, ((1, 8),), prio=NORMAL, team=2)
    for n in range(2, 6):
        _run(st, 103 + n, ((n, 8),), prio=NORMAL)
    _run(st, 101, ((6, 8), (7, 8)), prio=NORMAL, start=-100.0)
    job = Job(1, "p", "b", gang, 100.0)
    job.queue_idx, job.priority = 1, NORMAL
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    return find_victims(snap, PriorityReclaim(), gang, 0, job)


def test_across_pods_drops_the_nodes_it_may_not_empty_and_walks_the_next_hall() -> None:
    # Two halls: nodes 0-3 (pods {0,1}, {2,3}) and 4-7. Candidates: 0-5 (6, 7 unsettled).
    # Hall 0 has 4 >= 3 of them, so the walk stays there: pod 0's nodes 0 and 1 are c's (may
    # not go), pod 1's 2 and 3 are good: 2 < 3, short. Without nodes 0 and 1 no hall has 3
    # candidates (2 each): both halls, hall 0 first: nodes 2, 3, then hall 1's node 4.
    assert _reclaim_victims(halls=2, gang=24) == [105, 106, 107]


def test_across_pods_finds_nothing_when_too_few_candidates_may_go() -> None:
    # One hall, a gang of 5 nodes: 6 candidates (0-5), but only 4 may go (2-5): short, and
    # without the two that may not, 4 < 5 candidates are left. No victims (not the 4 it has).
    assert _reclaim_victims(halls=1, gang=40) is None
