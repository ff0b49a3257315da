"""Preemption paths of the scheduling cycle that the scenario tests never reach: the retry with
fewer victims when placement passes over a victim's nodes, admission after the evictions, a
failed search's cost in tries, and the per-pass caches once an eviction changed the state.
Each expectation is derived by hand in the comments; the fleets are drawn there too."""

from __future__ import annotations

import test_cycle as tc

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.reasons import Code
from cortex.scheduler.state import ClusterState

# Six 8-GPU nodes in three pods of two (pods {0,1}, {2,3}, {4,5}), one hall; queue a may use
# 24 GPUs and borrow 12 more (36 at most), queue b 24 with no borrowing limit.
SIX = build(
    parse_fleet(
        {
            "name": "six",
            "halls": [
                {
                    "name": "h",
                    "groups": [
                        {"flavor": "H100-SXM5", "nodes": 6, "nodes_per_pod": 2, "nodes_per_rack": 2}
                    ],
                }
            ],
            "queues": {
                "cluster_queues": [
                    {"name": "a", "nominal_share": 0.5, "borrowing_limit_share": 0.25},
                    {"name": "b", "nominal_share": 0.5},
                ]
            },
        },
        "test",
    )
)
A, B = 0, 1  # queue indices


def _six(p1_gpus: int) -> tuple[ClusterState, PendingQueues, Policies]:
    """The SIX fleet, all but node 0 busy:
        pod 0: node 0 free      node 1 V
        pod 1: node 2 V         node 3 P1 (production, `p1_gpus` GPUs)
        pod 2: node 4 W         node 5 X
    V (queue b) is one gang on nodes 1 and 2; W (queue a) and X (queue b) hold a node each;
    V, W and X are preemptible (priority 10), P1 runs at 1000 in queue a. Queue b uses 24, its
    nominal share: no queue borrows, so only lower priorities may be evicted (no reclaim)."""
    st, pend, pol = tc._setup(SIX, None, ("a", "b"))
    v = tc._run(st, 101, ((1, 8), (2, 8)), team=B, prio=10)
    p1 = tc._run(st, 102, ((3, p1_gpus),), team=A, prio=1000)
    w = tc._run(st, 103, ((4, 8),), team=A, prio=10)
    x = tc._run(st, 104, ((5, 8),), team=B, prio=10)
    assert (v.id, p1.id, w.id, x.id) == (101, 102, 103, 104)
    return st, pend, pol


# The search for a gang of 3 whole nodes on _six: no pod holds 3 nodes, so it walks good nodes
# (free, or running only evictable jobs) across pods, the pods with the most candidates first:
# pod 0 (nodes 0 and 1) and pod 2 (nodes 4 and 5) have two each, pod 1 one (node 2; node 3 is
# production). Within a pod the cheapest node first (lowest top priority, then fewest GPUs in
# use, then id): node 0 (free), node 1, then node 4. Victims: the jobs on nodes 1 and 4, V and W.
# Evicting them frees nodes 0, 1 (pod 0), 2 (V's other node, pod 1) and 4 (pod 2). Placement
# takes whole nodes from the pods with the most free first, then by pod id: pod 0's two, then
# pod 1's node 2 (pod 1 and pod 2 have one each; 1 < 2). W's node 4 is not taken.


def test_a_victim_whose_nodes_placement_passes_over_keeps_running() -> None:
    st, pend, pol = _six(p1_gpus=4)
    tc._pend(pend, 1, 24, 100.0, team=A, prio=1000)
    plan = schedule(tc._snap(st, pend), pol)
    # Queue a uses 12 (P1's 4, W's 8): 12 + 24 = 36 <= 36 with or without W's eviction. So
    # the cycle retries with V alone: nodes 0, 1, 2 are free then, and placement takes them
    # (pod 0's two, then pod 1's one). W would have lost its work for nothing: it keeps running.
    assert [p.job.id for p in plan.preemptions] == [101]
    assert [(s.job.id, s.placement, s.alloc_gpus) for s in plan.starts] == [
        (1, ((0, 8), (1, 8), (2, 8)), 24)
    ]
    assert plan.preempt_failed == []
    tc._apply(st, plan)  # the plan applies cleanly on the state the cycle left unchanged
    assert st.usage[A][0] == 12 + 24 and 103 in st.running


def test_a_victim_kept_for_the_quota_its_eviction_frees() -> None:
    st, pend, pol = _six(p1_gpus=8)
    tc._pend(pend, 1, 24, 100.0, team=A, prio=1000, elastic_min=16)
    plan = schedule(tc._snap(st, pend), pol)
    # Queue a uses 16 (P1 and W) of its 36. At 24 GPUs the job would use 40 > 36: over its
    # borrowing limit, so that gang is not admitted; at 16 (2 whole nodes) it would use 32, but
    # only node 0 is free: short of capacity. Its search is for its full 24 GPUs (3 nodes):
    # V and W as above. With both gone queue a uses 8 and 8 + 24 = 32 <= 36: admitted, and
    # placement takes nodes 0, 1, 2, not W's node 4. Retried with V alone, queue a would use
    # 16 + 24 = 40 > 36: not admitted. So W's eviction is kept, for the quota it frees.
    assert sorted(p.job.id for p in plan.preemptions) == [101, 103]
    assert [(s.job.id, s.placement, s.gang_gpus) for s in plan.starts] == [
        (1, ((0, 8), (1, 8), (2, 8)), 24)
    ]
    assert plan.preempt_failed == []
    tc._apply(st, plan)
    assert st.usage[A][0] == 8 + 24  # P1's 8 and the job's 24: within the 36


def test_an_eviction_that_leaves_the_job_over_its_quota_is_undone_and_counts_as_a_try() -> None:
    st, pend, pol = _six(p1_gpus=8)
    tc._run(st, 105, ((0, 8),), team=A, prio=1000)  # node 0 too: queue a uses 24
    job = tc._pend(pend, 1, 24, 100.0, team=A, prio=1000, elastic_min=8)
    plan = schedule(tc._snap(st, pend), pol)
    # At 24 GPUs queue a would use 48 > 36: not admitted. At 8 it would use 32 <= 36, but
    # nothing is free: short of capacity. The search for 24 GPUs (3 nodes) on nodes 1, 2, 4,
    # 5 (pod 0 and pod 1 have one candidate each, pod 2 two): pod 2 first, nodes 4 and 5 (W,
    # X), then pod 0's node 1 (V). With V, W and X gone queue a uses 16 and 16 + 24 = 40 > 36:
    # still over its limit, so the evictions are undone. The search ran: it is recorded (the
    # driver backs the job off) and nothing is evicted or started.
    assert plan.preemptions == [] and plan.starts == []
    assert plan.preempt_failed == [job.id]
    r24, r8 = plan.blockers[1]
    assert (r24.code, r24.detail["need"], r24.detail["usage"]) == (Code.BORROWING_LIMIT, 24, 24)
    assert (r8.code, r8.detail["need"], r8.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 8, 0)
    assert st.usage[A][0] == 24 and sorted(st.running) == [101, 102, 103, 104, 105]


# ---- a failed search's cost in tries ----------------------------------------------------------
def _two_flavors() -> tuple[ClusterState, PendingQueues, Policies, int, int]:
    """TWO_FLAVORS, full: H200 nodes 0-2 production, node 3 a preemptible job (111) started
    100 s ago, under the 600 s minimum runtime; H100 nodes 4 and 5 preemptible (112, 113),
    nodes 6 and 7 production. Two preemption tries per pass."""
    st, pend, pol = tc._setup(tc.TWO_FLAVORS)
    h200, h100 = (tc.TWO_FLAVORS.flavors.index(f) for f in ("H200-SXM", "H100-SXM5"))
    tc._run(st, 110, tuple((n, 8) for n in range(3)), prio=1000)
    tc._run(st, 111, ((3, 8),), prio=10, start=-100.0)
    tc._run(st, 112, ((4, 8),), prio=10)
    tc._run(st, 113, ((5, 8),), prio=10)
    tc._run(st, 114, ((6, 8), (7, 8)), prio=1000)
    return st, pend, pol, h200, h100


def _pend_on(pend: PendingQueues, jid: int, flavor: int) -> None:
    tc._pend(pend, jid, 8, 100.0, prio=1000).flavor_ids = (flavor,)


def test_a_search_that_found_nothing_spends_one_try_before_a_search_that_succeeds() -> None:
    st, pend, pol, h200, h100 = _two_flavors()
    _pend_on(pend, 1, h200)
    _pend_on(pend, 2, h100)
    _pend_on(pend, 3, h100)
    plan = schedule(tc._snap(st, pend), pol)
    # Job 1's search on H200 runs (node 3's top priority, 10, is below 1000) but finds no
    # victim (111 is under its minimum runtime): 2 - 1 = 1 try left. Job 2 evicts 112 on
    # H100 node 4: 0 left. Nothing is free and no try is left: the pass ends before job 3.
    assert plan.preempt_failed == [1]
    assert [(s.job.id, s.placement) for s in plan.starts] == [(2, ((4, 8),))]
    assert [p.job.id for p in plan.preemptions] == [112]
    assert plan.examined == 2 and plan.reasons_for(3)[0].code is Code.NOT_EXAMINED


def test_a_search_that_found_nothing_spends_one_try_after_a_search_that_succeeded() -> None:
    st, pend, pol, h200, h100 = _two_flavors()
    _pend_on(pend, 1, h100)
    _pend_on(pend, 2, h200)
    _pend_on(pend, 3, h100)
    plan = schedule(tc._snap(st, pend), pol)
    # Job 1 evicts 112 (node 4): 1 try left. Job 2's search on H200 finds nothing: 0 left.
    # Job 3 could evict 113 but the pass is out of tries (and of free GPUs): it ends there.
    assert [p.job.id for p in plan.preemptions] == [112]
    assert [s.job.id for s in plan.starts] == [1]
    assert plan.preempt_failed == [2]
    assert plan.examined == 2 and plan.reasons_for(3)[0].code is Code.NOT_EXAMINED


# ---- the pass's caches after an eviction ------------------------------------------------------
def test_a_capacity_reason_after_an_eviction_counts_the_gpus_free_then() -> None:
    st, pend, pol = tc._setup()
    tc._run(st, 101, tuple((n, 8) for n in range(7)), prio=1000)  # nodes 0-6 production
    tc._run(st, 102, ((7, 4),), prio=10)  # node 7: 4 GPUs preemptible, 4 free
    tc._pend(pend, 1, 8, 100.0, prio=1000)
    tc._pend(pend, 2, 8, 100.0, prio=100)
    plan = schedule(tc._snap(st, pend), pol)
    # Job 1: 8 > 4 free (short of capacity, with 4 free); it evicts 102 and takes node 7.
    # Job 2: 8 > 0 free. Its reason says 0 free, not the 4 free before the eviction.
    assert [(s.job.id, s.placement) for s in plan.starts] == [(1, ((7, 8),))]
    assert [p.job.id for p in plan.preemptions] == [102]
    r = plan.blockers[2][0]
    assert (r.code, r.detail["need"], r.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 8, 0)


def test_a_gang_that_did_not_fit_fits_after_an_eviction_in_the_same_pass() -> None:
    st, pend, pol = tc._setup()
    for n in range(4):  # pod 0: 4 GPUs of each node production, 4 free: 16 free, none whole
        tc._run(st, 101 + n, ((n, 4),), prio=1000)
    tc._run(st, 105, tuple((n, 8) for n in range(4, 8)), prio=10)  # pod 1: one 4-node gang
    tc._pend(pend, 1, 16, 100.0, prio=1000)
    tc._pend(pend, 2, 16, 100.0, prio=100)
    plan = schedule(tc._snap(st, pend), pol)
    # Job 1 (2 whole nodes): 16 GPUs are free but no node is whole: placement fails. Its
    # search evicts 105, the only evictable unit (4 nodes of pod 1), and it takes nodes 4, 5.
    # Job 2 asks placement for the same gang on the state after the eviction: nodes 6 and 7
    # are whole and free, and it starts there.
    assert [p.job.id for p in plan.preemptions] == [105]
    assert [(s.job.id, s.placement) for s in plan.starts] == [
        (1, ((4, 8), (5, 8))),
        (2, ((6, 8), (7, 8))),
    ]


# ---- reservations and elastic gangs -----------------------------------------------------------
def test_a_head_blocked_on_two_flavors_reserves_the_one_not_reserved_yet() -> None:
    st, pend, pol = tc._setup(tc.TWO_FLAVORS)
    h200, h100 = (tc.TWO_FLAVORS.flavors.index(f) for f in ("H200-SXM", "H100-SXM5"))
    for n in range(4):  # H200: 4 GPUs of each node busy until 5000: 16 free, none whole
        tc._run(st, 101 + n, ((n, 4),), prio=1000, end=5000.0)
    tc._run(st, 105, ((4, 8),), prio=1000, end=1000.0)  # H100 node 4 until 1000
    tc._run(st, 106, ((5, 8), (6, 8)), prio=1000, end=5000.0)  # nodes 5, 6; node 7 free
    tc._pend(pend, 1, 24, 100.0).flavor_ids = (h200,)
    tc._pend(pend, 2, 16, 100.0).flavor_ids = (h200, h100)
    tc._pend(pend, 3, 8, 2000.0).flavor_ids = (h100,)
    plan = schedule(tc._snap(st, pend), pol)
    # Job 1: 24 > 16 free on H200 and nothing to evict: it reserves H200; at 5000 the four
    # jobs free 16 more, 32 >= 24, so the shadow is 5000 and nothing is left over.
    # Job 2 on H200: ends at 100 < 5000, so it may pass the head, but no node is whole
    # (topology); on H100, 16 > 8 free. Blocked on both, it reserves H100 (H200 is job 1's):
    # at 1000 job 105 frees 8, 8 + 8 = 16 >= 16, shadow 1000, nothing left over.
    # Job 3 fits node 7's 8 GPUs, but would end at 2000 > 1000 and 8 > 0 left over: it waits.
    assert plan.starts == []
    (r2a, r2b) = plan.blockers[2]
    assert (r2a.code, r2b.code) == (Code.TOPOLOGY_UNAVAILABLE, Code.INSUFFICIENT_CAPACITY)
    (r3,) = plan.blockers[3]
    assert r3.code is Code.RESERVED_FOR_HEAD
    assert r3.detail == {"head": 2, "shadow_s": 1000.0, "flavor": "H100-SXM5"}


def test_an_elastic_job_whose_minimum_is_its_size_is_tried_once_per_flavor() -> None:
    st, pend, pol = tc._setup()
    tc._run(st, 101, tuple((n, 8) for n in range(7)), prio=1000)  # 8 free (node 7)
    tc._pend(pend, 1, 16, 100.0, elastic_min=16)  # a range of one size
    plan = schedule(tc._snap(st, pend), pol)
    # One gang size, one answer: 16 > 8 free (not the same reason twice).
    (r,) = plan.blockers[1]
    assert (r.code, r.detail["need"], r.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 16, 8)
