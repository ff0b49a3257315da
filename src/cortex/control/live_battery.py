"""A site battery's state of charge in the live control plane: the twin's dispatch
(power/battery.py `dispatch`: the grid follows the load within its ramp limit, the battery
covers the difference and drifts back to its target charge between steps) run step by step on
the facility draw the live power books model, so a rule written once is what both drivers use.

The site declares its battery in the settings (`battery_mwh`, `battery_mw`, and optionally
`battery_efficiency`, else the Megapack unit's in power/data/battery_units.csv, and
`grid_ramp_mw_per_min`, else power/data/grid.csv's). The scheduler thread calls `advance` each
tick with the facility draw; the draw held since the last call is integrated into the
dispatch's 10-second steps. Readers take the immutable `BatteryState` published after each
step. It is modelled, not measured: no battery telemetry reaches the control plane. It starts
at its target charge when the service starts (a restart forgets the charge).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from cortex.power.battery import STEP_S, BatterySpec, dispatch
from cortex.power.grid import grid_params

# After a pause of the loop longer than this, the steps beyond it are not replayed: at a
# constant load the charge has long settled back to its target (an hour's recharge horizon).
MAX_CATCHUP_STEPS = 8640  # a day of 10-second steps
# The facility draw is read at most this often (a read walks every running job's books); the
# draw read holds until the next one.
READ_EVERY_S = 1.0
# The charge's history for the power page: one point a minute, the last day.
HISTORY_EVERY_S = 60.0
HISTORY_POINTS = 1440


@dataclass(frozen=True)
class BatteryState:
    energy_mwh: float
    power_mw: float
    efficiency: float  # round trip
    ramp_mw_per_min: float  # the grid connection's limit it buffers
    soc_mwh: float
    load_mw: float  # the facility draw in the last step
    grid_mw: float  # what the grid supplied in it
    battery_mw: float  # > 0: discharging, < 0: charging
    charged_mwh: float = 0.0
    discharged_mwh: float = 0.0
    losses_mwh: float = 0.0
    violations: int = 0  # steps where the grid had to move faster than its limit
    steps: int = 0
    at: float | None = None  # end of the last step (Unix s); None before the first

    @property
    def soc_fraction(self) -> float:
        return self.soc_mwh / self.energy_mwh

    def to_dict(self) -> dict[str, Any]:
        return {
            "energy_mwh": self.energy_mwh,
            "power_mw": self.power_mw,
            "efficiency": self.efficiency,
            "ramp_mw_per_min": self.ramp_mw_per_min,
            "soc_mwh": self.soc_mwh,
            "soc_fraction": self.soc_fraction,
            "load_mw": self.load_mw,
            "grid_mw": self.grid_mw,
            "battery_mw": self.battery_mw,
            "charged_mwh": self.charged_mwh,
            "discharged_mwh": self.discharged_mwh,
            "losses_mwh": self.losses_mwh,
            "violations": self.violations,
            "steps": self.steps,
            "at": self.at,
            "source": "modelled",
        }


class LiveBattery:
    def __init__(self, spec: BatterySpec, ramp_mw_per_min: float) -> None:
        self.spec = spec
        self.ramp_mw_per_min = ramp_mw_per_min
        self._last_t: float | None = None
        self._load_mw = 0.0  # the draw since _last_t
        self._acc_mws = 0.0  # the open step's integral so far (MW s) ...
        self._acc_s = 0.0  # ... and its length
        self._grid_mw: float | None = None
        soc = spec.initial_soc * spec.energy_mwh
        # (end of step, state of charge as a fraction, battery MW): appended by the scheduler
        # thread, copied whole by readers (a deque's append and list() are atomic in CPython).
        self.history: deque[tuple[float, float, float]] = deque(maxlen=HISTORY_POINTS)
        self.state = BatteryState(
            spec.energy_mwh, spec.power_mw, spec.efficiency, ramp_mw_per_min, soc, 0.0, 0.0, 0.0
        )

    @classmethod
    def from_settings(cls, st: Any) -> LiveBattery | None:
        """None where the site declares no battery."""
        if getattr(st, "battery_mwh", None) is None:
            return None
        eff = st.battery_efficiency
        if eff is None:
            from cortex.power.swing import megapack

            eff = megapack().round_trip_efficiency
        ramp = st.grid_ramp_mw_per_min
        if ramp is None:
            ramp = grid_params()["ramp_limit_mw_per_min"]
        return cls(BatterySpec(st.battery_mwh, st.battery_mw, eff), ramp)

    def due(self, now: float) -> bool:
        return self._last_t is None or now - self._last_t >= READ_EVERY_S

    def advance(self, now: float, load_mw: float) -> None:
        """The facility draw now (scheduler thread): the draw given at the last call held
        until now; every whole 10-second step it completes is dispatched."""
        if self._last_t is None or now <= self._last_t:
            self._last_t = now if self._last_t is None else self._last_t
            self._load_mw = load_mw
            return
        dt, load = now - self._last_t, self._load_mw
        self._last_t, self._load_mw = now, load_mw
        steps: list[float] = []
        take = min(dt, STEP_S - self._acc_s)
        self._acc_mws += load * take
        self._acc_s += take
        dt -= take
        if self._acc_s >= STEP_S - 1e-9:
            steps.append(self._acc_mws / STEP_S)
            whole = int(dt // STEP_S)
            steps.extend([load] * min(whole, MAX_CATCHUP_STEPS))
            dt -= whole * STEP_S
            self._acc_mws, self._acc_s = load * dt, dt
        if steps:
            self._dispatch(np.asarray(steps, dtype=np.float64), now)

    def _dispatch(self, loads: np.ndarray, now: float) -> None:
        s = self.state
        grid = float(loads[0]) if self._grid_mw is None else self._grid_mw
        r = dispatch(loads, STEP_S, self.ramp_mw_per_min, self.spec, start=(s.soc_mwh, grid))
        self._grid_mw = float(r.grid_mw[-1])
        self.state = BatteryState(
            s.energy_mwh,
            s.power_mw,
            s.efficiency,
            s.ramp_mw_per_min,
            soc_mwh=float(r.soc_mwh[-1]),
            load_mw=float(loads[-1]),
            grid_mw=self._grid_mw,
            battery_mw=float(loads[-1]) - self._grid_mw,
            charged_mwh=s.charged_mwh + r.charged_mwh,
            discharged_mwh=s.discharged_mwh + r.discharged_mwh,
            losses_mwh=s.losses_mwh + r.losses_mwh,
            violations=s.violations + r.violations,
            steps=s.steps + len(loads),
            at=now - self._acc_s,
        )
        b = self.state
        assert b.at is not None
        if not self.history or b.at - self.history[-1][0] >= HISTORY_EVERY_S - 1e-9:
            self.history.append((b.at, b.soc_fraction, b.battery_mw))
