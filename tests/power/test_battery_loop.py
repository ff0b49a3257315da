"""The battery dispatch's loop (power/battery.py) runs once per 10-second step, several times in
the battery search: its min/max/abs are written as comparisons and its results kept in lists.
It must give exactly what the plain recurrence gives (kept here verbatim as the reference), the
same floats in the same order, for any load, battery, start and early stop."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cortex.power.battery as battery_mod
from cortex.power.battery import (
    BatterySpec,
    GridResult,
    _full_step_bounds,
    _in_order_sum,
    dispatch,
    first_violation,
    max_ramp_mw_per_min,
    probe,
)
from cortex.power.grid import grid_params


def _reference(
    load_mw: np.ndarray,
    step_s: float,
    ramp_mw_per_min: float,
    battery: BatterySpec,
    stop_at_violation: bool = False,
    start: tuple[float, float] | None = None,
) -> GridResult:
    """The dispatch before the rewrite, verbatim but for the debug checks."""
    n = len(load_mw)
    eta = math.sqrt(battery.efficiency)
    cap = battery.energy_mwh
    target = battery.initial_soc * cap
    p_max = battery.power_mw
    h = step_s / 3600.0
    max_step = ramp_mw_per_min * step_s / 60.0
    g_params = grid_params()
    bias_max = g_params["battery_bias_fraction"] * p_max
    horizon_h = g_params["battery_recharge_horizon_s"] / 3600.0
    soc = target if start is None else start[0]
    g = float(load_mw[0]) if start is None else start[1]
    grid = np.empty(n)
    socs = np.empty(n)
    charged = discharged = losses = 0.0
    violations = 0
    for i, load in enumerate(load_mw.tolist()):
        bias = (target - soc) / horizon_h
        want = load + max(-bias_max, min(bias_max, bias))
        g_new = min(max(want, g - max_step), g + max_step)
        b = load - g_new
        if b > 0:
            b = min(b, p_max, soc * eta / h)
            soc -= b / eta * h
            losses += b / eta * h - b * h
            discharged += b * h
        elif b < 0:
            b = max(b, -p_max, -(cap - soc) / eta / h)
            soc -= b * eta * h
            losses += -b * h * (1 - eta)
            charged += -b * h
        g_real = load - b
        if abs(g_real - g) > max_step + 1e-9:
            violations += 1
            if stop_at_violation:
                n = i + 1
                grid, socs = grid[:n], socs[:n]
                grid[i], socs[i] = g_real, soc
                ramp = max_ramp_mw_per_min(grid, step_s)
                return GridResult(step_s, grid, socs, ramp, violations, charged, discharged, losses)
        g = g_real
        grid[i] = g
        socs[i] = soc
    ramp = max_ramp_mw_per_min(grid, step_s)
    return GridResult(step_s, grid, socs, ramp, violations, charged, discharged, losses)


def _same(a: GridResult, b: GridResult) -> bool:
    return (
        a.grid_mw.tolist() == b.grid_mw.tolist()
        and a.soc_mwh.tolist() == b.soc_mwh.tolist()
        and (a.max_ramp_mw_per_min, a.violations, a.charged_mwh, a.discharged_mwh, a.losses_mwh)
        == (b.max_ramp_mw_per_min, b.violations, b.charged_mwh, b.discharged_mwh, b.losses_mwh)
    )


# Plateaus the grid must ramp through, with noise on top: the battery supplies, absorbs, hits
# its power limit, runs empty or full, and the grid breaks the limit on some sizes.
_loads = st.tuples(
    st.lists(st.floats(0, 60), min_size=1, max_size=10),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.5, 3.0]),
)


@given(
    _loads,
    st.integers(1, 40),
    st.sampled_from([2.0, 5.0, 20.0]),
    st.booleans(),
    st.sampled_from([None, (0.0, 10.0), (1.0, 55.5)]),
    st.sampled_from([0.5, 0.0, 1.0]),
)
@settings(max_examples=150, deadline=None)
def test_the_loop_gives_what_the_plain_recurrence_gives(
    case: tuple,
    units: int,
    ramp: float,
    stop: bool,
    start: tuple[float, float] | None,
    soc0: float,
) -> None:
    levels, width, seed, noise = case
    rng = np.random.default_rng(seed)
    load = np.repeat(np.asarray(levels), width) + rng.normal(0.0, noise, len(levels) * width)
    mp = BatterySpec.megapacks(units)
    bat = BatterySpec(mp.energy_mwh, mp.power_mw, mp.efficiency, initial_soc=soc0)
    got = dispatch(load, 10.0, ramp, bat, stop_at_violation=stop, start=start)
    want = _reference(load, 10.0, ramp, bat, stop_at_violation=stop, start=start)
    assert _same(got, want)


def test_a_battery_at_its_limits_on_a_hand_made_load() -> None:
    # 0 -> 30 MW -> 0 against 3 MW/min (0.5 MW per 10 s step), two Megapacks: the battery
    # supplies at its power rating, runs down, then absorbs as the grid eases down; the same
    # floats as the plain recurrence at every step, with ramp violations in both directions.
    load = np.concatenate([np.zeros(5), np.full(200, 30.0), np.zeros(200)])
    bat = BatterySpec.megapacks(2)
    got = dispatch(load, 10.0, 3.0, bat)
    want = _reference(load, 10.0, 3.0, bat)
    assert got.violations > 0 and got.discharged_mwh > 0 and got.charged_mwh > 0
    assert _same(got, want)


def test_a_battery_run_empty_and_full_at_its_power_rating() -> None:
    # One Megapack (1.9 MW, 3.9 MWh) at full power, drained by a load rising 1 MW a step
    # against 0.5 MW/min, then filled as it falls: it passes through every charge near empty
    # and near full,
    # where the loop computes the energy bounds (it skips them only where a step at full
    # power cannot reach either: _full_step_bounds).
    load = np.concatenate([np.arange(500.0), 500.0 - np.arange(1000.0)])
    bat = BatterySpec.megapacks(1)
    got = dispatch(load, 10.0, 0.5, bat)
    want = _reference(load, 10.0, 0.5, bat)
    assert float(got.soc_mwh.min()) < 1e-9 and float(got.soc_mwh.max()) > bat.energy_mwh - 1e-9
    assert _same(got, want)
    stop = probe(load, 10.0, 0.5, bat)
    assert stop.violation == first_violation(load, 10.0, 0.5, bat) >= 0


@given(
    st.floats(0.5, 1.0),
    st.floats(1e-3, 1e20),
    st.sampled_from([1e-3, 10.0 / 3600.0, 1.0]),
    st.floats(1e-6, 1e6),
)
@settings(max_examples=200, deadline=None)
def test_the_full_step_bounds_hold_at_their_thresholds(
    eta: float, cap: float, h: float, p_max: float
) -> None:
    # At the threshold itself (and so at every charge beyond: the bounds are monotone) a step
    # at full power reaches neither bound; where rounding cannot promise that, never skipped.
    low, high = _full_step_bounds(eta, cap, h, p_max)
    assert low == math.inf or low * eta / h >= p_max
    assert high == -math.inf or -(cap - high) / eta / h <= -p_max
    if cap > 1e3 * p_max * h and cap < 1e12:
        assert low < math.inf and high > -math.inf  # the common case skips


@pytest.mark.parametrize("horizon_s", [1800.0, 5400.0, 7200.0, 3600.0])
@pytest.mark.parametrize("stop", [False, True])
def test_a_recharge_horizon_other_than_an_hour(
    monkeypatch: pytest.MonkeyPatch, horizon_s: float, stop: bool
) -> None:
    # The loop skips the bias's division by the horizon in hours only where that is 1.0 (the
    # shipped grid.csv); any other horizon divides, as the reference does (both read the
    # patched parameters).
    rng = np.random.default_rng(7)
    load = np.repeat(rng.uniform(0.0, 40.0, 12), 60) + rng.normal(0.0, 0.5, 720)
    big = BatterySpec.megapacks(40)
    an_hour = dispatch(load, 10.0, 5.0, big).soc_mwh.tolist()
    params = dict(grid_params(), battery_recharge_horizon_s=horizon_s)
    monkeypatch.setattr(battery_mod, "grid_params", lambda: params)
    monkeypatch.setattr(sys.modules[__name__], "grid_params", lambda: params)
    for units in (1, 3, 8, 40):
        bat = BatterySpec.megapacks(units)
        got = dispatch(load, 10.0, 5.0, bat, stop_at_violation=stop)
        want = _reference(load, 10.0, 5.0, bat, stop_at_violation=stop)
        assert _same(got, want)
    # The horizon reaches the loop: another one moves a large battery's charge otherwise.
    assert (dispatch(load, 10.0, 5.0, big).soc_mwh.tolist() != an_hour) == (horizon_s != 3600.0)


def test_the_sums_add_their_terms_in_step_order() -> None:
    # Terms where pairwise addition (np.sum) and a running total give other doubles: the
    # dispatch's energy sums are running totals.
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, 1000) * 10.0 ** rng.integers(-8, 8, 1000)
    total = 0.0
    for v in x.tolist():
        total += v
    assert float(np.sum(x)) != total
    assert _in_order_sum(x) == total
    assert _in_order_sum(np.zeros(0)) == 0.0
    # A running total from 0.0 is +0.0 after -0.0 terms (0.0 + -0.0 is +0.0).
    assert math.copysign(1.0, _in_order_sum(np.array([-0.0, -0.0]))) == 1.0


def test_idle_steps_add_nothing_to_the_sums() -> None:
    # A load flat at the start, the battery at its target: it neither supplies nor absorbs
    # (b == 0.0) for those steps, then moves both ways; the sums and series are the loop's.
    load = np.concatenate([np.full(30, 12.0), np.full(40, 30.0), np.full(40, 2.0), np.zeros(30)])
    bat = BatterySpec.megapacks(3)
    got = dispatch(load, 10.0, 3.0, bat)
    want = _reference(load, 10.0, 3.0, bat)
    assert got.charged_mwh > 0 and got.discharged_mwh > 0 and got.losses_mwh > 0
    assert _same(got, want)
    assert got.grid_mw.flags.writeable and got.soc_mwh.flags.writeable
    idle = dispatch(np.full(20, 5.0), 10.0, 3.0, bat)
    assert (idle.charged_mwh, idle.discharged_mwh, idle.losses_mwh) == (0.0, 0.0, 0.0)
    assert math.copysign(1.0, idle.losses_mwh) == 1.0


def test_a_charge_past_empty_or_full_keeps_its_branch_books() -> None:
    # Carried on from a charge a hair below empty (above full), a step that supplies (absorbs)
    # meets the energy bound, which turns its power's sign: the step's sums are still its
    # branch's (a negative amount discharged, a negative amount charged), as in the loop.
    bat = BatterySpec.megapacks(2)
    cases = (
        (np.array([40.0, 45.0, 45.0]), (-1e-9, 30.0)),
        (np.array([20.0, 15.0, 15.0]), (bat.energy_mwh + 1e-9, 30.0)),
    )
    for load, start in cases:
        got = dispatch(load, 10.0, 3.0, bat, start=start)
        assert _same(got, _reference(load, 10.0, 3.0, bat, start=start))
        assert min(got.charged_mwh, got.discharged_mwh) < 0.0
