"""Paths of the scheduling cycle that the scenario tests pass through without pinning down: the
walk's stop conditions and their reasons, the preemption budget of a pass, the commit rule,
and jobs behind a reserved head. Tiny fleet (8 nodes of 8 GPUs, pods 0-3 and 4-7); each
expectation is derived by hand in its comments."""

from __future__ import annotations

import test_cycle as tc

from cortex.scheduler.cycle import schedule
from cortex.scheduler.reasons import Code


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


def test_a_pass_that_evicted_is_not_committed_and_leaves_the_state() -> None:
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
    # An eviction was tried: not committed, and the state is as before (8 GPUs free).
    assert not plan.committed and st.free_gpus == [8]


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
