"""Twin in the loop on the mixed fleet: one run per checkpoint (and seed) of every planned SKU
together under the plan's profile, each SKU's factor from its flavor's books in that run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_planner_toy import TOY

from cortex.planner.html import render_html
from cortex.planner.inputs import load_plan
from cortex.planner.report import _extra_lines, to_dict
from cortex.planner.solve import solve
from cortex.planner.twin_loop import _measured, mixed_fleet_dict, refine, run_twin

# The toy (tests/unit/test_planner_toy.py) grown tenfold so that the scaled fleets get enough
# jobs for both flavors to work: H100 supply (2 blocks a month) runs out, H200 makes up the rest.
BIG = {
    **TOY,
    "sku_overrides": {
        **TOY["sku_overrides"],
        # 12 a month: 24 H200 (6,758 H100e) arrive by month 3, so the 7,000 H100e need H100s
        # too, and the mixed runs hold both. At 30 a month the plan's mix was the solver's
        # pick within its gap: 24 H200 + 1 H100 ($149M) or 25 H200 ($150M, both "Optimal").
        "H200": {**TOY["sku_overrides"]["H200"], "supply_blocks_per_month": 12},
    },
    "compute_targets": [{"month": 3, "h100e": 7000}],
}
TWIN = {
    "checkpoints": [1, 3, 4],
    "scale": 2,
    "days": 1.0,
    "seeds": 2,
    "workers": 1,
    "max_iterations": 1,
    "policy": "hetero",
}


def _load(tmp_path: Path, data: dict):  # type: ignore[no-untyped-def]
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(data))
    return load_plan(p)


def test_mixed_run_gives_goodput_by_flavor(tmp_path: Path) -> None:
    _, inp = _load(tmp_path, TOY)
    h100, h200 = inp.skus
    fleet = mixed_fleet_dict([(h100, 96), (h200, 320)], 3)
    r = run_twin((fleet, 1.0, 0, "hetero", 2.0, "synthetic", True))
    by = r["by_flavor"]
    assert set(by) == {"H100-SXM5", "H200-SXM"}
    assert sum(b["gpus"] for b in by.values()) == r["gpus"] == 416 * 8
    for b in by.values():  # warm, the profile keeps both flavors at work
        assert b["allocated_share"] > 0.5 and 0.0 < b["factor"] <= 1.0
        assert b["factor"] == pytest.approx(b["goodput"] * b["availability"], abs=1e-5)
    # From an empty fleet, a day of arrivals fits on the faster H200s: the H100s do too little
    # work to measure (their SKU leans on the runs' fleet goodput, test below).
    cold = run_twin((fleet, 1.0, 0, "hetero", 2.0, "synthetic", False))["by_flavor"]
    assert cold["H100-SXM5"]["allocated_share"] < 0.01 and cold["H100-SXM5"]["factor"] is None
    assert cold["H200-SXM"]["factor"] is not None


def test_refine_runs_the_planned_mix_together(tmp_path: Path) -> None:
    spec, inp = _load(tmp_path, {**BIG, "twin": TWIN})
    new, rep = refine(spec, inp)
    assert rep["fleet"] == "mixed" and rep["policy"] == "hetero" and rep["iterations"] == 1
    runs = [r for r in rep["runs"] if not r["sku"].startswith("flagship:")]
    # One mixed run per checkpoint and seed, holding every SKU the plan has installed then;
    # at month 1 nothing has arrived yet (the target is due at month 3): no run.
    got = sorted((r["checkpoint"], r["seed"]) for r in runs)
    assert got == [(3, 0), (3, 1), (4, 0), (4, 1)]
    assert all(r["sku"] == "mixed" for r in runs)
    for r in runs:
        assert set(r["nodes"]) == {"H100", "H200"}
        assert set(r["by_flavor"]) == {"H100-SXM5", "H200-SXM"}
    at3 = [r for r in runs if r["checkpoint"] == 3]
    # Step 1 takes the measured factor whole: each SKU's, at the months nearest checkpoint 3,
    # is its own flavor's books in the mixed runs, pooled over the seeds, goodput weighted
    # against the fleet's by 5% of the flavor's installed GPU-time.
    fleet = sum(r["productive_gpu_h"] for r in at3) / sum(r["allocated_gpu_h"] for r in at3)
    for sku, flavor in (("H100", "H100-SXM5"), ("H200", "H200-SXM")):
        bs = [r["by_flavor"][flavor] for r in at3]
        installed = sum(b["installed_gpu_h"] for b in bs)
        prior = 0.05 * installed
        goodput = (sum(b["productive_gpu_h"] for b in bs) + prior * fleet) / (
            sum(b["allocated_gpu_h"] for b in bs) + prior
        )
        want = goodput * sum(b["availability"] * b["installed_gpu_h"] for b in bs) / installed
        assert rep["measured_factors"]["3"][sku] == pytest.approx(want, abs=1e-4)
        assert new.goodput[(2, sku)] == pytest.approx(want, rel=1e-12)
    # The report gives the mixed runs' books by flavor: in the JSON, the table and the page.
    flavors = rep["by_flavor"]["3"]
    assert set(flavors) == {"H100-SXM5", "H200-SXM"}
    assert flavors["H200-SXM"]["factor"] == pytest.approx(
        sum(r["by_flavor"]["H200-SXM"]["factor"] for r in at3) / len(at3), abs=1e-4
    )
    text = "\n".join(_extra_lines({"twin": rep}))
    assert "mixed fleet" in text and "month 3, mixed run by flavor" in text and "H200-SXM" in text
    page = render_html(to_dict(solve(new, diagnose=False), {"twin": rep}))
    assert "Mixed runs by flavor" in page


def test_mixed_factor_pools_seeds_and_leans_on_the_fleet_when_idle(tmp_path: Path) -> None:
    _, inp = _load(tmp_path, TOY)
    shape = (("H100", 32), ("H200", 32))

    def books(alloc: float, prod: float, avail: float) -> dict:
        return {
            "installed_gpu_h": 100.0,
            "allocated_gpu_h": alloc,
            "productive_gpu_h": prod,
            "availability": avail,
        }

    def run(h100: dict, h200: dict) -> dict:  # the fleet: goodput 50 / 100
        by = {"H100-SXM5": h100, "H200-SXM": h200}
        return {"productive_gpu_h": 50.0, "allocated_gpu_h": 100.0, "by_flavor": by}

    runs = {
        (3, "mixed", shape, 0): run(books(0, 0, 1.0), books(80, 60, 0.9)),
        (3, "mixed", shape, 1): run(books(0, 0, 0.8), books(60, 40, 1.0)),
        (3, "H100", (("H100", 32),), 0): {"factor": 0.8},
        (3, "H100", (("H100", 32),), 1): {"factor": 0.6},
    }
    got = _measured(inp, runs)
    # Seeds pooled: 200 installed GPU-h, a prior of 5% of it (10 GPU-h) at the fleet's 0.5.
    # H200: (60 + 40 + 10 x 0.5) / (80 + 60 + 10) = 0.7, times availability 190 / 200.
    assert got[("H200", 3)] == pytest.approx(0.7 * 0.95)
    # The H100s did nothing: the fleet's goodput, times their availability 180 / 200. Alone,
    # their factor is the mean over seeds of the runs' own.
    del runs[(3, "H100", (("H100", 32),), 0)], runs[(3, "H100", (("H100", 32),), 1)]
    assert _measured(inp, runs)[("H100", 3)] == pytest.approx(0.5 * 0.9)
    solo = {
        (3, "H100", (("H100", 32),), 0): {"factor": 0.8},
        (3, "H100", (("H100", 32),), 1): {"factor": 0.6},
    }
    assert _measured(inp, solo)[("H100", 3)] == pytest.approx(0.7)
