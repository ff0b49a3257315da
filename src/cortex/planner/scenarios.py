"""What-ifs around a solved plan: scenarios with the first-stage orders fixed (two-stage, the
recourse re-optimized per scenario), the price of the in-house share, the lambda frontier and a
one-at-a-time tornado. Solves run in parallel processes; each returns a small summary."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from cortex.planner.inputs import Inputs, Site, Sku
from cortex.planner.model import Fixed, first_stage
from cortex.planner.solve import PlanResult, solve
from cortex.planner.spec import PlanSpec, Scenario


def _shift(series: tuple[float, ...], delay: int) -> tuple[float, ...]:
    """A ramp whose increases arrive `delay` months late (levels already in force stay)."""
    if delay <= 0:
        return series
    out = list(series)
    for t in range(len(series)):
        out[t] = min(series[t], series[max(t - delay, 0)]) if t >= delay else series[0]
    return tuple(out)


def apply_scenario(inp: Inputs, sc: Scenario) -> Inputs:
    """The plan's inputs as the scenario sees them."""
    skus: list[Sku] = []
    for k in inp.skus:
        if k.inhouse:
            d = sc.inhouse_delay_months
            k = replace(k, lead_months=k.lead_months + d, available_month=k.available_month + d)
        elif sc.delivery_slip_months:
            k = replace(k, lead_months=k.lead_months + sc.delivery_slip_months)
        skus.append(k)
    sites: list[Site] = [
        replace(
            s,
            grid_mw=_shift(s.grid_mw, sc.grid_delay_months),
            turbine_fixed_mw=_shift(s.turbine_fixed_mw, sc.turbine_delay_months),
        )
        for s in inp.sites
    ]
    fac = dict(inp.facility)
    fac["turbine_lead_months"] += sc.turbine_delay_months
    fac["turbine_fuel_usd_per_mwh"] *= sc.power_price_scale
    return replace(
        inp,
        skus=tuple(skus),
        sites=tuple(sites),
        facility=fac,
        grid_price=tuple(p * sc.power_price_scale for p in inp.grid_price),
    )


def summary(res: PlanResult) -> dict[str, Any]:
    return {
        "status": res.status,
        "cash_musd": res.totals["capex_and_energy_musd"],
        "charged_cost_musd": res.totals["charged_cost_musd"],
        "discounted_goodput_h100e_months": res.totals["discounted_goodput_h100e_months"],
        "goodput_h100e_months": res.totals["goodput_h100e_months"],
        "goodput_by_month": [m["goodput_h100e"] for m in res.months],
        "facility_mw_by_month": [m["facility_mw"] for m in res.months],
        "target_shortfall": res.totals["target_shortfall"],
        "violations": res.violations,
        # Blocks the scenario takes out of service early (first-stage deliveries its power,
        # halls or cash cannot hold are parked; in the base plan only the start fleet leaves).
        "retired_early_blocks": round(sum(r["blocks"] for r in res.retirements), 3),
        "wall_s": res.wall_s,
    }


def _job(args: tuple[Inputs, Fixed | None]) -> dict[str, Any]:
    inp, fixed = args
    return summary(solve(inp, fixed=fixed, diagnose=False))


def _map(jobs: list[tuple[Inputs, Fixed | None]], workers: int) -> list[dict[str, Any]]:
    if workers <= 1 or len(jobs) <= 1:
        return [_job(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_job, jobs))


def run_scenarios(spec: PlanSpec, inp: Inputs, base: PlanResult) -> dict[str, Any]:
    """Fix the first `first_stage_months` of decisions from the base plan, re-solve the rest
    under each scenario. Shortfall: missed targets when the plan has any, else goodput below
    the base plan's, month by month (H100e-months)."""
    assert base.built is not None and base.x is not None
    fixed = first_stage(base.built, base.x, inp.first_stage_months)
    cases = [apply_scenario(inp, sc) for sc in spec.scenarios]
    runs = _map([(c, fixed) for c in cases], spec.twin.workers)
    has_targets = bool(inp.compute_targets or inp.power_target or inp.flagship)
    base_g = np.asarray([m["goodput_h100e"] for m in base.months])
    out = []
    for sc, r in zip(spec.scenarios, runs, strict=True):
        # By target, each in its unit (a MW and an H100e-month do not add); without targets,
        # the goodput below the base plan's, month by month.
        if has_targets:
            short = dict(r["target_shortfall"])
        else:
            below = float(np.clip(base_g - np.asarray(r["goodput_by_month"]), 0, None).sum())
            short = {"goodput_below_base_h100e_months": below}
        out.append({"name": sc.name, "probability": sc.probability, "shortfall": short, **r})
    expected = {
        key: round(sum(o["probability"] * o["shortfall"][key] for o in out), 3)
        for key in (out[0]["shortfall"] if out else {})
    }
    return {
        "first_stage_months": inp.first_stage_months,
        "first_stage_decisions": sum(1 for v in fixed.values() if v > 0),
        "expected_shortfall": expected,
        "runs": out,
    }


def inhouse_cost(inp: Inputs, base: PlanResult) -> dict[str, Any]:
    """The same plan without the in-house share: what 'half in-house' costs."""
    free = solve(replace(inp, inhouse=None), diagnose=False)
    return {
        "share_target": inp.inhouse[0] if inp.inhouse else 0.0,
        "share_reached_end": base.months[-1]["inhouse_share"],
        "share_without_target_end": free.months[-1]["inhouse_share"],
        "goodput_h100e_months_lost": round(
            free.totals["goodput_h100e_months"] - base.totals["goodput_h100e_months"], 1
        ),
        "goodput_lost_fraction": round(
            1.0 - base.totals["goodput_h100e_months"] / free.totals["goodput_h100e_months"], 4
        )
        if free.totals["goodput_h100e_months"] > 0
        else 0.0,
        "cost_delta_musd": round(
            base.totals["capex_and_energy_musd"] - free.totals["capex_and_energy_musd"], 1
        ),
    }


def frontier(spec: PlanSpec, inp: Inputs) -> list[dict[str, Any]]:
    """Cost versus goodput-compute: maximize compute - cost/lambda for each lambda."""
    cases = [replace(inp, mode="max_compute", lam=lam) for lam in spec.frontier_lambdas]
    jobs: list[tuple[Inputs, Fixed | None]] = [(c, None) for c in cases]
    runs = _map(jobs, spec.twin.workers)
    return [
        {
            "lambda": lam,
            "cash_musd": r["cash_musd"],
            "goodput_h100e_months": r["goodput_h100e_months"],
            "charged_cost_musd": r["charged_cost_musd"],
            "discounted_goodput_h100e_months": r["discounted_goodput_h100e_months"],
        }
        for lam, r in zip(spec.frontier_lambdas, runs, strict=True)
    ]


def _scaled(inp: Inputs, what: str, f: float) -> Inputs:
    if what == "hardware price":
        return replace(inp, skus=tuple(replace(k, price_usd=k.price_usd * f) for k in inp.skus))
    if what == "grid power":
        sites = tuple(replace(s, grid_mw=tuple(g * f for g in s.grid_mw)) for s in inp.sites)
        return replace(inp, sites=sites)
    if what == "budget":
        return replace(inp, budget_cum_usd=tuple(b * f for b in inp.budget_cum_usd))
    if what == "electricity price":
        return replace(inp, grid_price=tuple(p * f for p in inp.grid_price))
    if what == "in-house speed":
        skus = tuple(replace(k, h100e=k.h100e * f) if k.inhouse else k for k in inp.skus)
        return replace(inp, skus=skus)
    if what == "lead times":
        skus = tuple(
            replace(k, lead_months=max(0, min(inp.months - 1, round(k.lead_months * f))))
            for k in inp.skus
        )
        return replace(inp, skus=skus)
    goodput = {key: min(1.0, v * f) for key, v in inp.goodput.items()}
    return replace(inp, goodput=goodput)


TORNADO = (
    ("hardware price", 0.8, 1.2),
    ("grid power", 0.8, 1.2),
    ("budget", 0.8, 1.2),
    ("electricity price", 0.5, 2.0),
    ("in-house speed", 0.7, 1.5),
    ("lead times", 0.5, 1.5),
    ("goodput factor", 0.9, 1.1),
)


def tornado(inp: Inputs, base: PlanResult, workers: int = 2) -> list[dict[str, Any]]:
    """Goodput-compute (H100e-months) and charged cost ($M) with each input at its low and high
    value, others fixed; sorted by the goodput's swing, or in min_cost by the cost's (a plan
    that meets its targets at least cost moves its cost, not its goodput: by goodput alone
    the toy's tornado was flat but for the goodput factor)."""
    jobs: list[tuple[Inputs, Fixed | None]] = []
    for what, lo, hi in TORNADO:
        jobs.append((_scaled(inp, what, lo), None))
        jobs.append((_scaled(inp, what, hi), None))
    runs = _map(jobs, workers)
    base_g = base.totals["goodput_h100e_months"]
    out = []
    for i, (what, lo, hi) in enumerate(TORNADO):
        out.append(
            {
                "input": what,
                "low": lo,
                "high": hi,
                "goodput_low": runs[2 * i]["goodput_h100e_months"],
                "goodput_high": runs[2 * i + 1]["goodput_h100e_months"],
                "base": base_g,
                "cost_low_musd": runs[2 * i]["charged_cost_musd"],
                "cost_high_musd": runs[2 * i + 1]["charged_cost_musd"],
                "base_cost_musd": base.totals["charged_cost_musd"],
            }
        )
    low, high = ("goodput_low", "goodput_high")
    if inp.mode == "min_cost":
        low, high = ("cost_low_musd", "cost_high_musd")
    out.sort(key=lambda r: -abs(r[high] - r[low]))
    return out
