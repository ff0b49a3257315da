"""The capacity planner's time, this tree against a base tree in the same run (issue: the
levels of plan17 took `cortex plan examples/plan-cortex.yaml` from 8.5 to 36.9 s wall).

Usage: BENCH_BASE_SRC=/path/to/base/src[,/path/to/base2/src] python bench/planner_speed.py
       [--repeat N] [--no-settings]
Each round runs, for this tree and then the base (interleaved, so both see the same load):
- the whole command `cortex plan examples/plan-cortex.yaml --json F` (base plan, in-house
  price, the 5 scenarios in 2 worker processes) as one process;
- unless --no-settings, bench/planner_levels.py --levels-only in one process: the example
  alone (scenarios off) at goodput 0.9 and 0.8 x `mip_gap` 0.005 and 0.01 x HiGHS
  `random_seed` 0 and 1, the settings whose 500 MW answer the levels hold.
Wall and CPU seconds (user + system, children included: the scenario workers) per process,
medians over rounds and the ratio this/base (and this/base2, a second base after a comma);
beside each time the answer it gave (MW at month 18, objective, the scenarios' expected
shortfall), so a speed-up that moved the answer shows.
Writes bench/out/planner_speed.json. Without BENCH_BASE_SRC it times this tree alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _whole  # bench/run.py's whole-process timer: one rule for both

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plan-cortex.yaml"
PY = sys.executable


def _plan(src: str, tmp: Path) -> dict[str, Any]:
    out = tmp / "plan.json"
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    cmd = [PY, "-m", "cortex", "plan", str(EXAMPLE), "--json", str(out)]
    wall, cpu, _ = _whole(cmd, env)
    rep = json.loads(out.read_text())
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "mw_month_18": rep["by_month"][18]["facility_mw"],
        "objective_musd": round(rep["solver"]["objective"], 1),
        "expected_shortfall": rep["scenarios"]["expected_shortfall"],
    }


def _settings(src: str, tmp: Path) -> dict[str, Any]:
    out = tmp / "levels.json"
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    cmd = [PY, str(ROOT / "bench" / "planner_levels.py"), "--levels-only", "--out", str(out)]
    wall, cpu, _ = _whole(cmd, env)
    rep = json.loads(out.read_text())
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "answers": [
            {k: r[k] for k in ("goodput", "mip_gap", "seed", "mw_month_18", "objective_musd")}
            for r in rep["rows"]
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2, help="rounds (medians over them)")
    ap.add_argument("--no-settings", action="store_true", help="only the whole command")
    args = ap.parse_args()
    trees = {"this": str(ROOT / "src")}
    bases = [p for p in os.environ.get("BENCH_BASE_SRC", "").split(",") if p]
    for i, src in enumerate(bases):
        trees["base" if i == 0 else f"base{i + 1}"] = src
    kinds = {"plan": _plan} if args.no_settings else {"plan": _plan, "settings": _settings}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {k: {t: [] for t in trees} for k in kinds}
    loads = [round(os.getloadavg()[0], 1)]
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.repeat):
            for kind, fn in kinds.items():
                for tree, src in trees.items():
                    r = fn(src, Path(d))
                    runs[kind][tree].append(r)
                    brief = {k: v for k, v in r.items() if k != "answers"}
                    print(f"  {kind} {tree}: {json.dumps(brief)}", flush=True)
            loads.append(round(os.getloadavg()[0], 1))
    summary: dict[str, Any] = {"load_avg_1m": loads, "trees": trees}
    for kind in kinds:
        med = {
            t: {m: statistics.median(r[m] for r in rs) for m in ("wall_s", "cpu_s")}
            for t, rs in runs[kind].items()
        }
        summary[kind] = {"median": med}
        for t in med:
            if t != "this":
                summary[kind][f"ratio_this_over_{t}"] = {
                    m: round(med["this"][m] / med[t][m], 2) for m in ("wall_s", "cpu_s")
                }
    print(json.dumps(summary, indent=1))
    dest = ROOT / "bench" / "out"
    dest.mkdir(exist_ok=True)
    (dest / "planner_speed.json").write_text(json.dumps({"runs": runs, **summary}, indent=1))


if __name__ == "__main__":
    main()
