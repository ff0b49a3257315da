"""The report's `power` section: facility load against the cap, ramps, battery, energy, cost.

Computed after the run from the twin's record of facility power (one point per change), so
the figures are exact at event resolution; ramps and the battery use a 10-second grid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from cortex.power.battery import STEP_S, GridResult, dispatch, resample, smallest_battery

if TYPE_CHECKING:
    from cortex.sim.twin import Twin


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _ramps_per_min(series_mw: np.ndarray, step_s: float) -> np.ndarray:
    k = max(round(60.0 / step_s), 1)
    return series_mw[k:] - series_mw[:-k] if len(series_mw) > k else np.zeros(0)


def power_section(tw: Twin, n_bins: int) -> dict[str, Any] | None:
    pw = tw.pw
    if pw is None:
        return None
    cfg = pw.cfg
    horizon = tw.cfg.horizon_s
    t = np.asarray(pw.series_t, float)
    w = np.asarray(pw.series_w, float)
    cap = np.asarray(pw.series_cap_w, float)
    dt = np.diff(np.append(t, horizon))
    over = w > cap * (1 + 1e-9)
    energy_mwh = float(np.sum(w * dt)) / 3.6e9
    load = resample(t, w / 1e6, horizon, STEP_S)
    ramp = cfg.ramp_mw_per_min
    battery_out, grid = _battery(tw, load)
    grid_mw = grid.grid_mw if grid is not None else load
    m = tw.metrics
    gh = 1 / 3600.0
    useful_gpu_h = m.productive_gpu_s * gh
    cost = _cost_usd(cfg, grid_mw)
    # Bins for the HTML: mean load, lowest cap, mean grid, battery state of charge.
    per = max(len(load) // n_bins, 1)
    nb = len(load) // per

    def binned(x: np.ndarray, how: str = "mean") -> list[float]:
        y = x[: nb * per].reshape(nb, per)
        return [_r(v, 4) for v in (y.min(axis=1) if how == "min" else y.mean(axis=1))]

    capped = bool(np.isfinite(cap).all())
    cap_grid = resample(t, cap / 1e6, horizon, STEP_S) if capped else np.zeros(0)
    ramps = _ramps_per_min(grid_mw, STEP_S)
    hist, edges = np.histogram(np.abs(ramps), bins=20) if len(ramps) else (np.zeros(0), [0.0])
    return {
        "policy": cfg.policy,
        "cap_mw": _r(pw.site_cap_w / 1e6) if math.isfinite(pw.site_cap_w) else None,
        "peak_facility_mw": _r(w.max() / 1e6) if len(w) else 0.0,
        "minutes_over_cap": _r(float(np.sum(dt[over])) / 60.0, 2),
        "max_over_cap_mw": _r(float(np.max((w - cap)[over])) / 1e6) if over.any() else 0.0,
        "max_ramp_mw_per_min": _r(np.max(np.abs(ramps)) if len(ramps) else 0.0),
        "load_max_ramp_mw_per_min": _r(
            np.max(np.abs(_ramps_per_min(load, STEP_S))) if len(load) > 6 else 0.0
        ),
        "ramp_limit_mw_per_min": ramp,
        "energy_mwh": _r(energy_mwh),
        "battery": battery_out,
        "throughput_lost_to_caps_gpu_h": _r(m.cap_loss_gpu_s * gh),
        "throughput_lost_to_heat_gpu_h": _r(m.heat_loss_gpu_s * gh),
        "useful_gpu_h": _r(useful_gpu_h),
        "paused_for_power": pw.paused,
        "cap_solves": pw.solves,
        "staggered_starts": pw.staggered,
        "electricity_cost_usd": _r(cost, 0) if cost is not None else None,
        "cost_per_useful_gpu_h_usd": _r(cost / useful_gpu_h, 4) if cost and useful_gpu_h else None,
        "temperature_c": {"min": _r(pw.temps.min(), 1), "max": _r(pw.temps.max(), 1)},
        # What the run was told to live through, for the report's marks: (start h, hours, MW)
        # and (start h, hours, +C).
        "cap_events_h": [
            [_r(ev.start_s / 3600), _r(ev.duration_s / 3600), _r(ev.cap_mw)]
            for ev in cfg.cap_events
        ],
        "heat_waves_h": [[_r(a / 3600), _r(d / 3600), _r(c, 1)] for a, d, c in cfg.heat_waves],
        "series": {
            "bin_s": _r(per * STEP_S),
            "facility_mw": binned(load),
            "cap_mw": binned(cap_grid, "min") if capped else [],
            "grid_mw": binned(grid_mw),
            "soc_mwh": binned(grid.soc_mwh) if grid is not None and len(grid.soc_mwh) else [],
            "ramp_hist_mw_per_min": {
                "edges": [_r(e) for e in edges],
                "counts": [int(c) for c in hist],
            },
        },
    }


def _battery(tw: Twin, load: np.ndarray) -> tuple[dict[str, Any] | None, GridResult | None]:
    """The battery's dispatch under the ramp limit: the given battery, or the smallest one."""
    cfg = tw.pw.cfg if tw.pw is not None else None
    ramp = cfg.ramp_mw_per_min if cfg is not None else None
    if cfg is None or ramp is None:
        return None, None
    battery_out: dict[str, Any] | None = None
    grid: GridResult | None = None
    if cfg.battery is not None:
        grid = dispatch(load, STEP_S, ramp, cfg.battery, debug=tw.cfg.debug)
        spec = cfg.battery
        units = None
    else:
        units, grid = smallest_battery(load, STEP_S, ramp)
        spec = None
    if grid is not None and len(grid.soc_mwh):
        battery_out = {
            "energy_mwh": _r(spec.energy_mwh) if spec else None,
            "power_mw": _r(spec.power_mw) if spec else None,
            "smallest_megapack_units": units,
            "soc_min_mwh": _r(grid.soc_mwh.min()),
            "soc_max_mwh": _r(grid.soc_mwh.max()),
            "charged_mwh": _r(grid.charged_mwh),
            "discharged_mwh": _r(grid.discharged_mwh),
            "losses_mwh": _r(grid.losses_mwh),
            "ramp_violations": grid.violations,
        }
        if units is not None and units > 0:
            from cortex.power.battery import BatterySpec

            mp = BatterySpec.megapacks(units)
            battery_out["energy_mwh"] = _r(mp.energy_mwh)
            battery_out["power_mw"] = _r(mp.power_mw)
    elif units == 0:
        battery_out = {"smallest_megapack_units": 0}
    return battery_out, grid


def _cost_usd(cfg: Any, grid_mw: np.ndarray) -> float | None:
    try:
        from cortex.power.prices import PriceSeries

        prices = PriceSeries.load()
        step_t = np.arange(len(grid_mw)) * STEP_S
        return prices.cost_usd(grid_mw, step_t, start_hour_of_year=cfg.start_day_of_year * 24)
    except ImportError:  # pragma: no cover - the price module ships with the package
        return None
