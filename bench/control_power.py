"""The control plane's scheduler tick under a power policy: one tick (read facts, apply,
snapshot with the power view, schedule, book, rebalance caps, persist, launch) with 1,000 queued
jobs on a modelled 1,000-GPU fleet (125 nodes x 8 H100), SQLite store, an executor stand-in and
no actuator (caps are booked, not set). Target (issue 10): p99 <= 20 ms with policy `cap`.

    python bench/control_power.py          # about a minute on 2 cores

Baseline in the same run: the same tick with power policy `none` (bench/control.py's tick).
The cap binds: at 1,050 kW the IT budget over idle is (1,050,000 - 0.03 x 1,125,000) / 1.17 -
521,000 = 347,590 W, against 125 x 8 x 450 W = 450,000 W for every GPU busy at its mean draw, so
admission caps starts and holds some back, and the solver re-divides the budget as jobs end.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from control import OUT, TICK_ROUNDS, bench_tick, pct  # bench/control.py
from cortex.control.loop_power import LivePower

SITE_CAP_KW = 1050.0
REPEATS = 3  # alternate the two policies, so drift on a shared machine hits both alike
POWER_S: dict[int, float] = {}  # tick number -> seconds spent in LivePower during it


def _timed(name: str) -> None:
    """Wrap a LivePower method to add its time to the current tick's total."""
    inner = getattr(LivePower, name)

    def wrapper(self: LivePower, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(self, *args)
        finally:
            tick = self.loop.ticks
            POWER_S[tick] = POWER_S.get(tick, 0.0) + time.perf_counter() - t0

    setattr(LivePower, name, wrapper)


for _name in ("view", "booked", "rebalance"):
    _timed(_name)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cortex-bench-power-"))
    runs: dict[str, list[dict[str, Any]]] = {"none": [], "cap": []}
    try:
        for r in range(REPEATS):
            for policy in ("none", "cap"):
                home = tmp / f"{policy}-{r}"
                home.mkdir()
                kw: dict[str, Any] = {}
                if policy != "none":
                    kw = {
                        "power_policy": policy,
                        "site_cap_kw": SITE_CAP_KW,
                        "power_actuator": "none",
                    }
                print(f"tick, power {policy}, run {r} ...", file=sys.stderr, flush=True)
                POWER_S.clear()
                res = bench_tick(f"sqlite:///{home / 'cortex.db'}", home, **kw)
                if POWER_S:  # the rounds are the last ticks
                    last = sorted(POWER_S)[-TICK_ROUNDS:]
                    xs = [POWER_S[t] for t in last]
                    res["power_part_ms"] = {
                        "p50": round(pct(xs, 50) * 1e3, 3),
                        "p99": round(pct(xs, 99) * 1e3, 3),
                    }
                runs[policy].append(res)
                print(json.dumps(runs[policy][-1]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def worst(policy: str, part: str, q: str) -> float:
        return max(x[part][q] for x in runs[policy])

    out = {
        "site_cap_kw": SITE_CAP_KW,
        "runs": runs,
        "tick_p99_ms_worst_run": {p: worst(p, "tick_ms", "p99") for p in runs},
        "tick_p50_ms_worst_run": {p: worst(p, "tick_ms", "p50") for p in runs},
        "power_part_p99_ms_worst_run": worst("cap", "power_part_ms", "p99"),
        "ratio_cap_to_none_p50": round(
            worst("cap", "tick_ms", "p50") / worst("none", "tick_ms", "p50"), 2
        ),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "control_power.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
