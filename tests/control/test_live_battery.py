"""The site battery in the live control plane (control/live_battery.py): the twin's dispatch
(power/battery.py) stepped on the facility draw as the loop reports it; settings that declare
half a battery, or a battery with no power books to follow, are refused naming the field."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cortex.control.config import Settings
from cortex.control.live_battery import MAX_CATCHUP_STEPS, LiveBattery
from cortex.errors import InputError
from cortex.power.battery import BatterySpec, dispatch


def _battery(ramp: float = 0.06) -> LiveBattery:
    return LiveBattery(BatterySpec(energy_mwh=1.0, power_mw=1.0, efficiency=1.0), ramp)


def test_a_load_step_is_covered_by_the_battery_while_the_grid_ramps() -> None:
    """1 MWh / 1 MW, lossless, grid ramp 0.06 MW/min = 0.01 MW per 10 s step. 0 MW until
    10 s, then 0.5 MW. Step 1 (0-10 s): 0 MW, nothing moves. Step 2: the grid goes 0 -> 0.01,
    the battery gives 0.49 MW for 10 s: 0.49 / 360 MWh. Step 3: the bias toward the 0.5 MWh
    target (0.49/360 MW over a 1 h horizon) cannot beat the ramp: grid 0.02, battery 0.48.
    Charge: 0.5 - (0.49 + 0.48) / 360 MWh."""
    b = _battery()
    b.advance(0.0, 0.0)
    b.advance(10.0, 0.5)
    assert b.state.steps == 1 and b.state.soc_mwh == 0.5 and b.state.grid_mw == 0.0
    b.advance(20.0, 0.5)
    assert b.state.soc_mwh == pytest.approx(0.5 - 0.49 / 360)
    b.advance(30.0, 0.5)
    s = b.state
    assert s.steps == 3
    assert s.grid_mw == pytest.approx(0.02)
    assert s.battery_mw == pytest.approx(0.48)
    assert s.soc_mwh == pytest.approx(0.5 - 0.97 / 360)
    assert s.soc_fraction == pytest.approx((0.5 - 0.97 / 360) / 1.0)
    assert s.discharged_mwh == pytest.approx(0.97 / 360)
    assert s.at == 30.0


def test_draw_between_ticks_is_integrated_into_the_step() -> None:
    """0 MW for 4 s then 0.3 MW for 6 s: the step's mean is 0.3 x 6 / 10 = 0.18 MW; the grid
    starts at it, so the battery does nothing."""
    b = _battery()
    b.advance(0.0, 0.0)
    b.advance(4.0, 0.3)
    assert b.state.steps == 0  # the step is still open
    b.advance(10.0, 0.3)
    assert b.state.load_mw == pytest.approx(0.18)
    assert b.state.grid_mw == pytest.approx(0.18) and b.state.soc_mwh == 0.5


def test_step_by_step_is_the_twins_dispatch_over_the_whole_series() -> None:
    """The rule is written once: 200 steps fed one tick at a time end where one dispatch of
    the whole series ends."""
    rng = np.random.default_rng(5)
    load = np.repeat(rng.uniform(0.0, 0.8, 20), 10)
    spec = BatterySpec(energy_mwh=0.2, power_mw=0.3, efficiency=0.9)
    live = LiveBattery(spec, 0.5)
    for i, x in enumerate(load):
        live.advance(10.0 * i, float(x))
    live.advance(10.0 * len(load), 0.0)
    twin = dispatch(load, 10.0, 0.5, spec)
    assert live.state.steps == len(load)
    assert live.state.soc_mwh == twin.soc_mwh[-1]
    assert live.state.grid_mw == twin.grid_mw[-1]
    assert live.state.violations == twin.violations
    assert live.state.losses_mwh == pytest.approx(twin.losses_mwh)


def test_a_long_pause_replays_at_most_a_day_of_steps() -> None:
    """48 h without a tick: the first 10 s step, then at most MAX_CATCHUP_STEPS more."""
    b = _battery()
    b.advance(0.0, 0.5)
    b.advance(48 * 3600.0, 0.5)
    assert b.state.steps == 1 + MAX_CATCHUP_STEPS


def test_no_battery_declared_is_none_and_defaults_come_from_the_data_files() -> None:
    none = SimpleNamespace(battery_mwh=None)
    assert LiveBattery.from_settings(none) is None
    st = SimpleNamespace(
        battery_mwh=7.8, battery_mw=3.8, battery_efficiency=None, grid_ramp_mw_per_min=None
    )
    b = LiveBattery.from_settings(st)
    assert b is not None
    # power/data/battery_units.csv: the Megapack's 0.9; grid.csv: 10 MW/min.
    assert b.spec.efficiency == 0.9 and b.ramp_mw_per_min == 10.0
    assert b.state.soc_fraction == 0.5  # starts at its target charge


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"battery_mwh": 4.0, "power_policy": "cap", "site_cap_kw": 100.0}, "battery_mw"),
        ({"battery_mwh": 4.0, "battery_mw": 2.0}, "battery_mwh"),  # no power books
        ({"battery_mwh": -1.0, "battery_mw": 2.0, "site_cap_kw": 100.0}, "battery_mwh"),
        (
            {
                "battery_mwh": 1.0,
                "battery_mw": 2.0,
                "site_cap_kw": 100.0,
                "battery_efficiency": 1.5,
            },
            "battery_efficiency",
        ),
    ],
)
def test_bad_battery_settings_name_the_field(
    tmp_path: Path, given: dict[str, object], field: str
) -> None:
    with pytest.raises(InputError) as e:
        Settings.from_env(home=tmp_path, **given)
    # The flag where the value was given, else the variable that sets it.
    assert e.value.source in ("--" + field.replace("_", "-"), "CORTEX_" + field.upper())


def test_the_draw_is_read_at_most_once_a_second() -> None:
    b = _battery()
    assert b.due(0.0)
    b.advance(0.0, 0.1)
    assert not b.due(0.5) and b.due(1.0)


def test_the_charge_history_keeps_a_point_a_minute_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps end every 10 s from 10 to 300 s: the first is kept, then one 60 s or more after
    the last kept: 10, 70, 130, 190, 250. With room for 3, the oldest two go."""
    b = _battery()
    for i in range(31):
        b.advance(10.0 * i, 0.0)
    assert [t for t, _, _ in b.history] == [10.0, 70.0, 130.0, 190.0, 250.0]
    assert all(soc == 0.5 for _, soc, _ in b.history)
    monkeypatch.setattr("cortex.control.live_battery.HISTORY_POINTS", 3)
    short = _battery()
    for i in range(31):
        short.advance(10.0 * i, 0.0)
    assert [t for t, _, _ in short.history] == [130.0, 190.0, 250.0]
