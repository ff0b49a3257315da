"""Bad input a demanding user tried on `cortex sim`, `cortex fleet show`, `cortex plan` and
`cortex power swing` (issues 11 and 12, "Bad input"): each exits 2 with no traceback, on one
`error:` line naming the file or option and the field (or, for an option out of its range,
Typer's usage message naming the option, as the README says), with nothing printed or written.
Every test here failed on the code before its fix (checked by running it there): a traceback,
a hang, exit 0 with a meaningless report or an ignored option, or a line naming no field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from test_planner_toy import TOY

from clikit import Run, cortex_batch

SIM = ["sim", "--fleet", "tiny", "--days", "0.02", "--quiet"]
JOBS_HDR = "cause,category,applies_to,share,detect_s,recover_s\n"
FLEET = {
    "name": "lab",
    "site": {"name": "lab", "power_cap_mw": 2, "pue": 1.25},
    "halls": [{"name": "a", "groups": [{"flavor": "H100-SXM5", "nodes": 8}]}],
}


def _fleet(**group: object) -> dict:
    f = copy.deepcopy(FLEET)
    f["halls"][0]["groups"][0].update(group)
    return f


def _plan(**top: object) -> dict:
    return {**copy.deepcopy(TOY), **top}


def _price(v: float) -> dict:
    p = copy.deepcopy(TOY)
    p["sku_overrides"]["H100"]["price_usd"] = v
    return p


NOT_UTF8 = b"\xff\xfename: x\n"

# id -> (args, files to write {name: text or bytes or dict as YAML}, kind, what the message says)
# kind "line": one stderr line `error: ...`; kind "usage": Typer's usage message, exit 2.
CASES: dict[str, tuple[list[str], dict[str, object], str, list[str]]] = {
    # a traceback from numpy's SeedSequence
    "sim seed negative": ([*SIM, "--seed", "-1"], {}, "usage", ["--seed"]),
    # a traceback from rng.poisson (lam too large)
    "sim failure scale inf": ([*SIM, "--failure-scale", "inf"], {}, "usage", ["--failure-scale"]),
    "sim failure scale huge": (
        [*SIM, "--failure-scale", "1e300"],
        {},
        "usage",
        ["--failure-scale"],
    ),
    # generated a workload for a billion days (hung)
    "sim days huge": (["sim", "--fleet", "tiny", "--days", "1e9"], {}, "usage", ["--days"]),
    # exit 0: NaN in the GPU-hour books (restart_overhead, checkpoint_writes, idle...) or
    # Infinity in the JSON's config (not JSON)
    "sim checkpoint write inf": (
        [*SIM, "--checkpoint-write-s", "inf"],
        {},
        "line",
        ["--checkpoint-write-s", "finite"],
    ),
    "sim checkpoint interval inf": (
        [*SIM, "--checkpoint-interval-s", "inf"],
        {},
        "line",
        ["--checkpoint-interval-s", "finite"],
    ),
    "sim backfill interval inf": (
        [*SIM, "--backfill-interval-s", "inf"],
        {},
        "line",
        ["--backfill-interval-s", "finite"],
    ),
    # exit 0: NaN in the JSON report, or a productive utilization of 8,251%
    "sim temperature nan": ([*SIM, "--temperature-c", "nan"], {}, "line", ["--temperature-c"]),
    "sim temperature huge": ([*SIM, "--temperature-c", "1e300"], {}, "line", ["--temperature-c"]),
    "sim temperature below absolute zero": (
        [*SIM, "--temperature-c", "-300"],
        {},
        "line",
        ["--temperature-c"],
    ),
    "sim heat wave to 1000 C": ([*SIM, "--heat-wave", "0:10:1000"], {}, "line", ["--heat-wave"]),
    # exit 0: the event never took place
    "sim cap event start nan": ([*SIM, "--cap-event", "nan:1:1"], {}, "line", ["start_h"]),
    # the known policies listed as a Python tuple, without `off`
    "sim power policy unknown": (
        [*SIM, "--power-policy", "bogus"],
        {},
        "line",
        ["power_policy", "off, none, static"],
    ),
    # exit 0, the option silently ignored (--load-basis was already refused there)
    "sim load with a trace": (
        [*SIM, "--trace", "{d}/t.csv", "--load", "0.5"],
        {"t.csv": "submit_time_s,num_gpus,duration_s\n0,8,600\n"},
        "line",
        ["--load", "needs the synthetic workload"],
    ),
    "sim load with one job": (
        [*SIM, "--workload", "single:8", "--load", "0.5"],
        {},
        "line",
        ["--load", "needs the synthetic workload"],
    ),
    # exit 0, the option silently ignored
    "sim power option with power off": (
        [*SIM, "--power-policy", "off", "--site-cap-mw", "5"],
        {},
        "line",
        ["--site-cap-mw", "off"],
    ),
    "sim heat wave with a constant temperature": (
        [*SIM, "--temperature-c", "30", "--heat-wave", "1:1:5"],
        {},
        "line",
        ["--heat-wave"],
    ),
    "sim failure data with no failures": (
        [*SIM, "--no-failures", "--failure-data", "{d}/f.csv"],
        {"f.csv": JOBS_HDR + "A,user,research,1,60,600\n"},
        "line",
        ["--failure-data", "--no-failures"],
    ),
    "sim failure scale with no failures": (
        [*SIM, "--no-failures", "--failure-scale", "2"],
        {},
        "line",
        ["--failure-scale"],
    ),
    # exit 0: shares summing to 0 are not shares summing to 1 (the last cause took every failure)
    "sim failure data shares sum to 0": (
        [*SIM, "--failure-data", "{d}/zero.csv"],
        {"zero.csv": JOBS_HDR + "A,user,research,0,60,600\nB,software,research,0,600,600\n"},
        "line",
        ["zero.csv", "share", "sum to 0"],
    ),
    "sim failure data infinite": (
        [*SIM, "--failure-data", "{d}/inf.csv"],
        {"inf.csv": JOBS_HDR + "A,user,research,1,1e400,600\n"},
        "line",
        ["inf.csv", "detect_s", "finite"],
    ),
    # tracebacks (UnicodeDecodeError)
    "sim fleet not utf-8": (
        ["sim", "--fleet", "{d}/f.yaml", "--days", "0.02", "--quiet"],
        {"f.yaml": NOT_UTF8},
        "line",
        ["f.yaml", "<file>", "UTF-8"],
    ),
    "fleet show not utf-8": (
        ["fleet", "show", "{d}/f.yaml"],
        {"f.yaml": NOT_UTF8},
        "line",
        ["f.yaml", "UTF-8"],
    ),
    "sim job file not utf-8": (
        [*SIM, "--workload", "{d}/j.yaml"],
        {"j.yaml": NOT_UTF8},
        "line",
        ["j.yaml", "UTF-8"],
    ),
    "sim cap curve not utf-8": (
        [*SIM, "--cap-curve", "{d}/c.csv"],
        {"c.csv": NOT_UTF8},
        "line",
        ["c.csv", "UTF-8"],
    ),
    "plan not utf-8": (["plan", "{d}/p.yaml"], {"p.yaml": NOT_UTF8}, "line", ["p.yaml", "UTF-8"]),
    # exit 0 (job files took .inf where traces refuse it): NaN in the GPU-hour books for an
    # infinite checkpoint write, a job that never ends or never arrives
    "sim job checkpoint write inf": (
        [*SIM, "--workload", "{d}/j.yaml"],
        {
            "j.yaml": {
                "name": "a",
                "team": "t",
                "gpus": 8,
                "duration_s": 5,
                "checkpoint_write_s": float("inf"),
            }
        },
        "line",
        ["j.yaml", "checkpoint_write_s", "finite"],
    ),
    "sim job duration inf": (
        [*SIM, "--workload", "{d}/j.yaml"],
        {"j.yaml": {"name": "a", "team": "t", "gpus": 8, "duration_s": float("inf")}},
        "line",
        ["j.yaml", "duration_s", "finite"],
    ),
    "fleet infinite borrowing limit": (
        ["fleet", "show", "{d}/f.yaml"],
        {
            "f.yaml": {
                **FLEET,
                "queues": {
                    "cohort": "c",
                    "cluster_queues": [
                        {"name": "a", "nominal_share": 1, "borrowing_limit_share": float("inf")}
                    ],
                },
            }
        },
        "line",
        ["f.yaml", "borrowing_limit_share", "finite"],
    ),
    # a KeyError traceback: no curve for the fleet's flavor and no "*" row to fall back on
    "sim cap curve without a * row": (
        [*SIM, "--cap-curve", "{d}/c.csv"],
        {"c.csv": "flavor,cap_over_draw,throughput_kept\nH999,0.5,0.5\n"},
        "line",
        ["c.csv", "flavor", "'*'"],
    ),
    # exit 0: a breakpoint at NaN
    "sim cap curve nan breakpoint": (
        [*SIM, "--cap-curve", "{d}/c.csv"],
        {"c.csv": "flavor,cap_over_draw,throughput_kept\n*,nan,0.5\n*,1,1\n"},
        "line",
        ["c.csv", "cap_over_draw", "finite"],
    ),
    # exit 0: the extra field dropped (csv.DictReader files it under None); a name holding an
    # unquoted comma shifts every later column the same way
    "sim trace row longer than its header": (
        [*SIM, "--trace", "{d}/t.csv"],
        {"t.csv": "submit_time_s,num_gpus,duration_s\n0,8,600,extra\n"},
        "line",
        ["t.csv", "row 2", "4 fields", "3 columns"],
    ),
    # exit 0: silently cut to 3 per pod (a pod keeps one node in service), 6 of tiny's 8 nodes
    # held as spares, 0.2% of the GPUs allocated
    "sim hot spares past the pod size": (
        [*SIM, "--hot-spares", "64"],
        {},
        "line",
        ["--hot-spares", "at most 3"],
    ),
    # --max-retries (issue 11): bounded as CORTEX_MAX_RETRIES is
    "sim max retries negative": ([*SIM, "--max-retries", "-1"], {}, "usage", ["--max-retries"]),
    "sim max retries huge": ([*SIM, "--max-retries", "1001"], {}, "usage", ["--max-retries"]),
    "sim max retries not a number": (
        [*SIM, "--max-retries", "two"],
        {},
        "usage",
        ["--max-retries"],
    ),
    # exit 0 with a power cap of infinity
    "fleet infinite site cap": (
        ["fleet", "show", "{d}/f.yaml"],
        {"f.yaml": {**FLEET, "site": {"name": "lab", "power_cap_mw": float("inf")}}},
        "line",
        ["f.yaml", "site.power_cap_mw", "finite"],
    ),
    # exit 0 with every job rejected (UnknownQueue) and 0% utilization: the synthetic
    # workload's teams (fsd, optimus, research) have no queue in this fleet
    "sim synthetic on a fleet with other queues": (
        ["sim", "--fleet", "{d}/f.yaml", "--days", "0.2", "--quiet"],
        {
            "f.yaml": {
                **FLEET,
                "queues": {
                    "cohort": "c",
                    "cluster_queues": [
                        {"name": "vision", "nominal_share": 0.5},
                        {"name": "robots", "nominal_share": 0.5},
                    ],
                },
            }
        },
        "line",
        ["f.yaml", "queues", "fsd, optimus, research", "UnknownQueue"],
    ),
    # built a trillion nodes (hung, then out of memory)
    "fleet huge node count": (
        ["fleet", "show", "{d}/f.yaml"],
        {"f.yaml": _fleet(nodes=10**12)},
        "line",
        ["f.yaml", "halls[0].groups[0].nodes", "less than or equal"],
    ),
    # exit 0: HiGHS could not load the model ("Empty") and the plan printed zeros
    "plan price 1e308": (
        ["plan", "{d}/p.yaml", "--no-scenarios", "--no-inhouse-cost"],
        {"p.yaml": _price(1e308)},
        "line",
        ["p.yaml", "sku_overrides.H100.price_usd", "less than or equal"],
    ),
    # exit 0: the unknown profile replaced by `priority` with a note under the table
    "plan twin unknown policy": (
        ["plan", "{d}/p.yaml", "--twin", "--policy", "nope", "--no-scenarios"],
        {"p.yaml": _plan(twin={"checkpoints": [3]})},
        "line",
        ["--policy", "'nope'", "hetero"],
    ),
    "plan twin unknown policy in the file": (
        ["plan", "{d}/p.yaml", "--twin", "--no-scenarios"],
        {"p.yaml": _plan(twin={"checkpoints": [3], "policy": "nope"})},
        "line",
        ["p.yaml: twin.policy:", "'nope'"],
    ),
    # exit 0, the option ignored
    "plan policy without twin": (
        ["plan", "{d}/p.yaml", "--policy", "hetero", "--no-scenarios"],
        {"p.yaml": TOY},
        "line",
        ["--policy", "--twin"],
    ),
    # exit 0: "converged True" with factors 1.000, and not one twin run (every checkpoint,
    # the default 6, 18 and 30, at or past the toy's 6-month horizon)
    "plan twin checkpoints past the horizon": (
        ["plan", "{d}/p.yaml", "--twin", "--no-scenarios"],
        {"p.yaml": TOY},
        "line",
        ["p.yaml: twin.checkpoints:", "6-month horizon"],
    ),
    # exit 0: the share never applied (power_target and flagship months past it were refused)
    "plan in-house share past the horizon": (
        ["plan", "{d}/p.yaml", "--no-scenarios"],
        {"p.yaml": _plan(inhouse={"share": 0.5, "from_month": 60})},
        "line",
        ["p.yaml: inhouse.from_month:", "past the 6-month horizon"],
    ),
    # exit 0: the second rate silently won (a power ramp's month given twice was refused)
    "plan budget month twice": (
        ["plan", "{d}/p.yaml", "--no-scenarios"],
        {
            "p.yaml": _plan(
                budget={
                    "initial_usd": 1e9,
                    "steps": [{"month": 0, "usd_per_month": 0}, {"month": 0, "usd_per_month": 5e6}],
                }
            )
        },
        "line",
        ["p.yaml: budget.steps[1].month:", "given twice"],
    ),
    # the line named `<root>`, not the field
    "plan mix does not sum": (
        ["plan", "{d}/p.yaml"],
        {"p.yaml": _plan(workload_mix={"generic": 0.5})},
        "line",
        ["p.yaml: workload_mix:", "sum to 1"],
    ),
    "plan scenario probabilities": (
        ["plan", "{d}/p.yaml"],
        {"p.yaml": _plan(scenarios=[{"name": "a", "probability": 0.3}])},
        "line",
        ["p.yaml: scenarios:", "sum to 1"],
    ),
    "plan site names twice": (
        ["plan", "{d}/p.yaml"],
        {"p.yaml": _plan(sites=[TOY["sites"][0], TOY["sites"][0]])},
        "line",
        ["p.yaml: sites:", "unique"],
    ),
    # the line named the preset as the file, not the plan file and its field
    "plan unknown start fleet": (
        ["plan", "{d}/p.yaml"],
        {"p.yaml": _plan(start_fleet={"preset": "nope", "site": "a"})},
        "line",
        ["p.yaml: start_fleet.preset:", "'nope'", "not a preset"],
    ),
}


def _write(d: Path, files: dict[str, object]) -> None:
    for name, body in files.items():
        if isinstance(body, bytes):
            (d / name).write_bytes(body)
        elif isinstance(body, dict):
            (d / name).write_text(yaml.safe_dump(body))
        else:
            (d / name).write_text(str(body))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    calls = []
    for i, (args, files, _, _) in enumerate(CASES.values()):
        d = tmp_path_factory.mktemp(f"case{i}")
        _write(d, files)
        calls.append(([a.replace("{d}", str(d)) for a in args], d))
    return dict(zip(CASES, cortex_batch(calls), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line(runs: dict[str, Run], case: str) -> None:
    proc = runs[case]
    _, _, kind, says = CASES[case]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    if kind == "line":
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
    else:
        assert lines[0].startswith("Usage: cortex"), lines
    for s in says:
        assert s in proc.stderr, (s, proc.stderr)
    assert proc.stdout == "", proc.stdout


# ---- output paths: refused before the run, nothing written --------------------------------
# An unwritable --json or --html was found after the whole run (40 s for a cortex-2024 month),
# after the summary was printed and, with both given, after the JSON was written.
@pytest.mark.parametrize(
    ("cmd", "outputs"),
    [
        (["sim", "--fleet", "tiny", "--days", "0.02", "--quiet"], ("--json", "--html")),
        (["sim", "--fleet", "tiny", "--days", "0.02", "--quiet"], ("--json", "--html-static")),
        (["plan", "{plan}", "--no-scenarios", "--no-inhouse-cost"], ("--json", "--html")),
        (
            [
                "power",
                "swing",
                "--gpus",
                "64",
                "--flavor",
                "H100-SXM5",
                "--iteration-s",
                "8",
                "--comm-fraction",
                "0.3",
            ],
            ("--json", "--plot"),
        ),
    ],
)
def test_an_unwritable_output_is_refused_before_anything_runs(
    tmp_path: Path, cmd: list[str], outputs: tuple[str, str]
) -> None:
    plan = tmp_path / "p.yaml"
    plan.write_text(yaml.safe_dump(TOY))
    (tmp_path / "a-file").write_text("")
    good = tmp_path / "out" / "r.json"
    args = [a.replace("{plan}", str(plan)) for a in cmd]
    bad = {
        "a directory": str(tmp_path),
        "below a file": str(tmp_path / "a-file" / "r.html"),
    }
    calls = [([*args, outputs[0], str(good), outputs[1], b], tmp_path) for b in bad.values()]
    for (why, path), proc in zip(bad.items(), cortex_batch(calls), strict=True):
        assert proc.returncode == 2, (why, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: {outputs[1]}: "), lines
        assert "not a directory" in lines[0].lower() or "is a directory" in lines[0].lower(), lines
        assert proc.stdout == "", (why, proc.stdout)
        assert not good.exists(), why


def test_plan_help_says_what_html_and_scenarios_do() -> None:
    # --html also ran the frontier and the tornado (more solves) while their help said
    # "default: no-frontier"; --scenarios said "two-stage", which docs/planner.md says it is not.
    (proc,) = cortex_batch([(["plan", "--help"], Path.cwd())])
    text = " ".join(proc.stdout.split())
    assert "also runs --frontier and --tornado" in text
    assert "(on with --html)" in text
    assert "two-stage" not in text and "fix and recourse" in text


def test_csv_files_saved_with_a_utf8_bom_are_read(tmp_path: Path) -> None:
    # A spreadsheet's "CSV UTF-8" export starts with a byte-order mark, and its first column
    # was not found: "row 1: submit_time_s: required column missing" with the column there.
    bom = "\ufeff"
    (tmp_path / "t.csv").write_text(bom + "submit_time_s,num_gpus,duration_s\n0,8,600\n")
    (tmp_path / "f.csv").write_text(bom + JOBS_HDR + "A,user,research,1,60,600\n")
    calls = [
        ([*SIM, "--trace", str(tmp_path / "t.csv"), "--power-policy", "off"], tmp_path),
        ([*SIM, "--failure-data", str(tmp_path / "f.csv"), "--power-policy", "off"], tmp_path),
    ]
    for proc in cortex_batch(calls):
        assert proc.returncode == 0, proc.stderr


def test_no_plan_within_the_time_limit_is_an_error_not_a_table_of_zeros(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With `time_limit_s: 0.01` the example printed a plan of zeros ("Time limit reached ...
    # within $nanM of the bound", "not met 500 MW within 18 months: 0.0 MW") and exited 0:
    # HiGHS had no solution and the read-back filled in zeros. The solver's answer is faked
    # here (a real one depends on the machine's speed).
    import dataclasses
    import math

    from typer.testing import CliRunner

    import cortex.cli.plan as cli_plan
    from cortex.cli.main import app
    from cortex.errors import InputError

    real = cli_plan.solve

    def no_solution(inp: object, **kw: object) -> object:
        res = real(inp, **kw)  # type: ignore[arg-type]
        return dataclasses.replace(res, status="Time limit reached", objective=math.inf)

    monkeypatch.setattr(cli_plan, "solve", no_solution)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(TOY))
    r = CliRunner().invoke(app, ["plan", str(p), "--no-scenarios", "--no-inhouse-cost"])
    assert isinstance(r.exception, InputError), r.output
    assert (r.exception.source, r.exception.field) == (str(p), "time_limit_s")
    assert "no plan" in r.exception.reason and "Time limit reached" in r.exception.reason
    assert "quarter" not in r.output  # no table
