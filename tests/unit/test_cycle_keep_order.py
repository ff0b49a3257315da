"""Passes that save no key orders (`Statement.keep_order` off: a quick pass, or a deep pass of a
lone job, with `commit`): a pass that ends up not committing must still leave the state exactly
as it was, index iteration order included (placement breaks ties by that order), and a
committed one as rolling back and then starting the plan's jobs does."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import test_cycle as tc
import test_cycle_commit as tcc

from cortex.scheduler.cycle import schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.state import ClusterState


def _cluster(seed: int, profile: str, lone: bool) -> tuple[ClusterState, PendingQueues]:
    st, pend, pending = tc._random_cluster(seed, tc.PROFILES[profile])
    if lone:
        # Keep the job likeliest to preempt: the highest priority, then the widest.
        keep = max(pending.values(), key=lambda j: (j.priority, j.gpus, j.id))
        for job in pending.values():
            if job is not keep:
                pend.remove(job)
    return st, pend


@pytest.mark.parametrize("profile", sorted(tc.PROFILES))
@pytest.mark.parametrize("deep", [True, False], ids=["deep", "quick"])
@pytest.mark.parametrize("lone", [True, False], ids=["lone", "queue"])
@pytest.mark.parametrize("seed", range(40))
def test_a_pass_leaves_the_index_order_of_rollback(
    profile: str, deep: bool, lone: bool, seed: int
) -> None:
    pol = tc.PROFILES[profile]
    st, pend = _cluster(seed, profile, lone)
    before = (tc._contents(st), tc._ordered(st))
    plan = schedule(tc._snap(st, pend), pol, deep=deep, commit=True)
    if not plan.committed:
        assert (tc._contents(st), tc._ordered(st)) == before
        return
    ref_st, ref_pend = _cluster(seed, profile, lone)
    tc._contents(ref_st)  # reading it flushes the lazy summaries, as `before` did above
    ref = schedule(tc._snap(ref_st, ref_pend), pol, deep=deep)
    assert [(s.job.id, s.placement) for s in plan.starts] == [
        (s.job.id, s.placement) for s in ref.starts
    ]
    assert [p.job.id for p in plan.preemptions] == [p.job.id for p in ref.preemptions]
    for p in ref.preemptions:  # a kept eviction (Statement.hand_over): the driver's stop
        ref_st.stop(p.job, p.job.queue_idx)
    for p in plan.preemptions:
        st.stop(p.job, p.job.queue_idx)
    tcc._drive(ref_st, ref.starts, adopt=False)
    tcc._drive(st, plan.starts, adopt=True)
    assert not st.given
    assert tc._contents(st) == tc._contents(ref_st)
    assert tc._ordered(st) == tc._ordered(ref_st)


def test_the_cases_include_uncommitted_passes_of_a_lone_job_and_of_a_queue() -> None:
    """The test above is only as good as its cases: lone jobs that preempt after nothing (kept:
    the log is the driver's order), and queues where a job starts and a later one evicts
    (rolled back)."""
    seen = set()
    for seed in range(40):
        for lone in (True, False):
            st, pend = _cluster(seed, "priority", lone)
            plan = schedule(tc._snap(st, pend), tc.PROFILES["priority"], deep=True, commit=True)
            if plan.preemptions:
                started_first = plan.starts and plan.starts[0].job.id not in {
                    p.reason.detail["by"] for p in plan.preemptions
                }
                seen.add((lone, bool(started_first), plan.committed))
    assert (True, False, True) in seen
    assert (False, True, False) in seen


def _full_fleet_but_one_free_gpu_each_on_nodes_0_to_2() -> tuple[ClusterState, PendingQueues]:
    st, pend, _ = tc._setup(tc.TINY, tc.Policies(), ("a",))
    # Nodes 0-2: one GPU free each (bucket of one-free nodes, in that order); node 3 whole to a
    # low-priority job; nodes 4-7 full of production work.
    for n in range(3):
        tc._run(st, 100 + n, ((n, 7),), prio=1000)
    tc._run(st, 110, ((3, 8),), prio=10)
    for n in range(4, 8):
        tc._run(st, 100 + n, ((n, 8),), prio=1000)
    return st, pend


def test_a_start_then_an_eviction_rolls_back_to_the_bucket_order() -> None:
    """A one-GPU job takes node 0, the first of its bucket; a later job evicts. Undoing the
    start puts node 0 back last in its bucket unless the start saved the order. (Committed,
    the same pass is kept since section 113: the start leaves node 0 and its pod without free
    capacity, so its place before the eviction does not show; test_cycle_hand_over_commute.)"""
    st, pend = _full_fleet_but_one_free_gpu_each_on_nodes_0_to_2()
    tc._pend(pend, 1, 1, 10.0, prio=1000, submit=0.0)
    tc._pend(pend, 2, 8, 10.0, prio=1000, submit=1.0)
    before = (tc._contents(st), tc._ordered(st))
    plan = schedule(tc._snap(st, pend), tc.Policies(), deep=True, commit=False)
    assert [s.job.id for s in plan.starts] == [1, 2]
    assert plan.starts[0].placement == ((0, 1),)
    assert [p.job.id for p in plan.preemptions] == [110]
    assert not plan.committed
    assert (tc._contents(st), tc._ordered(st)) == before


class _FailsOnJob:
    """An admission check that raises on one job (a policy's bug), admitting every other."""

    name = "fails"

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id

    def check(self, snap: Any, job: Any, flavor: int, alloc_gpus: int) -> None:
        if job.id == self.job_id:
            raise ZeroDivisionError("a policy's bug")


def _two_pending_one_faulty() -> tuple[ClusterState, PendingQueues, Any]:
    # Node 0 has 5 GPUs free, the others none: job 5 (2 GPUs) starts there, then job 6's
    # admission check raises.
    st, pend, pol = tc._setup()
    for n in range(1, 8):
        tc._run(st, 100 + n, ((n, 8),))
    tc._run(st, 99, ((0, 3),))
    tc._pend(pend, 5, 2, 10.0)
    tc._pend(pend, 6, 1, 10.0)
    return st, pend, dataclasses.replace(pol, admission=(_FailsOnJob(6),))


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "quick"])
def test_a_pass_that_raised_without_saving_the_order_refuses_the_next_pass(deep: bool) -> None:
    st, pend, pol = _two_pending_one_faulty()
    before = tc._contents(st)
    # A quick committing pass saves no key orders; so does a deep one only with one job
    # pending, so the deep case commits nothing here and keeps the order (next test).
    with pytest.raises(ZeroDivisionError):
        schedule(tc._snap(st, pend), pol, deep=deep, commit=True)
    assert tc._contents(st) == before  # the counts and members are back either way
    if deep:
        assert not st.order_lost
        return
    assert st.order_lost
    with pytest.raises(RuntimeError, match="index order was lost"):
        schedule(tc._snap(st, pend), tc.Policies(ordering=pol.ordering), deep=True)


def test_a_pass_that_raised_with_its_saves_leaves_a_usable_state() -> None:
    st, pend, pol = _two_pending_one_faulty()
    before = (tc._contents(st), tc._ordered(st))
    with pytest.raises(ZeroDivisionError):
        schedule(tc._snap(st, pend), pol, deep=False)  # no commit: every move saved
    assert (tc._contents(st), tc._ordered(st)) == before
    assert not st.order_lost
    plan = schedule(tc._snap(st, pend), tc.Policies(ordering=pol.ordering), deep=False)
    assert [s.job.id for s in plan.starts] == [5, 6]
