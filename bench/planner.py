"""Capacity planner benchmark: the MILP at 60 months x 6 SKUs x 3 sites (target <= 10 s) and
the twin-in-the-loop refinement of examples/plan-cortex.yaml (target <= 5 minutes).

Usage: python bench/planner.py [--no-milp] [--no-twin] [--repeat N] [--per-sku]
The LP relaxation of the same model is timed in the same run as the yardstick (ratio MILP/LP).
The twin loop runs the planned mixed fleet (the example's `twin.fleet`); `--per-sku` also runs
each SKU's fleet alone, after it, and prints the factors of both side by side.
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


def bench_twin(fleet: str | None = None) -> dict:
    """The example's refinement; `fleet` overrides its `twin.fleet` (mixed or per_sku). Wall
    time of the whole loop, and CPU seconds of this process and of the finished workers."""
    import resource

    from cortex.planner.twin_loop import refine

    spec = load_spec(EXAMPLE)
    if fleet is not None:
        spec = spec.model_copy(update={"twin": spec.twin.model_copy(update={"fleet": fleet})})
    inp = resolve(spec, str(EXAMPLE))
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, c0 = time.perf_counter(), time.process_time()
    new, rep = refine(spec, inp)
    wall = time.perf_counter() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers_cpu = kids.ru_utime + kids.ru_stime - kids0.ru_utime - kids0.ru_stime
    res = solve(new, diagnose=False)  # the refined plan, outside the timing
    blocks: dict[str, int] = {}
    for o in res.orders:
        blocks[o["sku"]] = blocks.get(o["sku"], 0) + o["blocks"]
    return {
        "fleet": rep["fleet"],
        "wall_s": round(wall, 1),
        "cpu_s_main": round(time.process_time() - c0, 1),
        "cpu_s_workers": round(workers_cpu, 1),
        "iterations": rep["iterations"],
        "converged": rep["converged"],
        "policy": rep["policy"],
        "runs": len(rep["runs"]),
        "max_run_wall_s": max((r["wall_s"] for r in rep["runs"]), default=0.0),
        "history": [
            {k: h[k] for k in ("iteration", "new_runs", "order_lines_changed", "max_factor_change")}
            for h in rep["history"]
        ],
        "plan_goodput_h100e_months": res.totals["goodput_h100e_months"],
        "plan_blocks_ordered": blocks,
        "measured_factors": rep["measured_factors"],
        "final_factors": {k: round(v, 4) for k, v in rep["final_factors"].items()},
        "by_flavor": rep["by_flavor"],
    }


def factor_spread(seeds: int) -> dict:
    """The base plan's fleet (the first solve of the example, before any refit) at each
    checkpoint, run mixed and per SKU with `seeds` seeds each: every SKU's factor per seed, so
    the mixed-versus-alone difference can be read against the seed-to-seed spread."""
    import statistics as st
    from concurrent.futures import ProcessPoolExecutor

    from cortex.planner.twin_loop import (
        _flavor_means,
        _measured,
        _wanted,
        pick_policy,
        run_twin,
    )

    spec = load_spec(EXAMPLE)
    inp = resolve(spec, str(EXAMPLE))
    res = solve(inp, diagnose=False)
    policy, _ = pick_policy(None, spec)
    out: dict = {}
    with ProcessPoolExecutor(max_workers=spec.twin.workers) as pool:
        for fleet in ("mixed", "per_sku"):
            twin = spec.twin.model_copy(update={"fleet": fleet, "seeds": seeds})
            wanted = _wanted(spec.model_copy(update={"twin": twin}), inp, res)
            keys = [k for k in wanted if not k[1].startswith("flagship:")]
            args = [
                (wanted[k][0], twin.days, k[3], policy, float(twin.scale), wanted[k][1], True)
                for k in keys
            ]
            runs = dict(zip(keys, pool.map(run_twin, args), strict=True))
            if fleet == "mixed":
                out["mixed_by_flavor"] = _flavor_means(runs)
            per_seed: dict[str, list[float]] = {}
            for s in range(twin.seed, twin.seed + seeds):
                one = {k: r for k, r in runs.items() if k[3] == s}
                for (sku, c), v in _measured(inp, one).items():
                    per_seed.setdefault(f"{c}:{sku}", []).append(v)
            out[fleet] = {
                key: {
                    "mean": round(st.mean(v), 4),
                    "sd": round(st.stdev(v), 4) if len(v) > 1 else 0.0,
                }
                for key, v in sorted(
                    per_seed.items(), key=lambda kv: (int(kv[0].split(":")[0]), kv[0])
                )
            }
    return out


def compare(mixed: dict, per_sku: dict) -> list[str]:
    """Lines: checkpoint, SKU, the factor measured in the mixed run and alone."""
    lines = ["checkpoint  SKU      mixed   alone"]
    for c, got in mixed["measured_factors"].items():
        alone = per_sku["measured_factors"].get(c, {})
        for k in sorted(set(got) | set(alone)):
            a, b = got.get(k), alone.get(k)
            fa = f"{a:.4f}" if a is not None else "  -   "
            fb = f"{b:.4f}" if b is not None else "  -   "
            lines.append(f"{c:>10}  {k:<7} {fa}  {fb}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-milp", action="store_true", help="skip the MILP timing")
    ap.add_argument("--no-twin", action="store_true", help="skip the twin-in-the-loop run")
    ap.add_argument("--repeat", type=int, default=3, help="MILP solves to time (median)")
    ap.add_argument(
        "--per-sku", action="store_true", help="also refine with each SKU alone; compare factors"
    )
    ap.add_argument(
        "--factor-seeds",
        type=int,
        default=0,
        help="also run the base plan's fleets mixed and per SKU with N seeds (mean, sd)",
    )
    args = ap.parse_args()
    out: dict = {}
    if not args.no_milp:
        out["milp_60x6x3"] = bench_milp(args.repeat)
        print(json.dumps(out, indent=1))
    if not args.no_twin:
        out["twin_loop_example"] = bench_twin()
        print(json.dumps(out["twin_loop_example"], indent=1))
        if args.per_sku:
            out["twin_loop_per_sku"] = bench_twin("per_sku")
            print(json.dumps(out["twin_loop_per_sku"], indent=1))
            print("\n".join(compare(out["twin_loop_example"], out["twin_loop_per_sku"])))
    if args.factor_seeds:
        out["factor_spread"] = factor_spread(args.factor_seeds)
        spread = out["factor_spread"]
        print("checkpoint:SKU   mixed mean (sd)   alone mean (sd)")
        keys = spread["mixed"].keys() | spread["per_sku"].keys()
        for key in sorted(keys, key=lambda k: (int(k.split(":")[0]), k)):
            m, a = spread["mixed"].get(key), spread["per_sku"].get(key)
            fm = f"{m['mean']:.3f} ({m['sd']:.3f})" if m else "-"
            fa = f"{a['mean']:.3f} ({a['sd']:.3f})" if a else "-"
            print(f"{key:<16} {fm:<17} {fa}")
    dest = ROOT / "bench" / "out"
    dest.mkdir(exist_ok=True)
    (dest / "planner.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
