"""A capacity architect's first review of `cortex plan` (issue 12 part 2) and of the files
`cortex sim` reads: each test here failed on the code before its fix (checked there): a
traceback, a silently wrong answer (a key given twice, a start fleet retired without a word,
MW added to H100e-months) or a value the model could not mean (a PUE of 0, 2.5 months)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from test_planner_toy import TOY

from clikit import Run, cortex_batch
from cortex.planner.inputs import load_plan
from cortex.planner.solve import solve

PLAN = ["plan", "{d}/p.yaml", "--no-scenarios", "--no-inhouse-cost"]
SIM = ["sim", "--fleet", "tiny", "--days", "0.02", "--quiet"]
FLEET = (
    "name: lab\n"
    "site: {name: lab, power_cap_mw: 2, pue: 1.25}\n"
    "halls: [{name: a, groups: [{flavor: H100-SXM5, nodes: 8}]}]\n"
)
DEEP = "[" * 5000 + "]" * 5000 + "\n"


def _plan(**top: object) -> dict:
    return {**copy.deepcopy(TOY), **top}


def _facility(**kw: float) -> dict:
    return _plan(facility={**TOY["facility"], **kw})


def _override(sku: str, **kw: object) -> dict:
    p = _plan()
    p["sku_overrides"][sku].update(kw)
    return p


# id -> (args, files {name: text or dict as YAML}, what the one error line says)
CASES: dict[str, tuple[list[str], dict[str, object], list[str]]] = {
    # RecursionError tracebacks: PyYAML's composer recurses once per level
    "plan nested 5,000 deep": (PLAN, {"p.yaml": "name: " + DEEP}, ["p.yaml: <yaml>", "deeper"]),
    "fleet nested 5,000 deep": (
        ["sim", "--fleet", "{d}/f.yaml", "--days", "0.02", "--quiet"],
        {"f.yaml": FLEET + "description: " + DEEP},
        ["f.yaml: <yaml>", "deeper"],
    ),
    "job file nested 5,000 deep": (
        ["sim", "--fleet", "tiny", "--workload", "{d}/j.yaml", "--days", "0.02", "--quiet"],
        {"j.yaml": DEEP},
        ["j.yaml: <yaml>", "deeper"],
    ),
    # PyYAML kept the last of two keys: the fleet ran on a 0.001 MW site, the plan on 2 months
    "fleet key given twice": (
        ["sim", "--fleet", "{d}/f.yaml", "--days", "0.02", "--quiet"],
        {"f.yaml": FLEET + "site: {name: lab, power_cap_mw: 0.001, pue: 1.25}\n"},
        ["f.yaml: <yaml>", "key 'site' given twice (lines 2 and 4)"],
    ),
    "plan key given twice": (
        PLAN,
        {"p.yaml": yaml.safe_dump(TOY) + "horizon_months: 2\n"},
        ["p.yaml: <yaml>", "key 'horizon_months' given twice"],
    ),
    # facility overrides: ZeroDivisionError; a PUE of 0 (41k GPUs drew 2 MW); 0-MW units;
    # 2.5 months (int() in the model, a float comparison in the report); a 1e15 discount rate
    "facility hall life 0": (
        PLAN,
        {"p.yaml": _facility(hall_life_months=0)},
        ["facility.hall_life_months", "whole months from 1"],
    ),
    "facility pue 0": (PLAN, {"p.yaml": _facility(liquid_pue=0)}, ["facility.liquid_pue"]),
    "facility build months 2.5": (
        PLAN,
        {"p.yaml": _facility(liquid_hall_build_months=2.5)},
        ["facility.liquid_hall_build_months", "got 2.5"],
    ),
    "facility battery unit 0 MW": (
        PLAN,
        {"p.yaml": _facility(battery_unit_mw=0)},
        ["facility.battery_unit_mw", "above 0"],
    ),
    "facility discount 1e15": (
        PLAN,
        {"p.yaml": _facility(discount_rate_per_year=1e15)},
        ["facility.discount_rate_per_year", "at most 1"],
    ),
    # a SKU that can never arrive, as a lead time past the horizon already was refused
    "available month past the horizon": (
        PLAN,
        {"p.yaml": _override("H200", available_month=50)},
        ["sku_overrides.H200.available_month", "past the 6-month horizon"],
    ),
    # 64 GPUs rounded to 0 blocks of 256: the plan started empty, the check said "0 GPUs"
    "start fleet under half a block": (
        PLAN,
        {"p.yaml": _plan(start_fleet={"preset": "tiny", "site": "a"})},
        ["start_fleet.preset", "under half a H100 block"],
    ),
    # 50,000 H100 became 167 Dojo cabinets; a flavor's typo was read by nothing
    "start fleet mapped to another chip": (
        PLAN,
        {
            "p.yaml": _plan(
                skus=["H100", "H200", "INHOUSE"],
                sku_overrides={"INHOUSE": {"lead_months": 1}},
                start_fleet={
                    "preset": "cortex-2024",
                    "site": "a",
                    "sku_by_flavor": {"H100-SXM5": "INHOUSE", "H200-SXM": "H200"},
                },
            )
        },
        ["start_fleet.sku_by_flavor.H100-SXM5", "INHOUSE is Dojo-D1 blocks, not H100-SXM5"],
    ),
    "start fleet flavor typo": (
        PLAN,
        {
            "p.yaml": _plan(
                start_fleet={
                    "preset": "cortex-2024",
                    "site": "a",
                    "sku_by_flavor": {"H100-SXM5": "H100", "H200-SXM": "H200", "H20-SXM": "H200"},
                }
            )
        },
        ["start_fleet.sku_by_flavor.H20-SXM", "cortex-2024 has no H20-SXM GPUs"],
    ),
    # no SKU could count toward the share, so the plan bought nothing at all
    "in-house share with no in-house SKU": (
        PLAN,
        {"p.yaml": _plan(inhouse={"share": 0.5, "from_month": 3})},
        ["inhouse.share", "none of this plan's skus is in-house"],
    ),
    # the larger of the two was kept, the other dropped
    "compute target month twice": (
        PLAN,
        {"p.yaml": _plan(compute_targets=[{"month": 3, "h100e": 700}, {"month": 3, "h100e": 500}])},
        ["compute_targets[1].month", "month 3 given twice"],
    ),
    # 8 nodes of 1,000,000 GPUs ran for minutes on a 30-minute horizon; a PUE of 1e9 drew
    # 62 million MW
    "fleet node of a million GPUs": (
        ["sim", "--fleet", "{d}/f.yaml", "--days", "0.02", "--quiet"],
        {"f.yaml": FLEET.replace("nodes: 8}", "nodes: 8, gpus_per_node: 1000000}")},
        ["f.yaml: halls[0].groups[0].gpus_per_node", "less than or equal to 1024"],
    ),
    "fleet pue 1e9": (
        ["sim", "--fleet", "{d}/f.yaml", "--days", "0.02", "--quiet"],
        {"f.yaml": FLEET.replace("pue: 1.25", "pue: 1.0e9")},
        ["f.yaml: site.pue", "less than or equal to 3"],
    ),
    # the plan file was replaced by its report; the JSON written, then overwritten by the HTML
    "plan --json onto the plan file": (
        ["plan", "{d}/p.yaml", "--json", "{d}/p.yaml", "--no-scenarios"],
        {"p.yaml": _plan()},
        ["p.yaml: --json: is an input of this run"],
    ),
    "plan --json and --html on one path": (
        [*PLAN, "--json", "{d}/r", "--html", "{d}/r"],
        {"p.yaml": _plan()},
        ["r: --html: is also the --json path"],
    ),
    "sim --json onto the trace": (
        ["sim", "--fleet", "tiny", "--trace", "{d}/t.csv", "--json", "{d}/t.csv", "--quiet"],
        {"t.csv": "submit_time_s,num_gpus,duration_s\n0,8,100\n"},
        ["t.csv: --json: is an input of this run"],
    ),
    "power swing --json and --plot on one path": (
        [
            "power",
            "swing",
            "--gpus",
            "1024",
            "--flavor",
            "H100-SXM5",
            "--iteration-s",
            "10",
            "--comm-fraction",
            "0.3",
            "--json",
            "{d}/s",
            "--plot",
            "{d}/s",
        ],
        {},
        ["s: --plot: is also the --json path"],
    ),
    "plan --frontier with no lambdas": (
        [*PLAN, "--frontier"],
        {"p.yaml": _plan(frontier_lambdas=[])},
        ["p.yaml: frontier_lambdas: empty: --frontier sweeps nothing"],
    ),
    # csv.DictReader kept the last of two same-named columns' cells
    "trace column given twice": (
        ["sim", "--fleet", "tiny", "--trace", "{d}/t.csv", "--days", "0.02", "--quiet"],
        {"t.csv": "submit_time_s,num_gpus,duration_s,num_gpus\n0,8,100,64\n"},
        ["t.csv: row 1: num_gpus: column given twice"],
    ),
    "cap curve column given twice": (
        [*SIM, "--power-policy", "cap", "--cap-curve", "{d}/c.csv"],
        {"c.csv": "flavor,cap_over_draw,throughput_kept,throughput_kept\n*,0.5,0.5,0.9\n"},
        ["c.csv: row 1: throughput_kept: column given twice"],
    ),
    "failure data column given twice": (
        [*SIM, "--failure-data", "{d}/f.csv"],
        {
            "f.csv": "cause,category,applies_to,share,detect_s,recover_s,share\n"
            "bug,software,research,1,60,60,0.5\n"
        },
        ["f.csv: row 1: share: column given twice"],
    ),
}


def _write(d: Path, files: dict[str, object]) -> None:
    for name, body in files.items():
        (d / name).write_text(yaml.safe_dump(body) if isinstance(body, dict) else str(body))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    calls = []
    for i, (args, files, _) in enumerate(CASES.values()):
        d = tmp_path_factory.mktemp(f"case{i}")
        _write(d, files)
        calls.append(([a.replace("{d}", str(d)) for a in args], d))
    return dict(zip(CASES, cortex_batch(calls), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line(runs: dict[str, Run], case: str) -> None:
    proc = runs[case]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for s in CASES[case][2]:
        assert s in lines[0], (s, lines[0])
    assert proc.stdout == ""


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    from cortex import yamlfiles

    assert yamlfiles.load("b: &b {x: 1, y: 2}\nc: {<<: *b, x: 3}\n")["c"] == {"x": 3, "y": 2}


def _load(tmp_path: Path, data: dict):  # type: ignore[no-untyped-def]
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(data))
    return load_plan(p)


def test_a_start_fleet_the_site_cannot_hold_is_reported_retired(tmp_path: Path) -> None:
    # dojo-buffalo (1,200 nodes of 25 D1 = 100 cabinets of 300) on a site with no swing
    # allowance and no batteries at month 0: the model retires the whole start fleet in month 0
    # (the swing limit), and the report showed only "0 GPUs" at the start.
    from cortex.planner.report import fact_check, retirement_lines, to_dict

    data = _plan(
        skus=["H100", "INHOUSE"],
        sku_overrides={"H100": TOY["sku_overrides"]["H100"], "INHOUSE": {"lead_months": 1}},
        start_fleet={
            "preset": "dojo-buffalo",
            "site": "a",
            "sku_by_flavor": {"Dojo-D1": "INHOUSE"},
        },
        sites=[{**TOY["sites"][0], "swing_allowance_mw": 0}],
    )
    _, inp = _load(tmp_path, data)
    res = solve(inp, diagnose=False)
    assert res.months[0]["gpus"]["INHOUSE"] == 0
    assert [(r["month"], r["sku"], r["blocks"], r["gpus"]) for r in res.retirements] == [
        (0, "INHOUSE", 100.0, 30_000)
    ]
    assert to_dict(res)["retirements"] == res.retirements
    from cortex.planner.html import render_html

    assert "<h2>Early retirements</h2>" in render_html(to_dict(res))
    (line,) = retirement_lines(res)
    assert line.startswith("month 0 (2024-09) at a: INHOUSE 100.0 blocks (30,000 GPUs)")
    # Not the seed's fleet: no "~100k H100-class GPUs at ~130 MW" check to fail ("not met"
    # was printed for any start fleet).
    assert fact_check(res) == []


def test_the_start_check_counts_the_seed_fleet_retired_in_month_0(tmp_path: Path) -> None:
    # cortex-2024 (390 blocks, 121.9 MW busy) on a site with 40 MW: most of it leaves in
    # month 0, and the check said only how many GPUs were left.
    from cortex.planner.report import fact_check

    site = {**TOY["sites"][0], "liquid_mw": 200, "power_ramp": [{"month": 0, "grid_mw": 40}]}
    data = _plan(sites=[site], start_fleet={"preset": "cortex-2024", "site": "a"})
    _, inp = _load(tmp_path, data)
    res = solve(inp, diagnose=False)
    gone = sum(r["gpus"] for r in res.retirements if r["month"] == 0)
    assert gone > 50_000
    (start,) = fact_check(res)
    assert f"({gone:,} GPUs of the start fleet retired in month 0)" in start["value"]
    assert not start["ok"]


def test_shortfalls_keep_their_units_and_each_target_is_diagnosed(tmp_path: Path) -> None:
    # A 1 MW power target and an unreachable 1e6 H100e compute target on a site with no
    # power. They were added into one number (MW + H100e-months), and the diagnosis kept a
    # limit only if it closed a tenth of that sum: power, which closes all of the power
    # target's gap, was not named (the compute gap, 3e6 H100e-months, hid it).
    p = _plan(
        sites=[{**TOY["sites"][0], "power_ramp": [{"month": 0, "grid_mw": 0}]}],
        power_target={"month": 3, "mw": 1.0},
        compute_targets=[{"month": 3, "h100e": 1.0e6}],
    )
    _, inp = _load(tmp_path, p)
    res = solve(inp)
    short = res.totals["target_shortfall"]
    assert set(short) == {"power_target_mw", "compute_h100e_months"}
    assert short["power_target_mw"] == pytest.approx(1.0, abs=1e-6)
    assert short["compute_h100e_months"] == pytest.approx(3 * 1.0e6, abs=1e-3)
    said = "power: relaxing it closes 100% of the power target's"
    assert any(b.startswith(said) for b in res.binding), res.binding


def test_a_dense_sku_does_not_buy_its_way_past_the_power_limit(tmp_path: Path) -> None:
    # GB200 on llm: 1,291 H100e per block at 755 kW busy (0.88 MW at PUE 1.16), so a block
    # missing from a compute target cost $1,291M a month against $1,000M per MW-month of
    # power broken: the plan drew 3.4 MW on a 1 MW supply and called it a plan.
    gb200 = {
        "price_usd": 30e6,
        "lead_months": 1,
        "available_month": 0,
        "supply_blocks_per_month": 2,
        "life_months": 6,
    }
    p = _plan(
        skus=["H100", "GB200"],
        sku_overrides={"H100": TOY["sku_overrides"]["H100"], "GB200": gb200},
        sites=[{**TOY["sites"][0], "power_ramp": [{"month": 0, "grid_mw": 1}]}],
        workload_mix={"llm": 1.0},
        compute_targets=[{"month": 3, "h100e": 5000}],
    )
    _, inp = _load(tmp_path, p)
    res = solve(inp)
    assert all(m["facility_mw"] <= m["supply_mw"] + 1e-6 for m in res.months), [
        (m["facility_mw"], m["supply_mw"]) for m in res.months
    ]
    assert not any(v.startswith("power") for v in res.violations), res.violations
    assert res.binding and res.binding[0].startswith("power: relaxing it closes 100%")


# ---- cortex sim: options nothing reads, and inf/nan named by their option -----------------
SIM_CASES: dict[str, tuple[list[str], list[str]]] = {
    # ran, and the report was the one without them
    "static cap under none": (["--static-cap", "0.5"], ["--static-cap", "no effect"]),
    "static cap under cap": (
        ["--power-policy", "cap", "--static-cap", "0.5"],
        ["--static-cap", "--power-policy static"],
    ),
    "battery efficiency without a battery": (
        ["--power-policy", "full", "--battery-efficiency", "0.5"],
        ["--battery-efficiency", "without a battery"],
    ),
    "battery efficiency with power off": (
        ["--power-policy", "off", "--battery-efficiency", "0.5"],
        ["--battery-efficiency", "--power-policy off"],
    ),
    # `Infinity` in the JSON report
    "ramp limit inf": (
        ["--power-policy", "full", "--ramp-limit", "inf"],
        ["--ramp-limit: ramp_limit_mw_per_min: must be finite"],
    ),
    "cap event lasting inf": (
        ["--cap-event", "0:inf:0.5"],
        ["--cap-event: duration_h: must be finite"],
    ),
    # named "prices: power_mw" and "climate: delta_c"
    "battery energy inf": (
        ["--power-policy", "full", "--battery-mwh", "inf", "--battery-mw", "1"],
        ["--battery-mwh: battery_mwh: must be finite"],
    ),
    "heat wave nan": (["--heat-wave", "0:1:nan"], ["--heat-wave: delta_c: must be finite"]),
    # a 190-digit temperature in the message
    "heat wave 1e308": (["--heat-wave", "0:1:1e308"], ["to 9.83e+307 C"]),
}


@pytest.fixture(scope="module")
def sim_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    d = tmp_path_factory.mktemp("sim")
    calls = [([*SIM, *args, "--json", str(d / "r.json")], d) for args, _ in SIM_CASES.values()]
    return dict(zip(SIM_CASES, cortex_batch(calls), strict=True))


@pytest.mark.parametrize("case", list(SIM_CASES))
def test_a_sim_option_nothing_reads_or_not_finite_exits_2(
    sim_runs: dict[str, Run], case: str
) -> None:
    proc = sim_runs[case]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for s in SIM_CASES[case][1]:
        assert s in lines[0], (s, lines[0])


def test_a_min_cost_tornado_is_sorted_by_cost(tmp_path: Path) -> None:
    # The toy meets its 700 H100e at least cost whatever the input, so every goodput bar was
    # flat but one; its cost is what moves: hardware at 0.8x and 1.2x is $12.8M and $19.2M
    # against $16M (the toy's optimum, test_planner_toy.py).
    from cortex.planner.scenarios import tornado

    _, inp = _load(tmp_path, _plan())
    rows = tornado(inp, solve(inp, diagnose=False), workers=1)
    first = rows[0]
    assert first["input"] == "hardware price"
    assert first["base_cost_musd"] == pytest.approx(16.0)
    assert (first["cost_low_musd"], first["cost_high_musd"]) == pytest.approx((12.8, 19.2))


def test_the_html_quarters_end_with_the_last_month(tmp_path: Path) -> None:
    # A 7-month plan: quarters end in months 2, 5 and 6; the page's [2::3] dropped month 6.
    from cortex.planner.html import render_html
    from cortex.planner.report import to_dict

    _, inp = _load(tmp_path, _plan(horizon_months=7))
    page = render_html(to_dict(solve(inp, diagnose=False)))
    quarters = page.split("<h2>By quarter</h2>")[1].split("</table>")[0]
    assert [lab in quarters for lab in ("2024-11", "2025-02", "2025-03")] == [True] * 3


def test_a_target_missed_for_want_of_supply_names_supply_with_numbers(tmp_path: Path) -> None:
    # 5,000 H100e by month 3 from at most 2 H100 (lead 1) and 3 H200 (lead 2) a month: 3 x 2
    # x 256 + 2 x 3 x 281.6 = 3,225.6 H100e arrive by then. The order variables kept the
    # cap as a bound when "supply" was relaxed, so nothing moved and no limit was named.
    _, inp = _load(tmp_path, _plan(compute_targets=[{"month": 3, "h100e": 5000}]))
    res = solve(inp)
    assert len(res.binding) == 1, res.binding
    assert res.binding[0].startswith("supply: relaxing it closes 100% of the compute target's")
    assert "H100 at its cap of 2 blocks a month in 3 of the 3 months" in res.binding[0]
    assert "H200 at its cap of 3 blocks a month in 2 of the 2 months" in res.binding[0]


def test_a_target_missed_for_want_of_halls_names_the_halls_size(tmp_path: Path) -> None:
    # 0.5 MW of liquid hall and no air halls; a new hall takes 9 months, past the horizon. The
    # line named the plan's busy IT draw as what the "halls hold".
    site = {**TOY["sites"][0], "liquid_mw": 0.5, "allow_air_halls": False}
    _, inp = _load(tmp_path, _plan(sites=[site]))
    res = solve(inp)
    (line,) = res.binding
    assert line.startswith("halls: relaxing it closes 100% of the compute target's"), line
    assert "halls online hold 0.5 MW of peak IT (liquid 0.5 + air 0.0)" in line
    assert res.months[3]["hall_mw"] == {"liquid": 0.5, "air": 0.0}
    assert res.months[3]["peak_it_mw"] <= 0.5 + 1e-6


def test_the_in_house_price_says_more_or_less_cash() -> None:
    # "costs 547,344 goodput H100e-months (3.6%) and -151 $M of cash": a cost of minus $151M
    from cortex.planner.report import _extra_lines

    inh = {
        "share_target": 0.5,
        "goodput_h100e_months_lost": 547_344.0,
        "goodput_lost_fraction": 0.036,
        "cost_delta_musd": -151.0,
        "share_reached_end": 0.07,
        "share_without_target_end": 0.0,
    }
    (line,) = _extra_lines({"inhouse_cost": inh})
    assert "and $151M less cash against the plan without it" in line
    (line,) = _extra_lines({"inhouse_cost": {**inh, "cost_delta_musd": 20.0}})
    assert "and $20M more cash against" in line


def test_a_twin_run_that_keeps_no_work_has_goodput_0(tmp_path: Path) -> None:
    # The flagship job alone on one H100 pod at 1e5 times the failure rates (twin.scale may be
    # 100,000 and failures are scaled by it): 0 productive GPU-h of 0.7 allocated, reported as
    # a goodput of 1.0.
    from cortex.planner.twin_loop import fleet_dict, run_twin

    _, inp = _load(tmp_path, _plan())
    h100 = inp.skus[0]
    r = run_twin((fleet_dict(h100, h100.nodes_per_pod, 3), 0.5, 0, "priority", 1e5, "single:240"))
    assert r["allocated_gpu_h"] > 0 and r["productive_gpu_h"] == 0
    assert r["goodput"] == 0.0 and r["factor"] == 0.0


def test_a_target_missed_at_the_solvers_time_limit_says_so(tmp_path: Path) -> None:
    # The example at a goodput factor of 0.8: the LP relaxation meets 500 MW at month 18. It
    # was missed by 1.2 MW within the solver's stopping gap (mip_gap x the budget); targets
    # are now solved first (test_planner_stability.py) and meet it. What is left is the
    # targets' solve stopping at time_limit_s: the line says so, not "block sizes".
    from cortex.planner.solve import _binding

    data = yaml.safe_load(Path("examples/plan-cortex.yaml").read_text())
    data.update(goodput_factor=0.8, scenarios=[])
    _, inp = _load(tmp_path, data)
    res = solve(inp)
    assert res.binding == [] and res.totals["target_shortfall"]["power_target_mw"] < 0.01
    assert res.x is not None and res.built is not None
    (j,) = [j for (f, _t, _w), j in res.built.slack.items() if f == "power_target"]
    res.x[j] = 1.2  # as a search cut short by time_limit_s would leave it
    res.targets_status = "Time limit reached"
    (line,) = _binding(inp, res, None)
    assert line.startswith("the solver's time limit: the LP relaxation meets the targets")
    assert "1.2 MW (power target)" in line and "raise time_limit_s" in line


def test_twin_convergence_is_judged_on_the_undamped_gap(tmp_path: Path) -> None:
    # Successive averages damp each step by 1/iteration, so the move itself shrinks whatever
    # the twin measures; convergence is the measured factors' distance from the ones in use.
    from cortex.planner.twin_loop import refine

    twin = {
        "checkpoints": [3],
        "scale": 16,
        "days": 0.5,
        "seeds": 1,
        "workers": 1,
        "max_iterations": 3,
        "policy": "priority",
        "fleet": "per_sku",
    }
    spec, inp = _load(tmp_path, _plan(twin=twin))
    _, rep = refine(spec, inp)
    first = rep["history"][0]
    assert first["max_measured_gap"] == first["max_factor_change"]  # step 1 takes it whole
    last = rep["history"][-1]
    tol = spec.twin.tolerance
    assert rep["converged"] == (last["order_lines_changed"] == 0 or last["max_measured_gap"] <= tol)


def test_a_block_retired_early_does_not_leave_again_at_its_end_of_life(tmp_path: Path) -> None:
    # cortex-2024 at 50 months of age (life 60: it leaves at month 10 anyway) on a site with
    # 40 MW. The end of life was subtracted from the blocks in service, so a block retired in
    # month 0 left again in month 10: the plan kept 180 of 390 blocks past the power, hall and
    # swing limits and bought 210 more, over budget, to be retired at month 10.
    site = {**TOY["sites"][0], "power_ramp": [{"month": 0, "grid_mw": 40}], "liquid_mw": 50}
    start = {"preset": "cortex-2024", "site": "a", "age_months": 50}
    data = _plan(horizon_months=12, sites=[site], start_fleet=start, mode="max_compute")
    data.pop("compute_targets")
    for ov in data["sku_overrides"].values():
        ov["life_months"] = 60
    _, inp = _load(tmp_path, data)
    res = solve(inp, diagnose=False)
    assert res.violations == [], res.violations
    # What 40 MW holds stays (138 H200 blocks at 0.29 MW, the faster of the two), the rest
    # leaves in month 0, all of it counted as early retirements.
    assert res.months[0]["facility_mw"] <= 40.0 + 1e-6
    assert {r["month"] for r in res.retirements} == {0}
    gone = sum(r["blocks"] for r in res.retirements)
    kept = sum(res.months[0]["blocks"].values())
    assert gone + kept == pytest.approx(390.0)
    # On a site that holds it, the fleet leaves at its end of life, not as an early retirement.
    roomy = {**site, "power_ramp": [{"month": 0, "grid_mw": 200}], "liquid_mw": 200}
    _, inp = _load(tmp_path, {**data, "sites": [roomy]})
    res = solve(inp, diagnose=False)
    assert res.retirements == [] and res.violations == []
    for sku in ("H100", "H200"):
        came = sum(o["blocks"] for o in res.orders if o["sku"] == sku and o["arrives"] == 10)
        b9, b10 = res.months[9]["blocks"][sku], res.months[10]["blocks"][sku]
        assert b10 == pytest.approx(b9 - 195 + came)


def test_the_swing_of_blocks_in_air_halls_is_at_the_air_pue(tmp_path: Path) -> None:
    # Only air halls (PUE 1.4), no batteries, 0.25 MW of swing allowed: 0.25 / (76 kW x 1.4)
    # = 2.35 blocks in service, 662 H100e at most (H200, 281.6 each), short of the toy's 700.
    # The swing row used the liquid PUE (1.16) for every block: 2.84 blocks, target met. The
    # power row charged the same blocks at 1.4.
    site = {
        **TOY["sites"][0],
        "liquid_mw": 0,
        "air_mw": 100,
        "battery_max_mw": 0,
        "swing_allowance_mw": 0.25,
    }
    _, inp = _load(tmp_path, _plan(sites=[site]))
    res = solve(inp)
    assert res.totals["target_shortfall"]["compute_h100e_months"] > 0
    assert res.binding and res.binding[0].startswith("swing:"), res.binding
