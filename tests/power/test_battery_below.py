"""`_fails_below` (power/battery.py): the battery search's proof, from the whole dispatch of a
size that passes, that one unit fewer breaks the ramp limit. It may only say True where that
size's own dispatch fails; False (a probe is run) is always safe. Held on synthetic records
(each test one reason to refuse) and against real dispatches of random loads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex.power import battery
from cortex.power.battery import BatterySpec, GridResult, dispatch, probe
from cortex.power.grid import grid_params

UNITS = 9  # the size asked about; the record is of UNITS + 1
N = 20
SPIKE = 10


def _record(power_mw: np.ndarray, x_mwh: np.ndarray, load_mw: float = 50.0) -> GridResult:
    """A passing record of UNITS + 1 units: each step's battery power and its charge's distance
    from the target after the step."""
    big = BatterySpec.megapacks(UNITS + 1)
    grid = load_mw - power_mw
    soc = big.initial_soc * big.energy_mwh + x_mwh
    return GridResult(10.0, grid, soc, 0.0, 0, 0.0, 0.0, 0.0)


def _asks(power_mw: np.ndarray, x_mwh: np.ndarray) -> bool:
    return battery._fails_below(np.full(N, 50.0), 10.0, 6.0, _record(power_mw, x_mwh), UNITS)


def _spike(factor: float) -> np.ndarray:
    power = np.zeros(N)
    power[SPIKE] = factor * BatterySpec.megapacks(UNITS).power_mw
    return power


def test_a_power_past_the_smaller_limit_with_all_else_quiet_fails_it() -> None:
    assert _asks(_spike(1.01), np.zeros(N))
    assert _asks(-_spike(1.01), np.zeros(N))  # absorbed alike


def test_no_power_past_the_limit_or_one_within_the_margin_proves_nothing() -> None:
    assert not _asks(np.zeros(N), np.zeros(N))
    assert not _asks(_spike(0.99), np.zeros(N))
    assert not _asks(_spike(1.0), np.zeros(N))  # at the limit: rounding decides, so a probe
    assert not _asks(_spike(1 + 1e-9), np.zeros(N))


def test_a_near_limit_step_before_the_spike_proves_nothing() -> None:
    # Within the margin below the limit earlier: the smaller battery may have clamped there.
    power = _spike(1.01)
    power[3] = BatterySpec.megapacks(UNITS).power_mw * (1 - 1e-9)
    assert not _asks(power, np.zeros(N))


def _x_at(step: int, x: float) -> np.ndarray:
    out = np.zeros(N)
    out[step] = x
    return out


def test_a_limit_of_the_charge_reached_before_the_spike_proves_nothing() -> None:
    small = BatterySpec.megapacks(UNITS)
    half = small.initial_soc * small.energy_mwh
    bias_limit_mwh = (
        grid_params()["battery_bias_fraction"]
        * small.power_mw
        * (grid_params()["battery_recharge_horizon_s"] / 3600.0)
    )
    # Each below its bound passes; past it, refused. The bias's bound is the tightest here.
    assert bias_limit_mwh < half - 0.1
    assert _asks(_spike(1.01), _x_at(3, 0.99 * bias_limit_mwh))
    assert not _asks(_spike(1.01), _x_at(3, 1.01 * bias_limit_mwh))
    assert not _asks(_spike(1.01), _x_at(3, -1.01 * bias_limit_mwh))


def test_the_charge_bounds_less_a_full_step_are_kept(monkeypatch) -> None:
    # A bias too weak to bind first: the charge's own bounds (less a step at full power) decide.
    monkeypatch.setattr(
        battery, "grid_params", lambda: {**grid_params(), "battery_bias_fraction": 1e6}
    )
    small = BatterySpec.megapacks(UNITS)
    half = small.initial_soc * small.energy_mwh
    step = small.power_mw * (10.0 / 3600.0) / np.sqrt(small.efficiency)
    assert _asks(_spike(1.01), _x_at(3, half - 2 * step))
    assert not _asks(_spike(1.01), _x_at(3, half - 0.5 * step))
    assert _asks(_spike(1.01), _x_at(3, -half + 2 * step))
    assert not _asks(_spike(1.01), _x_at(3, -half + 0.5 * step))


def test_the_charge_read_is_the_one_each_step_starts_from() -> None:
    # The spike's own step may leave the charge anywhere: the step that broke it has run.
    assert _asks(_spike(1.01), _x_at(SPIKE, 1e3))
    assert not _asks(_spike(1.01), _x_at(SPIKE - 1, 1e3))


_cases = st.tuples(
    st.lists(st.floats(0, 40), min_size=2, max_size=8),
    st.integers(3, 30),
    st.integers(0, 2**32 - 1),
    st.sampled_from([2.0, 5.0, 20.0]),
    st.integers(1, 24),
)


@given(_cases)
@settings(max_examples=120, deadline=None)
def test_a_size_said_to_fail_fails(case: tuple) -> None:
    levels, width, seed, ramp, units = case
    rng = np.random.default_rng(seed)
    load = np.repeat(np.asarray(levels), width) + rng.normal(0.0, 0.5, len(levels) * width)
    passed = dispatch(load, 10.0, ramp, BatterySpec.megapacks(units + 1), stop_at_violation=True)
    if passed.violations:
        return  # not a record the search asks about
    if battery._fails_below(load, 10.0, ramp, passed, units):
        assert probe(load, 10.0, ramp, BatterySpec.megapacks(units)).violation >= 0


def test_random_steps_are_mostly_proven_without_a_probe() -> None:
    # Steps of a few to 40 MW: the smallest size's record proves the size below fails in most
    # of them (a refusal is safe but costs a probe; a version that never proves is caught).
    rng = np.random.default_rng(7)
    proven = asked = 0
    for _ in range(40):
        levels = rng.uniform(0, 40, 5)
        load = np.repeat(levels, 30) + rng.normal(0.0, 0.5, 150)
        for units in range(1, 30):
            r = dispatch(load, 10.0, 5.0, BatterySpec.megapacks(units + 1), stop_at_violation=True)
            if r.violations == 0:
                break
        else:
            continue
        if dispatch(load, 10.0, 5.0, BatterySpec.megapacks(units)).violations == 0:
            continue  # units + 1 is not the smallest
        asked += 1
        proven += battery._fails_below(load, 10.0, 5.0, r, units)
    assert asked >= 20
    assert proven >= asked * 3 // 4


def test_a_one_unit_answer_is_dispatched_once_with_nothing_below_to_prove() -> None:
    # 60 -> 57.9 MW against 2 MW/min (1/3 MW a step): 1.77 MW absorbed, one unit (1.9 MW);
    # there is no size 0 to ask about.
    load = np.concatenate([np.full(6, 60.0), np.full(50, 57.9)])
    tried: list[int] = []
    real = battery.dispatch

    def counted(load_mw, step_s, ramp, bat, **kw):
        if bat is not None:
            tried.append(round(bat.power_mw / BatterySpec.megapacks(1).power_mw))
        return real(load_mw, step_s, ramp, bat, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(battery, "dispatch", counted)
        units, got = battery.smallest_battery(load, 10.0, 2.0)
    assert (units, tried) == (1, [1])
    assert got is not None and got.violations == 0
