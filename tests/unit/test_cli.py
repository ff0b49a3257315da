"""The `cortex` command, run as a user runs it: in a subprocess, with warnings as errors.

Bad input must exit with code 2 and print exactly one line on stderr that names the file (or
option) and the field, never a traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from cortex.fleet.spec import PRESETS

REPORT_KEYS = (
    "fleet",
    "jobs",
    "utilization",
    "goodput",
    "interruptions",
    "energy_mwh",
    "peak_facility_mw",
    "wall_s",
    "events",
)
NONDETERMINISTIC = ("wall_s", "timing")


from clikit import Run, cortex, cortex_batch  # noqa: E402


def _ok(proc: Run) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


# ---- entry point and `fleet` -----------------------------------------------------------------
def test_console_script_points_at_main() -> None:
    (ep,) = entry_points(group="console_scripts", name="cortex")
    assert ep.value == "cortex.cli.main:main"


def test_fleet_show_cortex_2024_json() -> None:
    proc = cortex("fleet", "show", "cortex-2024", "--json")
    _ok(proc)
    s = json.loads(proc.stdout)
    assert s["name"] == "cortex-2024"
    assert s["gpus"] == 100_000
    assert s["nodes"] == 12_500
    assert s["gpus_by_flavor"] == {"H100-SXM5": 50_000, "H200-SXM": 50_000}
    assert s["peak_facility_mw"] > 0
    assert s["busy_facility_mw"] <= s["peak_facility_mw"]
    assert len(s["halls"]) == 4


def test_fleet_list_names_every_preset() -> None:
    proc = cortex("fleet", "list")
    _ok(proc)
    assert proc.stdout.split() == list(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_fleet_show_each_preset(preset: str, batch: dict[str, Run]) -> None:
    as_json, table = batch[f"show-json-{preset}"], batch[f"show-{preset}"]
    _ok(as_json)
    s = json.loads(as_json.stdout)
    assert s["name"] == preset
    assert s["gpus"] == sum(s["gpus_by_flavor"].values()) > 0
    assert s["nodes"] > 0 and s["pods"] > 0 and s["racks"] > 0
    assert s["peak_facility_mw"] > 0
    _ok(table)
    assert preset in table.stdout and f"{s['gpus']:,}" in table.stdout


# ---- `sim` -----------------------------------------------------------------------------------
def test_sim_writes_a_json_report_with_the_required_keys(tmp_path: Path) -> None:
    proc = cortex(
        "sim", "--fleet", "tiny", "--days", "1", "--workload", "synthetic", "--quiet",
        "--json", "out.json", cwd=tmp_path,
    )  # fmt: skip
    _ok(proc)
    assert "tiny" in proc.stdout  # the summary table
    r = json.loads((tmp_path / "out.json").read_text())
    for key in REPORT_KEYS:
        assert key in r, key
    assert r["fleet"]["gpus"] == 64 and r["fleet"]["nodes"] == 8
    jobs = r["jobs"]
    assert jobs["submitted"] >= jobs["completed"] >= 0
    assert set(jobs["jct_s"]) >= {"mean", "p50", "p99"}
    assert set(r["utilization"]) >= {"allocated", "productive"}
    assert 0.0 <= r["utilization"]["productive"] <= r["utilization"]["allocated"] <= 1.0
    # Goodput is productive over allocated GPU-hours (6 significant digits each in the report);
    # the parts of the allocated total are checked in tests/unit/test_report_accounting.py.
    gh = r["gpu_hours"]
    assert gh["allocated"] > 0
    assert r["goodput"] == pytest.approx(gh["productive"] / gh["allocated"], rel=1e-5)
    assert isinstance(r["interruptions"]["unexpected"], int)
    assert isinstance(r["interruptions"]["by_cause"], dict)
    assert r["energy_mwh"] > 0 and r["peak_facility_mw"] > 0
    assert r["events"] > 0 and r["wall_s"] >= 0
    assert r["config"]["days"] == 1 and r["config"]["workload"] == "synthetic"
    assert r["config"]["load"] == 0.85 and r["config"]["load_basis"] == "gpus"


def test_sim_writes_a_self_contained_html_page(tmp_path: Path) -> None:
    proc = cortex(
        "sim", "--fleet", "tiny", "--days", "1", "--quiet", "--html-static", "out.html",
        cwd=tmp_path,
    )  # fmt: skip
    _ok(proc)
    page = (tmp_path / "out.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "tiny" in page
    imgs = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert imgs and all(src.startswith("data:image/") for src in imgs)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page


def _sim_json(tmp_path: Path, name: str, seed: int) -> dict[str, Any]:
    proc = cortex(
        "sim", "--fleet", "philly-48x4", "--days", "2", "--seed", str(seed), "--load", "1.5",
        "--failure-scale", "50", "--quiet", "--json", name, cwd=tmp_path,
    )  # fmt: skip
    _ok(proc)
    return json.loads((tmp_path / name).read_text())


def test_same_seed_gives_byte_identical_json(tmp_path: Path) -> None:
    a = _sim_json(tmp_path, "a.json", 3)
    b = _sim_json(tmp_path, "b.json", 3)
    for r in (a, b):
        for key in NONDETERMINISTIC:
            r.pop(key)
    assert a["jobs"]["completed"] > 0 and a["interruptions"]["unexpected"] > 0
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# ---- bad input -------------------------------------------------------------------------------
def _field(*parts: str | int) -> str:
    """A regex for a dotted field path; list indices may be written `.0` or `[0]`."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += rf"(\.{p}|\[{p}\])"
        else:
            out += ("." if out else "") + re.escape(p)
    return out


GROUP = "halls:\n  - name: h\n    groups:\n      - {{flavor: {flavor}, nodes: {nodes}}}\n"
GOOD_HALLS = GROUP.format(flavor="H100-SXM5", nodes=4)
NODES = _field("halls", 0, "groups", 0, "nodes")
JOB = "name: a\nteam: fsd\ngpus: 8\nduration_s: 600\n"
TRACE_HEADER = "submit_time_s,num_gpus,duration_s\n"

# (id, --option, file name, file text, regexes the one stderr line must match)
JOB_FAILURES = "cause,category,applies_to,share,detect_s,recover_s\n"
BAD_FILES = [
    (
        "failure-data-shares", "--failure-data", "jf.csv",
        JOB_FAILURES + "a,user,research,0.5,60,600\nb,software,research,0.3,60,600\n",
        ["^error: jf.csv: share: ", "research", r"\b0\.8\b"],
    ),
    (
        "failure-data-negative", "--failure-data", "jf.csv",
        JOB_FAILURES + "a,user,research,1,-60,600\n", ["^error: jf.csv: row 2: detect_s: "],
    ),
    (
        "fleet-unknown-flavor", "--fleet", "fleet.yaml",
        "name: x\n" + GROUP.format(flavor="Z9000", nodes=4),
        [_field("halls", 0, "groups", 0, "flavor"), "Z9000"],
    ),
    (
        "fleet-negative-nodes", "--fleet", "fleet.yaml",
        "name: x\n" + GROUP.format(flavor="H100-SXM5", nodes=-4), [NODES],
    ),
    ("fleet-missing-halls", "--fleet", "fleet.yaml", "name: x\n", [r"\bhalls\b"]),
    (
        "fleet-wrong-type", "--fleet", "fleet.yaml",
        "name: x\n" + GROUP.format(flavor="H100-SXM5", nodes="many"), [NODES],
    ),
    (
        "fleet-unknown-field", "--fleet", "fleet.yaml",
        "name: x\ncolour: blue\n" + GOOD_HALLS, [r"\bcolour\b"],
    ),
    ("job-zero-gpus", "--workload", "jobs.yaml", JOB.replace("gpus: 8", "gpus: 0"), [r"\bgpus\b"]),
    (
        "job-negative-gpus", "--workload", "jobs.yaml",
        JOB.replace("gpus: 8", "gpus: -4"), [r"\bgpus\b"],
    ),
    ("job-missing-team", "--workload", "jobs.yaml", JOB.replace("team: fsd\n", ""), [r"\bteam\b"]),
    (
        "job-wrong-type", "--workload", "jobs.yaml",
        JOB.replace("gpus: 8", "gpus: eight"), [r"\bgpus\b"],
    ),
    (
        "job-unknown-flavor", "--workload", "jobs.yaml",
        JOB + "flavors: [Z9000]\n", [r"\bflavors\b", "Z9000"],
    ),
    (
        "job-gang-too-large", "--workload", "jobs.yaml",
        "jobs:\n  - {name: a, team: fsd, gpus: 8, duration_s: 600}\n"
        "  - {name: b, team: fsd, gpus: 128, duration_s: 600}\n",
        [_field("jobs", 1, "gpus"), r"\b128\b"],
    ),
    (
        "trace-missing-column", "--workload", "trace.csv",
        "submit_time_s,duration_s\n0,600\n", [r"\bnum_gpus\b"],
    ),
    (
        "trace-zero-gpus", "--workload", "trace.csv",
        TRACE_HEADER + "0,8,600\n5,0,600\n", [r"\brow 3\b", r"\bnum_gpus\b"],
    ),
    (
        "trace-non-numeric-duration", "--trace", "trace.csv",
        TRACE_HEADER + "0,8,ten\n", [r"\brow 2\b", r"\bduration_s\b", "ten"],
    ),
    (
        "fleet-bool-nodes", "--fleet", "fleet.yaml",
        "name: x\n" + GROUP.format(flavor="H100-SXM5", nodes="true"), [NODES],
    ),
    (
        "job-bool-gpus", "--workload", "jobs.yaml",
        JOB.replace("gpus: 8", "gpus: true"), [r"\bgpus\b"],
    ),
]  # fmt: skip
KNOWN_BUGS: dict[str, str] = {}  # case id -> reason, for a strict xfail


def _one_line_error(proc: subprocess.CompletedProcess[str], patterns: list[str]) -> str:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for pat in patterns:
        assert re.search(pat, lines[0]), (pat, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("case_id", "name", "patterns"),
    [
        pytest.param(
            c[0],
            c[2],
            c[4],
            id=c[0],
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c[0]])]
            if c[0] in KNOWN_BUGS
            else [],
        )
        for c in BAD_FILES
    ],
)
def test_bad_file_exits_2_with_one_line_naming_file_and_field(
    batch: dict[str, Run], case_id: str, name: str, patterns: list[str]
) -> None:
    _one_line_error(batch[case_id], [re.escape(name), *patterns])


def test_bad_fleet_file_in_a_fresh_process(tmp_path: Path) -> None:
    # The batch runs commands in one interpreter; this checks one case end to end.
    (tmp_path / "fleet.yaml").write_text("name: x\n" + GROUP.format(flavor="H100-SXM5", nodes=0))
    _one_line_error(cortex("fleet", "show", "fleet.yaml", cwd=tmp_path), [r"fleet\.yaml", NODES])


SIM = ["sim", "--days", "1", "--quiet"]
# (id, args, regexes the one stderr line must match)
BAD_OPTIONS = [
    (
        "quarantine-no-failures", [*SIM, "--fleet", "tiny", "--quarantine", "--no-failures"],
        ["--quarantine", "needs failures"],
    ),
    ("unknown-preset", [*SIM, "--fleet", "no-such-preset"], ["no-such-preset", "preset"]),
    ("show-unknown-preset", ["fleet", "show", "no-such-preset"], ["no-such-preset", "preset"]),
    (
        "single-0", [*SIM, "--fleet", "tiny", "--workload", "single:0"],
        ["--workload", r"\bsingle\b"],
    ),
    (
        "single-nan", [*SIM, "--fleet", "tiny", "--workload", "single:many"],
        ["--workload", r"\bsingle\b"],
    ),
    (
        "single-huge", [*SIM, "--fleet", "tiny", "--workload", "single:128"],
        ["--workload", r"\bgpus\b", r"\b128\b"],
    ),
    ("unknown-policy", [*SIM, "--fleet", "tiny", "--policy", "bogus"], ["--policy", "bogus"]),
    # a trace or a job file has no distribution to draw a steady state from
    (
        "warm-start-trace", [*SIM, "--fleet", "tiny", "--trace", "t.csv", "--warm-start"],
        ["^error: --warm-start: warm_start: ", "--trace t.csv"],
    ),
    (
        "warm-start-single", [*SIM, "--fleet", "tiny", "--workload", "single:8", "--warm-start"],
        ["^error: --warm-start: warm_start: ", "single:8"],
    ),
    # --load-basis: one of three words, and only for the synthetic workload
    (
        "load-basis-unknown", [*SIM, "--fleet", "tiny", "--load-basis", "h100"],
        ["^error: --load-basis: load_basis: ", "'h100'", "expected auto, gpus or capacity"],
    ),
    (
        "load-basis-trace", [*SIM, "--fleet", "tiny", "--trace", "t.csv", "--load-basis", "gpus"],
        ["^error: --load-basis: load_basis: ", "--trace t.csv"],
    ),
    # unwritable report paths (the batch folder holds a folder `a-dir` and a file `a-file`)
    ("json-is-a-folder", [*SIM, "--fleet", "tiny", "--json", "a-dir"], ["a-dir", "--json"]),
    (
        "html-under-a-file", [*SIM, "--fleet", "tiny", "--html", "a-file/r.html"],
        ["a-file/r.html", "--html"],
    ),
]  # fmt: skip
USAGE_ERRORS = [
    ("days-below-min", ["sim", "--days", "0", "--quiet"]),
    ("unknown-option", ["sim", "--no-such-option"]),
    ("missing-argument", ["fleet", "show"]),
    ("unknown-command", ["fleet", "frobnicate"]),
    ("bare-command", []),
]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every table case of this file, by id, run in one fresh process."""
    cases: list[tuple[str, list[str], Path]] = []
    d = tmp_path_factory.mktemp("batch")
    (d / "a-dir").mkdir()
    (d / "a-file").write_text("")
    for p in PRESETS:
        cases += [(f"show-json-{p}", ["fleet", "show", p, "--json"], d)]
        cases += [(f"show-{p}", ["fleet", "show", p], d)]
    for case_id, option, name, text, _ in BAD_FILES:
        folder = tmp_path_factory.mktemp(case_id)
        (folder / name).write_text(text)
        fleet = [] if option == "--fleet" else ["--fleet", "tiny"]
        cases.append((case_id, ["sim", *fleet, option, name, "--days", "1", "--quiet"], folder))
    cases += [(case_id, args, d) for case_id, args, _ in BAD_OPTIONS]
    cases += [(case_id, args, d) for case_id, args in USAGE_ERRORS]
    runs = cortex_batch([(args, cwd) for _, args, cwd in cases])
    return {case_id: run for (case_id, _, _), run in zip(cases, runs, strict=True)}


@pytest.mark.parametrize(
    ("case_id", "patterns"),
    [(c[0], c[2]) for c in BAD_OPTIONS],
    ids=[c[0] for c in BAD_OPTIONS],
)
def test_bad_option_exits_2_with_one_line(
    batch: dict[str, Run], case_id: str, patterns: list[str]
) -> None:
    _one_line_error(batch[case_id], patterns)


@pytest.mark.parametrize("case_id", [c[0] for c in USAGE_ERRORS[:-1]])
def test_usage_errors_exit_2_without_traceback(batch: dict[str, Run], case_id: str) -> None:
    proc = batch[case_id]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2
    assert "Usage" in proc.stderr or "Error" in proc.stderr, proc.stderr


def test_usage_error_in_a_fresh_process(tmp_path: Path) -> None:
    proc = cortex("sim", "--days", "0", "--quiet", cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2
    assert "days" in proc.stderr


def test_bare_command_prints_help_without_traceback(batch: dict[str, Run]) -> None:
    proc = batch["bare-command"]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 2)
    assert "sim" in proc.stdout + proc.stderr and "fleet" in proc.stdout + proc.stderr


def test_report_paths_get_their_folders_created(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir"
    proc = cortex(
        "sim", "--fleet", "tiny", "--days", "0.1", "--quiet",
        "--json", out / "r.json", "--html", out / "r.html",
    )  # fmt: skip
    _ok(proc)
    assert json.loads((out / "r.json").read_text())["fleet"]["name"] == "tiny"
    assert (out / "r.html").read_text().lower().startswith("<!doctype html>")
