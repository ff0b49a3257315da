"""`cortex plan PLAN.yaml`: solve a capacity plan, print it by quarter, write JSON and HTML."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from cortex.errors import InputError, check_outputs
from cortex.planner.inputs import load_plan
from cortex.planner.report import print_table, to_dict, write_json
from cortex.planner.solve import solve
from cortex.planner.spec import PlanSpec


def plan(
    plan_file: Path = typer.Argument(..., help="plan YAML (see examples/plan-cortex.yaml)"),
    json_path: Path | None = typer.Option(None, "--json", help="write the JSON report here"),
    html_path: Path | None = typer.Option(
        None, "--html", help="write the HTML report here (also runs --frontier and --tornado)"
    ),
    scenarios: bool = typer.Option(
        True, help="re-solve each scenario with the first-stage orders fixed (fix and recourse)"
    ),
    inhouse_cost: bool = typer.Option(True, help="re-solve without the in-house share"),
    frontier: bool = typer.Option(
        False, help="sweep lambda for the cost/compute frontier (on with --html)"
    ),
    tornado: bool = typer.Option(
        False, help="one-at-a-time sensitivities, more solves (on with --html)"
    ),
    twin: bool = typer.Option(False, help="refit goodput factors from cortex sim runs"),
    policy: str | None = typer.Option(
        None, help="with --twin: the twin's scheduling profile (default: the plan's twin.policy)"
    ),
) -> None:
    """Plan accelerator orders, halls, generation and cash month by month (a HiGHS MILP)."""
    check_outputs({"--json": json_path, "--html": html_path}, [plan_file])
    spec, inp = load_plan(plan_file)
    if frontier and not spec.frontier_lambdas:  # the sweep ran nothing and said nothing
        raise InputError(str(plan_file), "frontier_lambdas", "empty: --frontier sweeps nothing")
    _check_twin(spec, inp.months, str(plan_file), twin, policy)
    extra: dict[str, Any] = {}
    if twin:
        from cortex.planner.twin_loop import refine

        inp, extra["twin"] = refine(spec, inp, policy=policy)
    res = solve(inp)
    if not math.isfinite(res.objective):  # no solution: the read-back is all zeros, not a plan
        raise InputError(
            str(plan_file),
            "time_limit_s",
            f"HiGHS found no plan within {inp.time_limit_s:g} s ({res.status}); give it more time",
        )
    if inhouse_cost and inp.inhouse is not None:
        from cortex.planner.scenarios import inhouse_cost as _inh

        extra["inhouse_cost"] = _inh(inp, res)
    if scenarios and spec.scenarios:
        from cortex.planner.scenarios import run_scenarios

        extra["scenarios"] = run_scenarios(spec, inp, res)
    if frontier or html_path is not None:
        from cortex.planner.scenarios import frontier as _frontier

        extra["frontier"] = _frontier(spec, inp)
    if tornado or html_path is not None:
        from cortex.planner.scenarios import tornado as _tornado

        extra["tornado"] = _tornado(inp, res, workers=spec.twin.workers)
    print_table(res, extra)
    report = to_dict(res, extra)
    if json_path is not None:
        _write(json_path, "--json", lambda p: write_json(report, p))
    if html_path is not None:
        from cortex.planner.html import write_html

        _write(html_path, "--html", lambda p: write_html(report, p))


def _check_twin(spec: PlanSpec, months: int, source: str, twin: bool, policy: str | None) -> None:
    """The twin's settings, before any solve: an unknown profile fell back to `priority` with a
    note, --policy without --twin was ignored, and with every checkpoint past the horizon the
    loop ran no twin at all and still reported "converged"."""
    if not twin:
        if policy is not None:
            raise InputError("--policy", "policy", "has no effect without --twin")
        return
    from cortex.scheduler.registry import PROFILES

    name = policy or spec.twin.policy
    if name not in PROFILES:
        src, field = ("--policy", "policy") if policy else (source, "twin.policy")
        raise InputError(src, field, f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    if not any(c < months for c in spec.twin.checkpoints):
        raise InputError(
            source,
            "twin.checkpoints",
            f"none of {spec.twin.checkpoints} is within the {months}-month horizon: "
            "the twin would run nothing",
        )


def _write(path: Path, option: str, writer: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)
    except OSError as err:
        raise InputError(str(path), option, err.strerror or str(err)) from None
