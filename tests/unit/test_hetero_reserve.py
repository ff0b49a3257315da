"""A head blocked on several flavors reserves only the one where it starts first
(`Policies.reserve_earliest`, the hetero profiles; bench/RESULTS.md section 79).

The scene, hand-computed: two flavors of 4 nodes x 8 GPUs (H200 nodes 0-3, H100 nodes 4-7).
H200 runs 24 GPUs until t=5000, H100 runs 24 GPUs until t=1000; one node of each is free.
The head (job 1) needs 32 GPUs on either flavor: 8 free on each, so it is short on both. Its
shadow is 1000 on H100 (8 free + 24 freed) and 5000 on H200, with 0 GPUs left over on each.
Job 2 needs 8 GPUs for 6000 s on either flavor: it ends after both shadows, so wherever the
head holds a reservation it may not pass. Job 3 needs 8 GPUs for 6000 s on H100 only."""

from __future__ import annotations

import dataclasses
from typing import Any

import testkit
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.preemption import NoPreemption
from cortex.scheduler.reasons import Code
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

TWO = testkit.TWO_FLAVORS
H200, H100 = TWO.flavors.index("H200-SXM"), TWO.flavors.index("H100-SXM5")


def _pend(pend: PendingQueues, jid: int, gpus: int, work: float, flavors: tuple[int, ...]) -> Job:
    job = Job(jid, f"p{jid}", "a", gpus, work, submit_s=float(jid))
    job.queue_idx, job.priority, job.flavor_ids = 0, 100, flavors
    pend.add(job)
    return job


def _scene(pol: Policies, head_flavors: tuple[int, ...] = (H200, H100)) -> Any:
    st, pend, _ = testkit.setup_cycle(TWO, pol)
    testkit.running_job(st, 101, ((0, 8), (1, 8), (2, 8)), end=5000.0, start=-1e6)
    testkit.running_job(st, 102, ((4, 8), (5, 8), (6, 8)), end=1000.0, start=-1e6)
    _pend(pend, 1, 32, 10_000.0, head_flavors)
    _pend(pend, 2, 8, 6000.0, (H200, H100))
    _pend(pend, 3, 8, 6000.0, (H100,))
    return st, pend


def _plan(st: ClusterState, pend: PendingQueues, pol: Policies) -> Any:
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: job.work_s)
    return schedule(snap, pol)


POL = Policies(ordering=Fifo(), preemption=NoPreemption(), reserve_earliest=True)


def test_head_reserves_only_the_flavor_where_it_starts_first() -> None:
    st, pend = _scene(POL)
    plan = _plan(st, pend, POL)
    # The head reserves H100 (shadow 1000 < 5000), though H200 comes first in its order: job 2
    # starts on H200's free node 3, which it could not pass were H200 reserved too (it ends at
    # 6000 > 5000 and the head leaves 0 over). Reserving every flavor (the rule without the
    # switch), the first in the job's order (H200) or the latest (H200) starts nothing there.
    (s,) = plan.starts
    assert (s.job.id, s.flavor, [n for n, _ in s.placement]) == (2, H200, [3])
    # H100 stays reserved: job 3 (H100 only) ends past the head's start there and waits. A rule
    # that reserved nothing would start it on node 7.
    (r3,) = plan.blockers[3]
    assert r3.code is Code.RESERVED_FOR_HEAD
    assert (r3.detail["head"], r3.detail["flavor"]) == (1, "H100-SXM5")
    assert r3.detail["shadow_s"] == 1000.0


def test_without_the_switch_the_head_reserves_every_flavor_it_is_short_on() -> None:
    pol = dataclasses.replace(POL, reserve_earliest=False)
    st, pend = _scene(pol)
    plan = _plan(st, pend, pol)
    assert plan.starts == []
    assert [r.code for r in plan.blockers[2]] == [Code.RESERVED_FOR_HEAD] * 2
    assert {r.detail["flavor"]: r.detail["shadow_s"] for r in plan.blockers[2]} == {
        "H200-SXM": 5000.0,
        "H100-SXM5": 1000.0,
    }


def test_a_quick_pass_still_lets_nothing_pass_a_blocked_head() -> None:
    # A quick pass (Slurm's main scheduler) has no shadows: the head blocks every flavor it is
    # short on, with or without the switch, and the pass stops there.
    st, pend = _scene(POL)
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: job.work_s)
    plan = schedule(snap, POL, deep=False)
    assert plan.starts == []
    assert plan.rest_reason is not None and plan.rest_reason.code is Code.NOT_EXAMINED


def test_equal_shadows_reserve_the_first_flavor_in_the_job_order() -> None:
    # Both flavors free 24 GPUs at 1000: the head (H100 listed first now) reserves H100, so
    # job 2 starts on H200 and job 3 waits. Breaking the tie by flavor index (H200 is 0)
    # would reserve H200 instead and start job 3 on H100.
    st, pend, _ = testkit.setup_cycle(TWO, POL)
    testkit.running_job(st, 101, ((0, 8), (1, 8), (2, 8)), end=1000.0, start=-1e6)
    testkit.running_job(st, 102, ((4, 8), (5, 8), (6, 8)), end=1000.0, start=-1e6)
    _pend(pend, 1, 32, 10_000.0, (H100, H200))
    _pend(pend, 2, 8, 6000.0, (H100, H200))
    _pend(pend, 3, 8, 6000.0, (H100,))
    plan = _plan(st, pend, POL)
    (s,) = plan.starts
    assert (s.job.id, s.flavor) == (2, H200)
    assert plan.blockers[3][0].code is Code.RESERVED_FOR_HEAD


def test_only_the_hetero_profiles_reserve_the_earliest_flavor_alone() -> None:
    assert policies("hetero").reserve_earliest and policies("hetero-class").reserve_earliest
    assert not any(policies(p).reserve_earliest for p in ("fifo", "priority", "las"))
