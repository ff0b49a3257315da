"""The capacity planner's answer as an architect reads it: whether the plan reaches its target
does not move with solver settings, and blocks bought in the plan are not thrown away early."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from test_planner_toy import TOY

from cortex.planner.inputs import Inputs, load_plan
from cortex.planner.solve import solve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plan-cortex.yaml"


def _load(tmp_path: Path, data: dict) -> Inputs:
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(data))
    return load_plan(p)[1]


@pytest.mark.parametrize("mip_gap", [0.005, 0.01])
def test_the_500_mw_answer_does_not_move_with_the_gap(tmp_path: Path, mip_gap: float) -> None:
    # The example at a goodput factor of 0.8: the LP relaxation meets 500 MW at month 18. One
    # solve of value minus cost minus penalties stopped at its absolute gap (mip_gap x the
    # budget, $337M here: the penalty of 1.7 MW of the target) and reached 499.7 MW at
    # mip_gap 0.005 but 498.8 MW at 0.01 (not met). Targets are now solved first.
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(goodput_factor=0.8, scenarios=[], mip_gap=mip_gap)
    res = solve(_load(tmp_path, data))
    assert res.months[18]["facility_mw"] >= 500.0 - 0.01
    assert res.totals["target_shortfall"]["power_target_mw"] < 0.01
    assert res.targets_status == "Optimal"  # shown, not stopped by the time limit
    assert res.binding == []


def test_blocks_bought_in_the_plan_stay_to_their_end_of_life(tmp_path: Path) -> None:
    # 2 MW for a year; H100 now, GB200 (more H100e per MW) from month 6. The plan filled the
    # site with H100 and retired them within their 60-month life for GB200: capital is charged
    # for the part of a life inside the horizon, so the rest of their value, lost at an early
    # retirement, was never counted. Now blocks bought stay; the plan weighs that up front.
    data = copy.deepcopy(TOY)
    data.update(
        horizon_months=12,
        mode="max_compute",
        lambda_h100e_months_per_musd=10,
        skus=["H100", "GB200"],
        compute_targets=[],
        budget={"initial_usd": 1.0e10, "steps": [{"month": 0, "usd_per_month": 0}]},
    )
    data["sites"][0]["power_ramp"] = [{"month": 0, "grid_mw": 2}]
    data["sku_overrides"] = {
        "H100": {"lead_months": 1, "available_month": 0, "supply_blocks_per_month": 10},
        "GB200": {"lead_months": 1, "available_month": 6, "supply_blocks_per_month": 10},
    }
    res = solve(_load(tmp_path, data))
    assert res.violations == []
    assert res.retirements == []
    # What was bought is in service at the end (the old plan retired 3 of its H100 orders).
    bought: dict[str, int] = {}
    for o in res.orders:
        bought[o["sku"]] = bought.get(o["sku"], 0) + o["blocks"]
    assert bought and all(res.months[-1]["blocks"][k] == n for k, n in bought.items())


def test_a_scenario_parks_first_stage_deliveries_its_power_cannot_hold(tmp_path: Path) -> None:
    # The toy's 700 H100e by month 3, on a grid of 0.1 MW until month 2 and 100 MW after; the
    # scenario delays the grid 3 months, after the first 6 months of orders are fixed. The
    # delivered blocks cannot be powered until month 5: they are parked (named, as few block-
    # months as the limit needs), not kept against the power limit, and the recourse buys
    # nothing it then retires. The base plan itself retires nothing.
    from cortex.planner.model import first_stage
    from cortex.planner.scenarios import apply_scenario
    from cortex.planner.spec import Scenario

    data = copy.deepcopy(TOY)
    data["sites"][0]["power_ramp"] = [{"month": 0, "grid_mw": 0.1}, {"month": 2, "grid_mw": 100}]
    data["first_stage_months"] = 6
    inp = _load(tmp_path, data)
    base = solve(inp)
    assert base.retirements == [] and base.violations == []
    assert base.built is not None and base.x is not None
    fixed = first_stage(base.built, base.x, 6)
    late = apply_scenario(inp, Scenario(name="grid-late", probability=1.0, grid_delay_months=3))
    res = solve(late, fixed=fixed, diagnose=False)
    parked = [v for v in res.violations if v.startswith("park (a/")]
    assert parked, res.violations
    assert not [v for v in res.violations if v.startswith(("power ", "swing ", "halls "))]
    same = solve(inp, fixed=fixed, diagnose=False)  # no surprise: nothing parked
    assert not [v for v in same.violations if v.startswith("park")]
