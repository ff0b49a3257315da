"""Does the example's 500 MW answer move with solver settings, and what do the planner's levels
(limits, then targets, then value and cost; docs/planner.md "Solving") cost in solve time?

Usage: python bench/planner_levels.py [--repeat N] [--goodput 0.9,0.8] [--levels-only] [--out F]
Solves examples/plan-cortex.yaml (scenarios off) at each goodput factor, each `mip_gap` in
0.005 and 0.01 and HiGHS `random_seed` 0 and 1, with the levels and with one solve of the
weighted objective (`solve(levels=False)`, the code before the levels), interleaved, in this
run. Prints the MW reached at month 18 per setting and the median wall and CPU seconds per
mode with their ratio. Run under main's sources (PYTHONPATH), it times main's one solve.
"""

from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from cortex.planner import lp
from cortex.planner.inputs import parse_plan, resolve
from cortex.planner.solve import solve

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plan-cortex.yaml"
SEED = [0]
_highs = lp.Model.highs


def _seeded(self: lp.Model, *args: Any, **kw: Any) -> Any:
    """Every HiGHS instance the planner makes, with this run's random_seed."""
    h = _highs(self, *args, **kw)
    h.setOptionValue("random_seed", SEED[0])
    return h


lp.Model.highs = _seeded


def one(goodput: float, mip_gap: float, seed: int, levels: bool | None) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(goodput_factor=goodput, mip_gap=mip_gap, scenarios=[])
    inp = resolve(parse_plan(data, "bench:levels"), "bench:levels")
    SEED[0] = seed
    kw = {} if levels is None else {"levels": levels}
    t0, c0 = time.perf_counter(), time.process_time()
    res = solve(inp, diagnose=False, **kw)
    return {
        "goodput": goodput,
        "mip_gap": mip_gap,
        "seed": seed,
        "mode": "main" if levels is None else ("levels" if levels else "one solve"),
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(time.process_time() - c0, 2),
        "status": res.status,
        "objective_musd": round(res.objective, 1),
        "mw_month_18": res.months[18]["facility_mw"],
        "met_500": res.months[18]["facility_mw"] >= 500 * 0.999,
        "retired_bought_blocks": round(
            sum(r["blocks"] for r in res.retirements if (r["sku"], r["site"]) not in inp.initial),
            1,
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all settings")
    ap.add_argument("--goodput", default="0.9,0.8", help="goodput factors, comma-separated")
    ap.add_argument(
        "--levels-only", action="store_true", help="not the one weighted solve (planner_speed.py)"
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "planner_levels.json"))
    args = ap.parse_args()
    has_levels = "levels" in inspect.signature(solve).parameters
    modes: list[bool | None] = [None]
    if has_levels:
        modes = [True] if args.levels_only else [True, False]
    rows = []
    for _ in range(args.repeat):
        for g in (float(x) for x in args.goodput.split(",")):
            for gap in (0.005, 0.01):
                for seed in (0, 1):
                    for mode in modes:  # interleaved: both modes see the same machine load
                        r = one(g, gap, seed, mode)
                        rows.append(r)
                        print(json.dumps(r), flush=True)
    summary: dict[str, Any] = {}
    for mode in {r["mode"] for r in rows}:
        mine = [r for r in rows if r["mode"] == mode]
        answers = {
            g: sorted({r["mw_month_18"] for r in mine if r["goodput"] == g})
            for g in {r["goodput"] for r in mine}
        }
        summary[mode] = {
            "wall_s_median": statistics.median(r["wall_s"] for r in mine),
            "cpu_s_median": statistics.median(r["cpu_s"] for r in mine),
            "mw_month_18_by_goodput": answers,
            "met_500_by_goodput": {
                g: sorted({r["met_500"] for r in mine if r["goodput"] == g}) for g in answers
            },
        }
    if "levels" in summary and "one solve" in summary:
        summary["ratio_levels_over_one_solve"] = {
            k: round(summary["levels"][k] / summary["one solve"][k], 2)
            for k in ("wall_s_median", "cpu_s_median")
        }
    print(json.dumps(summary, indent=1))
    dest = Path(args.out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps({"rows": rows, **summary}, indent=1))


if __name__ == "__main__":
    main()
