"""Scenarios with first-stage orders fixed, and the twin-in-the-loop pieces."""

from __future__ import annotations

from pathlib import Path

import yaml
from test_planner_toy import TOY

from cortex.planner.inputs import load_plan
from cortex.planner.scenarios import apply_scenario, run_scenarios
from cortex.planner.solve import solve
from cortex.planner.spec import Scenario
from cortex.planner.twin_loop import fleet_dict, pick_policy, run_twin


def _load(tmp_path: Path, data: dict):  # type: ignore[no-untyped-def]
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(data))
    return load_plan(p)


def test_slip_with_first_stage_fixed_gives_hand_shortfall(tmp_path: Path) -> None:
    data = {
        **TOY,
        "first_stage_months": 3,
        "scenarios": [
            {"name": "base", "probability": 0.5},
            {"name": "slip", "probability": 0.5, "delivery_slip_months": 1},
        ],
    }
    spec, inp = _load(tmp_path, data)
    base = solve(inp)
    out = run_scenarios(
        spec.model_copy(update={"twin": spec.twin.model_copy(update={"workers": 1})}), inp, base
    )
    # First stage (months 0-2) is the toy optimum: 1 H200 ordered in month 1, 2 H100 in month 2.
    # A one-month slip makes them arrive in month 4 (lead 2 and 3), and no order placed from
    # month 3 on can arrive before month 5 (H100 lead 1 + 1 = 2): month 3 has 0 of its 700
    # H100e, months 4 and 5 have 793.6. Shortfall 700 in the slip, 0 in the base:
    # expected 0.5 x 0 + 0.5 x 700 = 350.
    runs = {r["name"]: r for r in out["runs"]}
    assert runs["base"]["shortfall"] == {"compute_h100e_months": 0.0}
    assert abs(runs["slip"]["shortfall"]["compute_h100e_months"] - 700.0) < 1e-3
    assert abs(out["expected_shortfall"]["compute_h100e_months"] - 350.0) < 1e-3


def test_grid_delay_shifts_only_increases(tmp_path: Path) -> None:
    ramp = [{"month": 0, "grid_mw": 10}, {"month": 2, "grid_mw": 30}]
    _, inp = _load(tmp_path, {**TOY, "sites": [{**TOY["sites"][0], "power_ramp": ramp}]})
    late = apply_scenario(inp, Scenario(name="g", probability=1.0, grid_delay_months=3))
    assert inp.sites[0].grid_mw == (10, 10, 30, 30, 30, 30)
    assert late.sites[0].grid_mw == (10, 10, 10, 10, 10, 30)


def test_twin_policy_falls_back_and_runs(tmp_path: Path) -> None:
    spec, inp = _load(tmp_path, TOY)
    name, note = pick_policy("no-such-profile", spec)
    assert name == "priority" and "no-such-profile" in note
    h100 = inp.skus[0]
    fleet = fleet_dict(h100, h100.nodes_per_pod, 3)
    r = run_twin((fleet, 0.5, 0, name, 1.0, "synthetic"))
    assert r["gpus"] == h100.nodes_per_pod * h100.gpus_per_node
    assert 0.0 < r["factor"] <= 1.0
    # The flagship job alone on the same fleet: one gang of 30 of the 32 nodes.
    flag = run_twin((fleet, 0.5, 0, name, 50.0, "single:240"))
    assert 0.0 < flag["factor"] <= 1.0 and flag["interruptions"] > 0


def test_refine_applies_twin_factors_and_converges(tmp_path: Path) -> None:
    from cortex.planner.twin_loop import refine

    twin = {
        "checkpoints": [3],
        "scale": 16,
        "days": 0.5,
        "seeds": 1,
        "workers": 1,
        "max_iterations": 4,
        "policy": "priority",
        "fleet": "per_sku",  # each SKU alone (test_planner_twin.py: the mixed fleet)
    }
    spec, inp = _load(tmp_path, {**TOY, "twin": twin})
    new, rep = refine(spec, inp)
    runs = [r for r in rep["runs"] if r["sku"] in ("H100", "H200")]
    assert runs and rep["converged"] and rep["policy"] == "priority" and not rep["policy_note"]
    # Iteration 1 takes the measured factor whole (step 1); every month of a SKU takes the
    # only checkpoint's factor.
    for r in runs:
        assert all(new.goodput[(t, r["sku"])] == r["factor"] for t in range(6))
    # The refitted plan still meets the 700 H100e target in goodput terms.
    res = solve(new)
    assert res.months[3]["goodput_h100e"] >= 700 - 1e-6
