"""Paths of the scheduling cycle that the scenario tests pass through without pinning down: the
walk's stop conditions and their reasons, the preemption budget of a pass, the commit rule,
and jobs behind a reserved head. Tiny fleet (8 nodes of 8 GPUs, pods 0-3 and 4-7); each
expectation is derived by hand in its comments."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import test_cycle as tc

from cortex.scheduler.cycle import _power_blocks, schedule
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Plan
from cortex.workload.job import Job


def test_a_pass_with_no_free_gpus_goes_on_while_it_may_still_preempt() -> None:
    st, pend, pol = tc._setup()  # FIFO, PriorityReclaim, 2 preemption tries per pass
    tc._run(st, 101, ((0, 8), (1, 8), (2, 8), (3, 8)), prio=1000)
    for n in range(4, 8):  # four preemptible jobs of one node each: 102..105 on nodes 4..7
        tc._run(st, 98 + n, ((n, 8),), prio=10)
    for jid in (1, 2, 3):
        tc._pend(pend, jid, 8, 100.0, prio=1000)
    plan = schedule(tc._snap(st, pend), pol)
    # Nothing is free. Job 1 evicts the cheapest victim (priority 10, 8 GPUs, lowest node: 102
    # on node 4): one try left, still no free GPU, and the pass goes on. Job 2 evicts 103 on
    # node 5: no try left and no free GPU, so the pass stops before job 3.
    assert [(s.job.id, s.placement) for s in plan.starts] == [(1, ((4, 8),)), (2, ((5, 8),))]
    assert [p.job.id for p in plan.preemptions] == [102, 103]
    assert plan.examined == 2
    assert plan.rest_reason is not None and plan.rest_reason.code is Code.NOT_EXAMINED
    assert plan.rest_reason.detail == {"why": "no free GPUs left"}
    (r3,) = plan.reasons_for(3)
    assert r3.code is Code.NOT_EXAMINED


def test_a_quick_pass_behind_blocked_heads_says_so_with_its_code() -> None:
    st, pend, pol = tc._setup()
    tc._run(st, 100, tuple((n, 8) for n in range(7)), end=1000.0)  # 8 GPUs free (node 7)
    tc._pend(pend, 1, 16, 10.0)  # the head: 16 > 8
    tc._pend(pend, 2, 1, 10.0)
    plan = schedule(tc._snap(st, pend), pol, deep=False)
    # One flavor, its head blocked: a quick pass stops after the head.
    assert plan.rest_reason is not None and plan.rest_reason.code is Code.NOT_EXAMINED
    assert plan.rest_reason.detail == {"why": "behind blocked heads"}


def test_commit_keeps_the_starts_only_when_no_eviction_was_tried() -> None:
    st, pend, pol = tc._setup()
    tc._pend(pend, 1, 16, 10.0)
    before_free = list(st.free_gpus)
    plan = schedule(tc._snap(st, pend), pol, commit=True)
    # An empty fleet, a job of 16 GPUs: it starts, no victim search ran, so the plan is
    # committed and its 16 GPUs stay taken: 64 - 16 = 48 free.
    assert [s.job.id for s in plan.starts] == [1] and plan.committed
    assert before_free == [64] and st.free_gpus == [48]
    st2, pend2, pol2 = tc._setup()
    tc._pend(pend2, 1, 16, 10.0)
    plan2 = schedule(tc._snap(st2, pend2), pol2)  # the same pass without commit
    assert [s.job.id for s in plan2.starts] == [1] and not plan2.committed
    assert st2.free_gpus == [64]


def test_a_pass_that_evicted_in_the_drivers_order_is_committed() -> None:
    st, pend, pol = tc._setup()
    for n in range(7):  # normal jobs 100..106 on nodes 0..6; node 7 free
        tc._run(st, 100 + n, ((n, 8),), prio=100)
    tc._pend(pend, 1, 16, 10.0, prio=1000)
    plan = schedule(tc._snap(st, pend), pol, commit=True)
    # Job 1 needs 2 whole nodes, 1 is free (node 7, pod 1). In pod 1 one victim suffices;
    # pod 0 would need two. Pod 1's victims all cost (100, 8): the lowest node wins, 104 on
    # node 4, and the job takes nodes 4 and 7.
    assert [p.job.id for p in plan.preemptions] == [104]
    assert [sorted(n for n, _ in s.placement) for s in plan.starts] == [[4, 7]]
    # The log is the driver's order (evict 104, start 1): committed (Statement.hand_over),
    # 104's GPUs given and 1's taken (8 + 8 - 16 = 0 free); the driver's stop books the rest.
    assert plan.committed and st.free_gpus == [0] and list(st.given) == [104]


def test_jobs_behind_a_reserved_head_share_what_it_leaves_over() -> None:
    st, pend, pol = tc._setup()
    tc._run(st, 100, tuple((n, 8) for n in range(4)), end=1000.0)  # nodes 4-7 free: 32
    tc._pend(pend, 1, 40, 10.0)  # the head: 40 > 32 free
    tc._pend(pend, 2, 16, 2000.0)  # long (ends at 2000, after the shadow)
    tc._pend(pend, 3, 4, 500.0)  # short: ends at 500, before the shadow
    tc._pend(pend, 4, 8, 2000.0)  # long
    tc._pend(pend, 5, 4, 2000.0)  # long
    tc._pend(pend, 6, 12, 2000.0, elastic_min=4)  # long, 12 GPUs or at the least 4
    tc._pend(pend, 7, 12, 2000.0)  # long, a gang over one node: 2 nodes, 16 GPUs held
    plan = schedule(tc._snap(st, pend), pol)
    # Head 1 reserves the flavor: at 1000 job 100 frees 32, 32 + 32 = 64 >= 40, so the shadow
    # is 1000 and 64 - 40 = 24 GPUs are left over for jobs that end later.
    # Job 2: 16 <= 24 left over: starts, 8 left over; 32 - 16 = 16 free.
    # Job 3: ends in time, starts without touching the 8 left over; 12 free.
    # Job 4: 8 <= 8 left over: starts, 0 left over; 4 free.
    # Job 5: 4 GPUs fit the 4 free, but 4 > 0 left over: it waits for the head.
    # Job 6: 12 GPUs take 2 whole nodes, 16 > 4 free: short of capacity, needing 16; then its
    # minimum, 4, fits the 4 free but not the 0 left over: both reasons, in that order.
    # Job 7: as job 6's first gang: short of capacity, needing 16.
    assert [s.job.id for s in plan.starts] == [2, 3, 4]
    (r1,) = plan.blockers[1]
    assert (r1.code, r1.detail["need"], r1.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 40, 32)
    (r5,) = plan.blockers[5]
    assert r5.code is Code.RESERVED_FOR_HEAD and r5.detail["head"] == 1
    r6 = plan.blockers[6]
    assert [(r.code, r.detail.get("need")) for r in r6] == [
        (Code.INSUFFICIENT_CAPACITY, 16),
        (Code.RESERVED_FOR_HEAD, None),
    ]
    (r7,) = plan.blockers[7]
    assert (r7.code, r7.detail["need"], r7.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 16, 4)


def test_an_elastic_job_held_back_at_full_size_starts_at_its_minimum_behind_a_head() -> None:
    st, pend, pol = tc._setup()
    tc._run(st, 100, tuple((n, 8) for n in range(4)), end=1000.0)  # nodes 4-7 free: 32
    tc._pend(pend, 1, 40, 10.0)  # the head: shadow 1000, 32 + 32 - 40 = 24 left over
    tc._pend(pend, 2, 32, 2000.0, elastic_min=16)  # long
    plan = schedule(tc._snap(st, pend), pol)
    # Job 2 at 32: fits the 32 free, but 32 > 24 left over and it ends after 1000: held back.
    # At its minimum 16 <= 24: starts, on 2 whole nodes.
    (s,) = plan.starts
    assert (s.job.id, s.gang_gpus, s.alloc_gpus) == (2, 16, 16)


def test_jobs_behind_a_head_that_fail_on_topology_share_one_answer_per_size() -> None:
    st, pend, pol = tc._setup()
    tc._run(st, 100, tuple((n, 8) for n in range(4)), end=1000.0)  # pod 0 busy until 1000
    for n in range(4, 8):  # pod 1: 4 GPUs of each node busy until 5000: 16 free, no node whole
        tc._run(st, 97 + n, ((n, 4),), end=5000.0)
    tc._pend(pend, 1, 40, 10.0)  # the head: 40 > 16 free; at 1000, 16 + 32 = 48 >= 40
    tc._pend(pend, 2, 12, 500.0)  # 2 whole nodes (16 GPUs); ends at 500, before the head
    tc._pend(pend, 3, 16, 500.0)  # 2 whole nodes
    tc._pend(pend, 4, 12, 500.0)  # as job 2
    tc._pend(pend, 5, 8, 500.0)  # one whole node
    plan = schedule(tc._snap(st, pend), pol)
    assert plan.starts == []
    # Jobs 2-4 need 16 GPUs as 2 whole nodes: 16 are free, but no node is whole, so the
    # largest block of whole nodes in a pod is 0 GPUs. Nothing changes between them, so each
    # gets the same answer (computed once per size and state).
    for jid in (2, 3, 4):
        (r,) = plan.blockers[jid]
        assert r.code is Code.TOPOLOGY_UNAVAILABLE
        assert r.detail == {"need": 16, "flavor": "H100-SXM5", "free": 16,
                            "largest_block": 0, "block": "pod"}  # fmt: skip
    # Job 5 needs one node's 8 GPUs: the largest free block on a node is 4.
    (r5,) = plan.blockers[5]
    assert r5.code is Code.TOPOLOGY_UNAVAILABLE
    assert (r5.detail["need"], r5.detail["largest_block"], r5.detail["block"]) == (8, 4, "node")


def test_a_job_in_its_preemption_backoff_waits_and_is_reported() -> None:
    st, pend, pol = tc._setup()
    tc._run(st, 101, tuple((n, 8) for n in range(7)), prio=1000)  # nodes 0-6: production
    tc._run(st, 102, ((7, 8),), prio=10)  # node 7: preemptible
    job = tc._pend(pend, 1, 8, 100.0, prio=1000)
    job.next_preempt_try_s = 50.0  # an earlier search failed: no new one before t = 50
    plan = schedule(tc._snap(st, pend, now=0.0), pol)
    # At t = 0 < 50 it may not preempt: it stays blocked by capacity (8 > 0 free) and reserves.
    assert plan.starts == [] and plan.preemptions == []
    (r,) = plan.blockers[1]
    assert (r.code, r.detail["need"], r.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 8, 0)
    # At t = 50 the backoff is over: job 102 (priority 10) goes, node 7 is the job's.
    plan = schedule(tc._snap(st, pend, now=50.0), pol)
    assert [p.job.id for p in plan.preemptions] == [102]
    # The eviction's reason names the preemptor and the policy (PriorityReclaim: "priority").
    (p,) = plan.preemptions
    assert p.reason.code is Code.PREEMPTED and p.reason.detail == {"by": 1, "why": "priority"}
    # No power policy: the start is uncapped (cap level 0).
    assert [(s.job.id, s.placement, s.cap_level) for s in plan.starts] == [(1, ((7, 8),), 0)]


def test_a_pass_out_of_preemption_tries_preempts_no_more_even_with_gpus_free() -> None:
    st, pend, pol = tc._setup()  # 2 preemption tries per pass
    tc._run(st, 101, ((0, 8), (1, 8), (2, 8), (3, 8)), prio=1000)
    for n in (4, 5, 6):  # preemptible jobs 102, 103, 104 on nodes 4, 5, 6
        tc._run(st, 98 + n, ((n, 8),), prio=10)
    tc._run(st, 105, ((7, 4),), prio=1000)  # node 7: 4 GPUs busy, 4 free
    for jid in (1, 2, 3):
        tc._pend(pend, jid, 8, 100.0, prio=1000)
    plan = schedule(tc._snap(st, pend), pol)
    # Jobs 1 and 2 each evict the cheapest victim (102 on node 4, then 103 on node 5): both
    # tries spent. 4 GPUs stay free, so the pass goes on to job 3, which needs 8 > 4 and may
    # not search again: it waits, and 104 keeps running.
    assert [p.job.id for p in plan.preemptions] == [102, 103]
    assert [s.job.id for s in plan.starts] == [1, 2]
    (r3,) = plan.blockers[3]
    assert (r3.code, r3.detail["need"], r3.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 8, 4)


def test_a_flavor_with_nothing_to_evict_does_not_end_the_search_on_the_next() -> None:
    st, pend, pol = tc._setup(tc.TWO_FLAVORS)
    h200, h100 = (tc.TWO_FLAVORS.flavors.index(f) for f in ("H200-SXM", "H100-SXM5"))
    tc._run(st, 101, tuple((n, 8) for n in range(4)), prio=1000)  # H200 nodes 0-3: production
    tc._run(st, 102, tuple((n, 8) for n in range(4, 7)), prio=1000)  # H100 nodes 4-6
    tc._run(st, 103, ((7, 8),), prio=10)  # H100 node 7: preemptible
    job = tc._pend(pend, 1, 8, 100.0, prio=1000)
    job.flavor_ids = (h200, h100)
    plan = schedule(tc._snap(st, pend), pol)
    # Both flavors are full. H200 holds nothing below production: no search there. H100 does:
    # job 103 goes and the job takes node 7.
    assert [p.job.id for p in plan.preemptions] == [103]
    assert [(s.job.id, s.flavor, s.placement) for s in plan.starts] == [(1, h100, ((7, 8),))]


def test_a_search_that_finds_no_victim_is_recorded_and_its_job_reserves() -> None:
    st, pend, pol = tc._setup()
    # Nodes 0-3 production; node 4 preemptible job 102; node 5 preemptible job 103 that
    # started 100 s ago, under the 600 s minimum runtime; node 6 job 104 of priority 50;
    # node 7 half busy (4 GPUs free).
    tc._run(st, 101, tuple((n, 8) for n in range(4)), prio=1000)
    tc._run(st, 102, ((4, 8),), prio=10)
    tc._run(st, 103, ((5, 8),), prio=10, start=-100.0)
    tc._run(st, 104, ((6, 8),), prio=50)
    tc._run(st, 105, ((7, 4),), prio=1000)
    tc._pend(pend, 1, 8, 100.0, prio=1000)
    tc._pend(pend, 2, 8, 100.0, prio=40)
    tc._pend(pend, 3, 8, 100.0, prio=1000)
    plan = schedule(tc._snap(st, pend), pol)
    # Job 1 evicts the cheapest victim, 102 (priority 10). Job 2 (priority 40) may only evict
    # below 40: node 5's job 103 counts for the cheap check, so a search runs, but 103 is
    # under its minimum runtime: the search fails and is recorded, and job 2, the head now,
    # reserves the flavor. Job 3 could evict 104 (priority 50 < 1000) but is behind the head.
    assert [p.job.id for p in plan.preemptions] == [102]
    assert [s.job.id for s in plan.starts] == [1]
    assert plan.preempt_failed == [2]
    assert plan.blockers[2][0].code is Code.INSUFFICIENT_CAPACITY
    (r3,) = plan.blockers[3]
    assert r3.code is Code.INSUFFICIENT_CAPACITY and r3.detail["free"] == 4


# ---- watts, not GPUs: cycle._power_blocks -----------------------------------------------------
# When watts block a job and nothing behind it may start: the first power reason about the site
# decides (hall budgets do not hold back the site), and only if the job would fit the site once
# running work frees watts. Reasons and budgets by hand (MW in reasons, W in budgets).


def _blocks(reasons: list[Reason], site_budget_w: float) -> tuple[bool, Plan]:
    snap: Any = SimpleNamespace(power=SimpleNamespace(site_budget_w=site_budget_w))
    plan = Plan()
    return _power_blocks(snap, plan, Job(7, "j", "a", 8, 10.0), reasons), plan


def test_a_site_power_reason_within_the_budget_blocks_the_rest() -> None:
    cap = Reason(Code.POWER_CAP, domain="site", need_mw=2.0)
    # 2.0 MW = 2,000,000 W <= a 2,000,000 W site budget: exactly at the budget, it fits once
    # running work frees watts, so it blocks the rest; the plan says why, naming job 7.
    got, plan = _blocks([cap], 2e6)
    assert got is True
    assert plan.rest_reason is not None and plan.rest_reason.code is Code.POWER_CAP
    assert plan.rest_reason.detail == {"job": 7, "domain": "site", "need_mw": 2.0}


def test_a_job_over_the_whole_site_budget_blocks_nothing() -> None:
    # 3.0 MW = 3,000,000 W > 2,000,000 W: it could never fit; the rest may go on.
    got, plan = _blocks([Reason(Code.POWER_RAMP, domain="site", need_mw=3.0)], 2e6)
    assert got is False and plan.rest_reason is None


def test_a_site_reason_without_a_need_counts_as_needing_nothing() -> None:
    # No need_mw: 0 W <= 500,000 W, and no domain: the site.
    got, plan = _blocks([Reason(Code.POWER_CAP)], 5e5)
    assert got is True and plan.rest_reason is not None
    assert plan.rest_reason.detail == {"job": 7}


def test_the_first_site_power_reason_decides_and_hall_reasons_are_passed_over() -> None:
    capacity = Reason(Code.INSUFFICIENT_CAPACITY, need=16, flavor="H100-SXM5", free=8)
    hall = Reason(Code.POWER_CAP, domain="hall", need_mw=3.0)
    site = Reason(Code.POWER_CAP, domain="site", need_mw=1.0)
    # The capacity reason is not a power reason, and a hall's budget does not hold back the
    # site (its 3.0 MW would not fit the 2.0 MW site either): the site reason decides, and
    # 1.0 MW = 1,000,000 W <= 2,000,000 W blocks the rest.
    got, plan = _blocks([capacity, hall, site], 2e6)
    assert got is True and plan.rest_reason is not None
    assert plan.rest_reason.detail == {"job": 7, "domain": "site", "need_mw": 1.0}
    # A hall reason alone, or no power reason at all: nothing blocked.
    for reasons in ([hall], [capacity]):
        got, plan = _blocks(reasons, 2e6)
        assert got is False and plan.rest_reason is None
