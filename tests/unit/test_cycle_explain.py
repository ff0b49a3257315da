"""`schedule(..., explain=False)` (the twin's pass): the same decisions as a pass that explains
every job; it lists no blockers. Jobs blocked for GPUs behind reserved heads on every flavor are
counted in `plan.capacity_blocked` (each would have been listed with INSUFFICIENT_CAPACITY
first), every other blocked job in `plan.first_codes` by its first reason's code."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import test_cycle as tc

from cortex.scheduler import cycle
from cortex.scheduler.cycle import _Cycle, schedule
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Plan


def _decisions(plan: Plan) -> tuple:
    return (
        [(s.job.id, s.flavor, s.placement, s.gang_gpus, s.alloc_gpus) for s in plan.starts],
        [(p.job.id, p.reason.code) for p in plan.preemptions],
        plan.preempt_failed,
        None if plan.rest_reason is None else plan.rest_reason.to_dict(),
        plan.examined,
        plan.committed,
    )


def _first_codes(plan: Plan) -> Counter:
    return Counter(r[0].code for r in plan.blockers.values() if r)


@pytest.mark.parametrize("profile", sorted(tc.PROFILES))
@pytest.mark.parametrize("deep", [True, False], ids=["deep", "quick"])
def test_a_pass_that_does_not_explain_decides_the_same(profile: str, deep: bool) -> None:
    pol = tc.PROFILES[profile]
    counted = 0
    for seed in range(40):
        st_a, pend_a, _ = tc._random_cluster(seed, pol)
        st_b, pend_b, _ = tc._random_cluster(seed, pol)
        full = schedule(tc._snap(st_a, pend_a), pol, deep=deep, commit=True)
        lean = schedule(tc._snap(st_b, pend_b), pol, deep=deep, commit=True, explain=False)
        assert _decisions(lean) == _decisions(full), seed
        assert full.capacity_blocked == 0
        # The lean pass lists nothing; it counts what the full one lists, by first code.
        assert lean.blockers == {} and full.first_codes == {}
        want = Counter(lean.first_codes)
        want[Code.INSUFFICIENT_CAPACITY] += lean.capacity_blocked
        assert +want == _first_codes(full)
        counted += lean.capacity_blocked
    if deep:
        assert counted > 0  # the seeds do reach the counted branch (else this proves nothing)


def test_jobs_too_large_for_what_is_free_behind_the_head_are_counted() -> None:
    # 7 of 8 nodes busy until 1000: 8 GPUs free. Head 1 (40) reserves the only flavor with
    # shadow 1000 (8 + 56 freed >= 40, extra 24). Jobs 2 (16) and 3 (24) need more than the
    # 8 free: counted, not listed. Job 4 (8, ends at 10 <= 1000) backfills on node 7; job 5 (8)
    # then finds 0 free: counted too. So 3 counted, head listed, one start.
    st, pend, pol = tc._setup()
    tc._run(st, 100, tuple((n, 8) for n in range(7)), end=1000.0)
    tc._pend(pend, 1, 40, 10.0)
    tc._pend(pend, 2, 16, 10.0)
    tc._pend(pend, 3, 24, 10.0)
    tc._pend(pend, 4, 8, 10.0)
    tc._pend(pend, 5, 8, 10.0)
    plan = schedule(tc._snap(st, pend), pol, explain=False)
    assert [(s.job.id, s.placement) for s in plan.starts] == [(4, ((7, 8),))]
    assert plan.blockers == {}
    assert plan.first_codes == {Code.INSUFFICIENT_CAPACITY: 1}  # the head
    assert plan.capacity_blocked == 3
    assert plan.examined == 5


def test_a_plan_that_did_not_explain_refuses_to_give_reasons() -> None:
    # Job 2 (16) is blocked behind head 1 on a busy cluster: the explained plan names its
    # reason; the lean one has none listed and must say so rather than answer [] ("started").
    st, pend, pol = tc._setup()
    tc._run(st, 100, tuple((n, 8) for n in range(7)), end=1000.0)
    tc._pend(pend, 1, 40, 10.0)
    tc._pend(pend, 2, 16, 10.0)
    full = schedule(tc._snap(st, pend), pol)
    assert full.explained and full.reasons_for(2)
    lean = schedule(tc._snap(st, pend), pol, explain=False)
    assert not lean.explained
    with pytest.raises(ValueError, match="explain=False"):
        lean.reasons_for(2)


def test_a_lean_pass_builds_its_capacity_reasons_without_numbers() -> None:
    """A lean pass (explain=False) reads only the code of a capacity reason, so it shares one
    reason per code instead of building each with its numbers; an explaining pass builds them.
    Nodes 0-3 half busy, 4-7 busy: 16 GPUs free, none of them a whole node."""
    st, pend, pol = tc._setup()
    for n in range(4):
        tc._run(st, 100 + n, ((n, 4),))
    tc._run(st, 110, tuple((n, 8) for n in range(4, 8)))
    snap = tc._snap(st, pend)
    lean, full = _Cycle(snap, pol, True, explain=False), _Cycle(snap, pol, True)
    short = Reason(Code.INSUFFICIENT_CAPACITY)
    topo = Reason(Code.TOPOLOGY_UNAVAILABLE)
    for ask in (_Cycle.capacity_reason, _Cycle.exact_capacity_reason):
        assert _shown(ask(lean, 0, 24)) == _shown(short)
        assert _shown(ask(full, 0, 24)) == _shown(
            Reason(Code.INSUFFICIENT_CAPACITY, need=24, flavor=st.topo.flavors[0], free=16)
        )
    assert _shown(lean.exact_capacity_reason(0, 16)) == _shown(topo)
    assert _shown(full.exact_capacity_reason(0, 16))[1] == {
        "need": 16,
        "flavor": st.topo.flavors[0],
        "free": 16,
        "largest_block": 0,
        "block": "pod",
    }
    # Every job of a lean pass shares the reason of its code.
    assert lean.capacity_reason(0, 32) is lean.exact_capacity_reason(0, 24)


def test_schedule_without_explaining_runs_a_lean_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    # The twin's passes (explain=False) are the lean ones: the flag reaches the cycle's reasons.
    # 16 GPUs free, none of them a whole node: a 2-node gang fails placement, not the count.
    st, pend, pol = tc._setup()
    for n in range(4):
        tc._run(st, 100 + n, ((n, 4),))
    tc._run(st, 110, tuple((n, 8) for n in range(4, 8)))
    tc._pend(pend, 1, 16, 10.0)
    asked: list[bool] = []
    built = cycle._capacity_reason

    def seen(st: Any, f: int, need: int, lean: bool = False) -> Reason:
        asked.append(lean)
        return built(st, f, need, lean)

    monkeypatch.setattr(cycle, "_capacity_reason", seen)
    schedule(tc._snap(st, pend), pol, explain=False)
    schedule(tc._snap(st, pend), pol)
    assert asked == [True, False]


def _shown(r: Reason) -> tuple:
    return r.code, dict(r.detail)
