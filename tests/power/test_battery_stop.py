"""The battery search's early stop (power/battery.py): a size that breaks the ramp limit is
dispatched only up to its first violation. The search must find the same size and the same
dispatch as one that runs every size over the whole series (kept here as the reference)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex.power.battery import (
    BatterySpec,
    GridResult,
    dispatch,
    first_violation,
    smallest_battery,
)


def _reference_smallest(
    load: np.ndarray, step_s: float, ramp: float, max_units: int = 4096
) -> tuple[int, GridResult | None]:
    """The search before the early stop, verbatim but for the stop: every size runs fully."""
    if dispatch(load, step_s, None, None).max_ramp_mw_per_min <= ramp + 1e-9:
        return 0, None
    lo, hi = 0, 1
    while True:
        res = dispatch(load, step_s, ramp, BatterySpec.megapacks(hi))
        if res.violations == 0:
            break
        lo, hi = hi, hi * 2
        if hi > max_units:
            return -1, None
    best = res
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = dispatch(load, step_s, ramp, BatterySpec.megapacks(mid))
        if r.violations == 0:
            hi, best = mid, r
        else:
            lo = mid
    return hi, best


def _same(a: GridResult, b: GridResult) -> bool:
    return (
        a.grid_mw.tolist() == b.grid_mw.tolist()
        and a.soc_mwh.tolist() == b.soc_mwh.tolist()
        and (a.max_ramp_mw_per_min, a.violations, a.charged_mwh, a.discharged_mwh, a.losses_mwh)
        == (b.max_ramp_mw_per_min, b.violations, b.charged_mwh, b.discharged_mwh, b.losses_mwh)
    )


# Loads of a few plateaus (steps the grid must ramp through) with noise on top: some need no
# battery, most need a few Megapacks (54 of 60 in one draw of these shapes).
_loads = st.tuples(
    st.lists(st.floats(0, 40), min_size=2, max_size=10),
    st.integers(3, 40),
    st.integers(0, 2**32 - 1),
    st.sampled_from([2.0, 5.0, 20.0]),
)


@given(_loads)
@settings(max_examples=60, deadline=None)
def test_the_search_finds_the_same_battery_and_dispatch(case: tuple) -> None:
    levels, width, seed, ramp = case
    rng = np.random.default_rng(seed)
    load = np.repeat(np.asarray(levels), width) + rng.normal(0.0, 0.5, len(levels) * width)
    units, got = smallest_battery(load, 10.0, ramp, max_units=64)
    want_units, want = _reference_smallest(load, 10.0, ramp, max_units=64)
    assert units == want_units
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert got.violations == 0
        assert _same(got, want)


@given(_loads, st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_a_stopped_dispatch_is_the_full_one_up_to_its_first_violation(
    case: tuple, units: int
) -> None:
    levels, width, seed, ramp = case
    rng = np.random.default_rng(seed)
    load = np.repeat(np.asarray(levels), width) + rng.normal(0.0, 0.5, len(levels) * width)
    bat = BatterySpec.megapacks(units)
    full = dispatch(load, 10.0, ramp, bat)
    stopped = dispatch(load, 10.0, ramp, bat, stop_at_violation=True)
    if full.violations == 0:
        assert _same(stopped, full)
        return
    assert stopped.violations == 1
    n = len(stopped.grid_mw)
    # The first violating step is the last one kept: the full run's grid breaks the limit
    # there (|g[n-1] - g[n-2]| > the per-step limit) and nowhere before it.
    max_step = ramp * 10.0 / 60.0
    g = full.grid_mw
    moves = np.abs(np.diff(np.concatenate(([float(load[0])], g)))) > max_step + 1e-9
    assert n == int(np.argmax(moves)) + 1
    assert stopped.grid_mw.tolist() == g[:n].tolist()
    assert stopped.soc_mwh.tolist() == full.soc_mwh[:n].tolist()


@given(_loads, st.integers(1, 40))
@settings(max_examples=80, deadline=None)
def test_the_searchs_question_is_answered_as_dispatch_answers_it(case: tuple, units: int) -> None:
    # The search asks each size only where it first breaks the limit (first_violation: the
    # state-of-charge and grid recurrence alone). It must be the step a stopped dispatch ends on
    # (its last kept step), or -1 exactly when a whole dispatch breaks nothing.
    levels, width, seed, ramp = case
    rng = np.random.default_rng(seed)
    load = np.repeat(np.asarray(levels), width) + rng.normal(0.0, 0.5, len(levels) * width)
    bat = BatterySpec.megapacks(units)
    stopped = dispatch(load, 10.0, ramp, bat, stop_at_violation=True)
    at = first_violation(load, 10.0, ramp, bat)
    if stopped.violations == 0:
        assert at == -1
    else:
        assert at == len(stopped.grid_mw) - 1


@given(
    st.floats(0.2, 3.0),
    st.sampled_from([-1.0, 1.0]),
    st.sampled_from([0.003, 0.006, 0.02]),
    st.integers(1, 3),
)
@settings(max_examples=40, deadline=None)
def test_the_searchs_question_where_a_battery_runs_empty_or_full(
    step_mw: float, sign: float, ramp: float, units: int
) -> None:
    # A step the battery's power covers, held for hours against a very slow ramp: the battery
    # runs empty (a step up) or full (a step down) before the grid catches up, so the limits
    # on its charge, not on its power, end the dispatch.
    load = np.concatenate([np.full(6, 50.0), np.full(3000, 50.0 + sign * step_mw)])
    bat = BatterySpec.megapacks(units)
    stopped = dispatch(load, 10.0, ramp, bat, stop_at_violation=True)
    at = first_violation(load, 10.0, ramp, bat)
    assert at == (len(stopped.grid_mw) - 1 if stopped.violations else -1)


def test_a_hand_made_step_stops_where_the_grid_breaks_the_limit() -> None:
    # 50 MW for 6 steps, then 100 MW, against 6 MW/min (1 MW per 10 s step) and one Megapack
    # (1.9 MW here per data/battery_units.csv: far less than the 50 MW step). The grid may move
    # 1 MW per step; the battery covers at most its power rating, so the step at index 6
    # already moves the grid by 50 - 1.9 = 48.1 MW: the stopped run keeps 7 steps. The full
    # run goes on to 36 steps (the grid then follows within the limit: one violation in all).
    load = np.concatenate([np.full(6, 50.0), np.full(30, 100.0)])
    bat = BatterySpec.megapacks(1)
    assert bat.power_mw < 49.0
    stopped = dispatch(load, 10.0, 6.0, bat, stop_at_violation=True)
    assert stopped.violations == 1
    assert len(stopped.grid_mw) == 7
    assert stopped.grid_mw[-1] == 100.0 - bat.power_mw
    full = dispatch(load, 10.0, 6.0, bat)
    assert (len(full.grid_mw), full.violations) == (36, 1)
    assert first_violation(load, 10.0, 6.0, bat) == 6
    assert first_violation(load, 10.0, 6.0, BatterySpec.megapacks(64)) == -1
