"""The Statement owns a cycle's watts as it owns its GPUs and quota: the driver's PowerView is
never changed by a cycle, what is left is the Statement's `Watts`, and a rollback restores it
exactly (saved values, not a second subtraction)."""

from __future__ import annotations

import dataclasses
import math

import pytest

import testkit
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.power import CapToFit, PowerView, Watts
from cortex.scheduler.reasons import Code
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.statement import Statement
from cortex.workload.job import Job


def _view(site_w: float, **kw: object) -> PowerView:
    # TINY: 8 nodes of 8 GPUs in one hall. Draw 600 W a GPU, idle 100 W, TDP 700 W; caps at
    # 100% and 50% of TDP. Uncapped, a GPU adds 600 - 100 = 500 W; at 50% min(350, 600) - 100
    # = 250 W.
    args: dict = {
        "site_headroom_w": site_w,
        "hall_headroom_w": [site_w],
        "levels": (1.0, 0.5),
        "floor": 1,
        "draw_w": lambda _k, _f: 600.0,
        "idle_w": [100.0],
        "tdp_w": [700.0],
        "node_hall": [0] * 8,
        "node_max_cap_w": [math.inf] * 8,
    }
    args.update(kw)
    return PowerView(**args)


def _job(jid: int, gpus: int) -> Job:
    job = Job(jid, f"p{jid}", "a", gpus, 100.0)
    job.queue_idx = 0
    return job


def test_a_cycle_spends_from_its_statement_and_leaves_the_drivers_view_unchanged() -> None:
    st, pend, _ = testkit.setup_cycle()
    for jid in (1, 2, 3, 4):
        pend.add(_job(jid, 8))
    view = _view(10_000.0)
    before = dataclasses.asdict(view)
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0, view)
    plan = schedule(snap, Policies(ordering=Fifo(), power=CapToFit()), deep=True)
    # Jobs 1 and 2 start uncapped: 8 x 500 = 4,000 W each, 2,000 W left. Job 3 does not fit
    # uncapped (4,000 > 2,000) and starts at 50%: 8 x 250 = 2,000 W, 0 W left. Job 4's least
    # (2,000 W at the floor) is over the 0 W left.
    assert [(s.job.id, s.cap_level) for s in plan.starts] == [(1, 0), (2, 0), (3, 1)]
    assert plan.blockers[4][0].code is Code.POWER_CAP
    assert plan.blockers[4][0].detail["headroom_mw"] == 0.0
    assert plan.power_headroom_w == 0.0
    # The view is as the driver built it: running the same snapshot again plans the same.
    assert dataclasses.asdict(view) == before
    again = schedule(snap, Policies(ordering=Fifo(), power=CapToFit()), deep=True)
    assert [(s.job.id, s.cap_level) for s in again.starts] == [(1, 0), (2, 0), (3, 1)]


def test_a_cycle_without_a_power_policy_reports_no_headroom() -> None:
    st, pend, _ = testkit.setup_cycle()
    pend.add(_job(1, 8))
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0, _view(1.0))
    plan = schedule(snap, Policies(ordering=Fifo()), deep=True)
    assert [s.job.id for s in plan.starts] == [1] and plan.power_headroom_w is None


def test_rollback_to_a_mark_restores_spent_and_credited_watts_exactly() -> None:
    st, _, _ = testkit.setup_cycle()
    victim = testkit.running_job(st, 7, ((0, 8),))
    view = _view(1_000.0, job_inc_w=lambda j: (4_000.0, {0: 4_000.0}) if j == 7 else (0.0, {}))
    stmt = Statement(st, view)
    w = stmt.watts
    assert w is not None
    stmt.spend_w(0.1, {0: 0.1})
    mark = stmt.mark()
    credit = w.credit(view, [victim])
    assert credit == (4_000.0, {0: 4_000.0})
    stmt.evict(victim)
    stmt.spend_w(4_500.0, {0: 4_500.0})
    stmt.credit_w([victim], credit)
    # 1,000 - 0.1 - 4,500 + 4,000 = 499.9; the ramp window is unlimited here.
    assert w.site_w == pytest.approx(499.9) and w.released == {7}
    assert w.credit(view, [victim]) == (0.0, {})  # its watts come back once
    stmt.rollback(mark)
    assert (w.site_w, w.hall_w, w.released) == (1_000.0 - 0.1, [1_000.0 - 0.1], set())
    assert w.ramp_w == math.inf
    stmt.rollback()
    assert (w.site_w, w.hall_w, w.ramp_w) == (1_000.0, [1_000.0], math.inf)


def test_the_ramp_window_spends_down_to_zero_and_comes_back_on_rollback() -> None:
    st, _, _ = testkit.setup_cycle()
    stmt = Statement(st, _view(10_000.0, ramp_headroom_w=3_000.0, ramp_limit_w=5_000.0))
    w = stmt.watts
    assert w is not None
    stmt.spend_w(4_000.0, {0: 4_000.0})
    assert (w.site_w, w.ramp_w) == (6_000.0, 0.0)  # max(3,000 - 4,000, 0)
    stmt.rollback()
    assert (w.site_w, w.ramp_w) == (10_000.0, 3_000.0)


def test_a_statement_without_a_view_has_no_watts_to_spend() -> None:
    st, _, _ = testkit.setup_cycle()
    stmt = Statement(st)
    assert stmt.watts is None
    with pytest.raises(AssertionError, match="spend_w without a power view"):
        stmt.spend_w(1.0, {})


def test_a_statement_without_a_view_has_no_watts_to_credit() -> None:
    st, _, _ = testkit.setup_cycle()
    with pytest.raises(AssertionError, match="credit_w without a power view"):
        Statement(st).credit_w([], (1.0, {}))


def test_credit_skips_a_victim_already_released_and_sums_the_rest_per_hall() -> None:
    """Watts.credit (issue 16: `continue` -> `break`, `site += w` -> `=`, and a hall's running
    sum read from the wrong key survived: no test credited more than one victim)."""
    inc = {
        1: (1_000.0, {0: 1_000.0}),
        2: (4_000.0, {0: 3_000.0, 1: 1_000.0}),
        3: (2_000.0, {0: 2_000.0}),
    }
    view = _view(10_000.0, hall_headroom_w=[10_000.0, 10_000.0], job_inc_w=lambda j: inc[j])
    w = Watts.of(view)
    w.released.add(1)  # job 1's watts came back earlier in this cycle
    # Jobs 2 and 3 only: site 4,000 + 2,000 = 6,000 W; hall 0 3,000 + 2,000 = 5,000; hall 1 1,000.
    got = w.credit(view, [_job(1, 8), _job(2, 8), _job(3, 8)])
    assert got == (6_000.0, {0: 5_000.0, 1: 1_000.0})


def _plain_spend(w: Watts, inc_w: float, halls_w: dict[int, float]) -> None:
    # spend_w's arithmetic as written before its one-hall path.
    w.site_w -= inc_w
    for h, x in halls_w.items():
        w.hall_w[h] -= x
    w.ramp_w = max(w.ramp_w - inc_w, 0.0)


@pytest.mark.parametrize("keep_order", [True, False], ids=["logged", "committed"])
@pytest.mark.parametrize(
    ("ramp_w", "inc_w"),
    [(3_000.0, 1_000.0), (1_000.0, 1_000.0), (500.0, 1_000.0), (-0.0, 0.0), (math.inf, 2.5),
     (math.nan, 1.0), (0.0, -0.0)],
)  # fmt: skip
def test_spending_one_hall_or_several_leaves_the_plain_doubles_and_rolls_back(
    ramp_w: float, inc_w: float, keep_order: bool
) -> None:
    """With keep_order off (a pass whose moves are committed, never undone) a spend is the same
    arithmetic and logs nothing to undo (RESULTS section 149)."""
    st, _, _ = testkit.setup_cycle()
    view = _view(10_000.0, hall_headroom_w=[7_000.0, 5_000.0, 3_000.0], ramp_headroom_w=ramp_w)
    for halls in ({1: inc_w}, {2: 0.25 * inc_w, 0: 0.75 * inc_w}, {0: 0.5, 1: 0.25, 2: 0.25}, {}):
        stmt = Statement(st, view)
        stmt.keep_order = keep_order
        w = stmt.watts
        assert w is not None
        want = Watts(view.site_headroom_w, [7_000.0, 5_000.0, 3_000.0], ramp_w, set())
        for _ in range(2):  # twice: the second spend starts from what the first left
            stmt.spend_w(inc_w, halls)
            _plain_spend(want, inc_w, halls)
            got = (w.site_w, w.hall_w, w.ramp_w)
            # repr: the same doubles, -0.0 and nan included
            assert repr(got) == repr((want.site_w, want.hall_w, want.ramp_w)), halls
            assert view.hall_headroom_w == [7_000.0, 5_000.0, 3_000.0]  # the view's own list
        if not keep_order:
            assert stmt.mark() == 0  # nothing logged
            continue
        stmt.rollback(0)
        assert repr((w.site_w, w.hall_w, w.ramp_w)) == repr(
            (view.site_headroom_w, list(view.hall_headroom_w), view.ramp_headroom_w)
        )


def test_the_watts_a_cycle_spends_are_a_list_of_its_own() -> None:
    # Watts.of copies the view's headroom (any sequence) into a new list: spending changes
    # neither the view's list nor the tuple a driver may hand.
    for halls in ([4_000.0, 2_000.0], (4_000.0, 2_000.0)):
        view = _view(10_000.0, hall_headroom_w=halls)
        w = Watts.of(view)
        assert type(w.hall_w) is list and w.hall_w == [4_000.0, 2_000.0]
        assert w.hall_w is not view.hall_headroom_w
        w.hall_w[0] -= 1.0
        assert list(view.hall_headroom_w) == [4_000.0, 2_000.0]


@pytest.mark.parametrize("deep", [False, True], ids=["quick", "lone"])
def test_a_committed_pass_spends_as_a_pass_that_rolls_back(deep: bool) -> None:
    """A pass with commit that saves no key orders (quick, or deep with one job) spends the same
    watts without logging them: the same starts, cap levels and headroom left."""
    plans = []
    for commit in (False, True):
        st, pend, _ = testkit.setup_cycle()
        for jid in (1, 2, 3, 4)[: 1 if deep else 4]:
            pend.add(_job(jid, 8))
        view = _view(10_000.0 if not deep else 3_000.0, hall_headroom_w=[9_000.0])
        snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0, view)
        plan = schedule(snap, Policies(ordering=Fifo(), power=CapToFit()), deep=deep, commit=commit)
        assert plan.committed is commit
        plans.append(plan)
    got = [([(s.job.id, s.cap_level) for s in p.starts], p.power_headroom_w) for p in plans]
    assert got[0] == got[1]
    # quick: 4,000 W, 4,000 W (hall 1,000 W left), then job 3 at 50%: 2,000 W > 1,000 W: none
    # lone: 4,000 W > 3,000 W; at 50%, 2,000 W: 1,000 W left
    assert got[0] == (([(1, 0), (2, 0)], 2_000.0) if not deep else ([(1, 1)], 1_000.0))
