"""Node health in the twin: lemon quarantine (`--quarantine`) and hot spares (`--hot-spares`)
against a run with neither, on the same seeds (same jobs, same drawn failures): what they do
to large jobs' interruptions, recovery and effective training time, and what they cost.

    python bench/node_health.py                                  # quarantine, seeds 1-3
    python bench/node_health.py --variants spares --seeds 1      # 1 hot spare per pod
    python bench/node_health.py --days 7 --seeds 1 --variants quarantine,spares,both

Writes bench/out/node_health.json.
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


VARIANTS = {
    "off": [],
    "quarantine": ["--quarantine"],
    "spares": ["--hot-spares", "1"],
    "both": ["--quarantine", "--hot-spares", "1"],
}


def run(fleet: str, days: float, seed: int, flags: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "cortex.cli.main", "sim", "--fleet", fleet]
        cmd += ["--days", str(days), "--seed", str(seed), "--quiet", "--json", str(path)]
        cmd += flags
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
        "gang_recovered": r["gang_recovery"]["recovered"],
        "gang_mean_recover_s": r["gang_recovery"]["mean_s"],
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
        "hot_spares": r.get("hot_spares"),
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
    ap.add_argument("--variants", default="quarantine", help=f"of {', '.join(VARIANTS)}")
    a = ap.parse_args()
    sides = ["off", *[v for v in a.variants.split(",") if v != "off"]]
    unknown = [v for v in sides if v not in VARIANTS]
    if unknown:
        sys.exit(f"error: --variants: unknown {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        row = {"seed": seed}
        for v in sides:
            row[v] = summary(run(a.fleet, a.days, seed, VARIANTS[v]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    tot = {v: {k: sum(r[v][k] for r in rows) for k in SUMMED} for v in sides}
    ratios = {
        f"{k}_{v}_over_off": tot[v][k] / max(tot["off"][k], 1e-9)
        for v in sides[1:]
        for k in ("large_interruptions", "unexpected_interruptions", "productive_gpu_h")
    }
    out = {"fleet": a.fleet, "days": a.days, "per_seed": rows, "total": tot, "ratios": ratios}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "node_health.json").write_text(json.dumps(out, indent=2))
    print(json.dumps({"total": tot, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
