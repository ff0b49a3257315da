"""A committed cycle (`schedule(..., commit=True)`) must leave the state exactly as rolling back
and then starting the plan's jobs does, index iteration order included: placement breaks ties
by that order, so any difference would change every later decision of a seeded run."""

from __future__ import annotations

import pytest
import test_cycle as tc

from cortex.scheduler.cycle import schedule
from cortex.scheduler.state import ClusterState


def _drive(st: ClusterState, plan_starts: list, adopt: bool) -> None:
    for s in plan_starts:
        job = s.job
        job.run_flavor, job.run_start_s, job.est_end_s = s.flavor, 1e9, 2e9
        if adopt:
            st.adopt(job)
        else:
            st.start(job, job.queue_idx, s.flavor, s.placement)


@pytest.mark.parametrize("profile", sorted(tc.PROFILES))
@pytest.mark.parametrize("deep", [True, False], ids=["deep", "quick"])
@pytest.mark.parametrize("seed", range(12))
def test_committed_cycle_leaves_the_state_of_rollback_then_start(
    profile: str, deep: bool, seed: int
) -> None:
    pol = tc.PROFILES[profile]
    st_a, pend_a, _ = tc._random_cluster(seed, pol)
    st_b, pend_b, _ = tc._random_cluster(seed, pol)
    plan_a = schedule(tc._snap(st_a, pend_a), pol, deep=deep)
    plan_b = schedule(tc._snap(st_b, pend_b), pol, deep=deep, commit=True)
    assert [(s.job.id, s.placement) for s in plan_a.starts] == [
        (s.job.id, s.placement) for s in plan_b.starts
    ]
    if not plan_b.committed:
        return
    assert plan_b.starts or plan_b.blockers  # a plan committed with nothing is still a plan
    for p in plan_a.preemptions:  # kept evictions: tests/unit/test_cycle_hand_over.py
        st_a.stop(p.job, p.job.queue_idx)
        st_b.stop(p.job, p.job.queue_idx)
    _drive(st_a, plan_a.starts, adopt=False)
    _drive(st_b, plan_b.starts, adopt=True)
    assert tc._contents(st_b) == tc._contents(st_a)
    assert tc._ordered(st_b) == tc._ordered(st_a)


def test_a_cycle_whose_log_is_the_drivers_order_keeps_its_eviction() -> None:
    st, pend, pol = tc._setup(tc.TINY, tc.Policies(), ("a",))
    # A low-priority job holds node 0 whole; a production job of 8 GPUs arrives on a full fleet.
    low = tc._run(st, 100, ((0, 8),), prio=10)
    for n in range(1, 8):
        tc._run(st, 100 + n, ((n, 8),), prio=1000)
    tc._pend(pend, 1, 8, 10.0, prio=1000)
    plan = schedule(tc._snap(st, pend), pol, deep=True, commit=True)
    assert [p.job.id for p in plan.preemptions] == [low.id]
    assert plan.committed  # evict, then start: what the driver does, in its order
    assert list(st.given) == [low.id] and low.id not in st.allocations
    assert st.allocations[1].placement == ((0, 8),)
    st.stop(low, low.queue_idx)
    assert not st.given and low.id not in st.running
