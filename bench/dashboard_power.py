"""The dashboard's power additions at 100k GPUs (bench/dashboard.py's service: cortex-2024,
12,500 nodes, the `cap` policy, the fleet filled and 2,000 jobs queued), in process:

- the forecast with and without the waiting jobs (the start estimator's forward run, cold and
  from its 30 s cache), against the floor-only forecast (`waiting_starts` answering nothing);
- sampling every running job's draw into the history (`record_draws`), a job's series after a
  week of samples (its size and the time to serve it);
- the heatmap's temperature bytes against its power bytes (same per-node watts);
- one battery read and step.

Medians of REPS; the machine is shared, so compare within a run. `python bench/dashboard_power.py`
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard

REPS = 5


def _ms(fn: Any, reps: int = REPS) -> float:
    xs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1e3)
    return round(statistics.median(xs), 2)


def main() -> None:
    from cortex.control import power_history
    from cortex.control.live_battery import LiveBattery
    from cortex.control.ui import forecast_waiting, power_forecast
    from cortex.control.ui.heat_view import node_temp
    from cortex.control.ui.power_view import node_power
    from cortex.power.battery import BatterySpec

    svc = dashboard.build_service(Path(tempfile.mkdtemp()))
    loop, power = svc.loop, svc.loop.power
    down = __import__("numpy").zeros(loop.topo.n_nodes, dtype=bool)
    out: dict[str, Any] = {}

    def cold() -> None:
        forecast_waiting._CACHE.clear()
        power_forecast.forecast(svc, 24.0, 289)

    out["forecast with waiting jobs, cold (ms)"] = _ms(cold, 3)
    got = power_forecast.forecast(svc, 24.0, 289)
    assert got is not None
    out["waiting jobs / starting within 24 h / samples capped"] = [
        got.waiting, got.waiting_in, got.capped,
    ]  # fmt: skip
    out["forecast with waiting jobs, cached starts (ms)"] = _ms(
        lambda: power_forecast.forecast(svc, 24.0, 289)
    )
    real = power_forecast.waiting_starts
    power_forecast.waiting_starts = lambda _loop: []  # type: ignore[assignment]
    out["forecast, floor only (ms)"] = _ms(lambda: power_forecast.forecast(svc, 24.0, 289))
    power_forecast.waiting_starts = real
    out["forecast.json bytes"] = len(json.dumps(got.to_dict()))

    now = time.time()
    n = len(power.books.jobs)

    def sample() -> None:
        nonlocal now
        now += power_history.SAMPLE_S
        power_history.record_draws(power, now)

    out[f"record_draws, {n} running jobs (ms)"] = _ms(sample)
    for _ in range(7 * 86400 // int(power_history.SAMPLE_S)):  # a week of one job's samples
        now += power_history.SAMPLE_S
        power.history.sample(now, [(1, 5000.0, False)])
    s = power.history.series(1, 500)
    assert s is not None
    out["a week of samples: points kept, step (s)"] = [len(s.t), s.step_s]
    out["series(500) after a week (ms)"] = _ms(lambda: power.history.series(1, 500))
    out["series JSON bytes"] = len(json.dumps(s.to_dict()))

    out["heatmap.bin color=power (ms)"] = _ms(lambda: node_power(loop, down))
    out["heatmap.bin color=temp (ms)"] = _ms(lambda: node_temp(loop, down))

    bat = LiveBattery(BatterySpec(100.0, 50.0, 0.9), 10.0)
    t = [now]

    def step() -> None:
        t[0] += 10.0
        bat.advance(t[0], power.report().facility_w / 1e6)

    out["battery: read the draw + one 10 s step (ms)"] = _ms(step)
    print(json.dumps(out, indent=1))
    svc.close()


if __name__ == "__main__":
    main()
