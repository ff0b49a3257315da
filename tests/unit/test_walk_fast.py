"""The walk over pending jobs reads free GPUs and reservations only after a job that moved
them; it must decide, list and count exactly what the walk that read them for every job did
(tests/walk_reference.py, kept verbatim), in every profile, deep and quick, explaining or not,
with the examined limit binding or not."""

from __future__ import annotations

import dataclasses

import pytest
import test_cycle as tc

import cortex.scheduler.cycle as cycle_mod
import walk_reference
from cortex.scheduler.cycle import schedule
from cortex.scheduler.reasons import Code
from cortex.scheduler.snapshot import Plan


def books(plan: Plan) -> list:
    """What the twin books of a pass's blocked jobs: each one's first reason's code, counted in
    the order codes first appear (listed in `blockers`, or counted by a pass run with
    explain=False, which lists none)."""
    out: dict = {}
    for rs in plan.blockers.values():
        if rs:
            out[rs[0].code] = out.get(rs[0].code, 0) + 1
    for c, n in plan.first_codes.items():
        out[c] = out.get(c, 0) + n
    return list(out.items())


def _everything(plan: Plan, listed: bool = True) -> tuple:
    """All a pass decides, lists and counts; `listed` False: blockers as the twin books them
    (the reference walk lists what the walk, run with explain=False, only counts)."""
    return (
        [(s.job.id, s.flavor, s.placement, s.gang_gpus, s.alloc_gpus) for s in plan.starts],
        [(p.job.id, p.reason.to_dict()) for p in plan.preemptions],
        {j: [r.to_dict() for r in rs] for j, rs in plan.blockers.items()} if listed else None,
        list(plan.blockers) if listed else None,
        books(plan),
        None if plan.rest_reason is None else plan.rest_reason.to_dict(),
        plan.examined,
        plan.capacity_blocked,
        plan.preempt_failed,
        plan.committed,
    )


@pytest.mark.parametrize("profile", sorted(tc.PROFILES))
@pytest.mark.parametrize("deep", [True, False], ids=["deep", "quick"])
@pytest.mark.parametrize("explain", [True, False], ids=["explain", "count"])
@pytest.mark.parametrize("limit", [512, 3], ids=["all", "limited"])
def test_walk_decides_and_counts_as_the_reference_walk(
    profile: str, deep: bool, explain: bool, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pol = dataclasses.replace(tc.PROFILES[profile], max_examined=limit)
    counted = 0
    for seed in range(40):
        st_a, pend_a, _ = tc._random_cluster(seed, pol)
        st_b, pend_b, _ = tc._random_cluster(seed, pol)
        with monkeypatch.context() as m:
            m.setattr(cycle_mod, "_walk", walk_reference._walk)
            want = schedule(tc._snap(st_a, pend_a), pol, deep=deep, commit=True, explain=explain)
        got = schedule(tc._snap(st_b, pend_b), pol, deep=deep, commit=True, explain=explain)
        assert _everything(got, explain) == _everything(want, explain), seed
        assert tc._ordered(st_b) == tc._ordered(st_a), seed
        counted += got.capacity_blocked + dict(books(got)).get(Code.INSUFFICIENT_CAPACITY, 0)
    assert counted > 0  # the seeds reach the blocked-behind-heads branch


@pytest.mark.parametrize("deep", [True, False], ids=["deep", "quick"])
def test_a_start_that_takes_the_last_free_gpus_ends_a_quick_pass(
    deep: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """7 of 8 nodes busy; job 1 (8 GPUs) takes the last node. A quick pass stops at job 2 with
    "no free GPUs left" (examined 1); a deep pass, which may still preempt, walks on."""
    plans = []
    for reference in (True, False):
        st, pend, pol = tc._setup()
        tc._run(st, 100, tuple((n, 8) for n in range(7)), end=1000.0)
        tc._pend(pend, 1, 8, 10.0)
        tc._pend(pend, 2, 8, 10.0)
        tc._pend(pend, 3, 16, 10.0)
        with monkeypatch.context() as m:
            if reference:
                m.setattr(cycle_mod, "_walk", walk_reference._walk)
            plan = schedule(tc._snap(st, pend), pol, deep=deep, explain=False)
            plans.append(_everything(plan, listed=False))
    assert plans[0] == plans[1]
    examined, rest = plans[1][6], plans[1][5]
    if deep:
        assert examined == 3
    else:
        assert examined == 1 and rest is not None and rest["why"] == "no free GPUs left"
