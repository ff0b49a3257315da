"""Lemon quarantine in the twin: how much it cuts the interruptions of large jobs, and what the
burn-in costs. Runs `cortex sim` with and without `--quarantine` on the same seeds (same jobs,
same drawn failures) and compares, per seed and summed.

    python bench/quarantine.py                  # cortex-2024, 30 days, seeds 1-3 (~5 min)
    python bench/quarantine.py --days 7 --seeds 1

Writes bench/out/quarantine.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def run(fleet: str, days: float, seed: int, quarantine: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "cortex.cli.main", "sim", "--fleet", fleet]
        cmd += ["--days", str(days), "--seed", str(seed), "--quiet", "--json", str(path)]
        cmd += ["--quarantine"] if quarantine else []
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(path.read_text())


def summary(r: dict) -> dict:
    large = r["large_jobs"]
    hit = sum(1 for j in large if j["interruptions"] > 0)
    gh = r["gpu_hours"]
    return {
        "large_jobs": len(large),
        "large_jobs_interrupted": hit,
        "large_interruptions": sum(j["interruptions"] for j in large),
        "large_mean_effective_training_time": (
            sum(j["effective_training_time"] for j in large) / len(large) if large else 0.0
        ),
        "unexpected_interruptions": r["interruptions"]["unexpected"],
        "node_failures": r["interruptions"]["node_failures"],
        "productive_gpu_h": gh["productive"],
        "rework_after_failures_gpu_h": gh["rework_after_failures"],
        "restart_overhead_gpu_h": gh["restart_overhead"],
        "down_gpu_h": gh["down"],
        "quarantine": r.get("quarantine"),
    }


SUMMED = (
    "large_jobs",
    "large_jobs_interrupted",
    "large_interruptions",
    "unexpected_interruptions",
    "productive_gpu_h",
    "down_gpu_h",
    "rework_after_failures_gpu_h",
    "restart_overhead_gpu_h",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fleet", default="cortex-2024")
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--seeds", default="1,2,3")
    a = ap.parse_args()
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        off, on = (summary(run(a.fleet, a.days, seed, q)) for q in (False, True))
        rows.append({"seed": seed, "off": off, "on": on})
        print(json.dumps(rows[-1]), flush=True)
    tot = {side: {k: sum(r[side][k] for r in rows) for k in SUMMED} for side in ("off", "on")}
    ratios = {
        f"{k}_on_over_off": tot["on"][k] / max(tot["off"][k], 1e-9)
        for k in ("large_interruptions", "unexpected_interruptions", "productive_gpu_h")
    }
    out = {"fleet": a.fleet, "days": a.days, "per_seed": rows, "total": tot, "ratios": ratios}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "quarantine.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({"total": tot, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
