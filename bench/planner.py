"""Capacity planner benchmark: the MILP at 60 months x 6 SKUs x 3 sites (target <= 10 s) and
the twin-in-the-loop refinement of examples/plan-cortex.yaml (target <= 5 minutes).

Usage: python bench/planner.py [--no-twin] [--repeat N]
The LP relaxation of the same model is timed in the same run as the yardstick (ratio MILP/LP).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import yaml

from cortex.planner.inputs import load_spec, parse_plan, resolve
from cortex.planner.model import build
from cortex.planner.solve import solve
from cortex.planner.spec import PlanSpec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plan-cortex.yaml"


def big_plan() -> dict:
    """The example stretched to 60 months with a third, greenfield site."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data = copy.deepcopy(data)
    data["horizon_months"] = 60
    data["sites"].append(
        {
            "name": "memphis-2",
            "turbine_max_mw": 300,
            "swing_allowance_mw": 20,
            "power_ramp": [
                {"month": 0, "grid_mw": 0},
                {"month": 12, "grid_mw": 150},
                {"month": 30, "grid_mw": 300},
            ],
        }
    )
    data["budget"]["steps"].append({"month": 24, "usd_per_month": 1.5e9})
    return data


def bench_milp(repeat: int) -> dict:
    data = big_plan()
    spec = load_spec_from(data)
    inp = resolve(spec, "bench:60x6x3")
    walls, lp_walls, cpus = [], [], []
    res = lp = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = solve(inp, diagnose=False)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)  # HiGHS runs in this process, one thread
        b = build(inp)
        t0 = time.perf_counter()
        lp = b.model.solve(inp.time_limit_s, relax=True)
        lp_walls.append(time.perf_counter() - t0)
    assert res is not None and lp is not None
    return {
        "months": inp.months,
        "skus": len(inp.skus),
        "sites": len(inp.sites),
        "variables": res.n_vars,
        "rows": res.n_rows,
        "status": res.status,
        "objective_musd": round(res.objective, 1),
        "lp_bound_musd": round(lp.objective, 1),
        "gap_musd": round(abs(lp.objective - res.objective), 1),
        "cash_musd": res.totals["capex_and_energy_musd"],
        "wall_s_median": round(statistics.median(walls), 2),
        "wall_s_max": round(max(walls), 2),
        "cpu_s_median": round(statistics.median(cpus), 2),
        "lp_wall_s_median": round(statistics.median(lp_walls), 3),
        "ratio_milp_lp": round(statistics.median(walls) / statistics.median(lp_walls), 1),
        "violations": res.violations,
    }


def load_spec_from(data: dict) -> PlanSpec:
    return parse_plan(data, "bench:60x6x3")


def bench_twin() -> dict:
    from cortex.planner.twin_loop import refine

    spec = load_spec(EXAMPLE)
    inp = resolve(spec, str(EXAMPLE))
    t0 = time.perf_counter()
    _, rep = refine(spec, inp)
    wall = time.perf_counter() - t0
    return {
        "wall_s": round(wall, 1),
        "iterations": rep["iterations"],
        "converged": rep["converged"],
        "policy": rep["policy"],
        "runs": len(rep["runs"]),
        "max_run_wall_s": max((r["wall_s"] for r in rep["runs"]), default=0.0),
        "history": [
            {k: h[k] for k in ("iteration", "new_runs", "order_lines_changed", "max_factor_change")}
            for h in rep["history"]
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-twin", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = {"milp_60x6x3": bench_milp(args.repeat)}
    print(json.dumps(out, indent=1))
    if not args.no_twin:
        out["twin_loop_example"] = bench_twin()
        print(json.dumps(out["twin_loop_example"], indent=1))
    dest = ROOT / "bench" / "out"
    dest.mkdir(exist_ok=True)
    (dest / "planner.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
