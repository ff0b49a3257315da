"""bench/mutation.py, the mutation-testing command: a run that cannot start says so in one line
and exits 2, and never prints a kill rate it did not measure. Each case runs a copy of the
script in a scratch project (its own pyproject.toml, src/ and a stand-in `mutmut` package), so
no real mutation run starts."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "mutation.py"

# A stand-in for mutmut: `run` fails the way mutmut does when the clean tests fail, and
# `results` lists an old run's verdicts, so a wrapper that ignored the failure would print
# a rate from them.
FAKE_MUTMUT = """
import sys
if sys.argv[1] == "run":
    print("failed to collect stats. runner returned 1")
    raise SystemExit(1)
if sys.argv[1] == "results":
    print("    cortex.mod.x_f__mutmut_1: killed")
    print("    cortex.mod.x_f__mutmut_2: survived")
"""

CONFIG = """
[tool.mutmut]
only_mutate = ["src/cortex/mod.py"]
pytest_add_cli_args_test_selection = ["tests/test_mod.py"]
"""


def _project(tmp_path: Path, *, config: str = CONFIG, fake_mutmut: bool = True) -> Path:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "mutation.py").write_text(SCRIPT.read_text())
    (tmp_path / "pyproject.toml").write_text(config)
    (tmp_path / "src" / "cortex").mkdir(parents=True)
    (tmp_path / "src" / "cortex" / "mod.py").write_text("def f(x):\n    return x + 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mod.py").write_text("")
    if fake_mutmut:
        (tmp_path / "fake" / "mutmut").mkdir(parents=True)
        (tmp_path / "fake" / "mutmut" / "__init__.py").write_text("")
        (tmp_path / "fake" / "mutmut" / "__main__.py").write_text(FAKE_MUTMUT)
    return tmp_path


def _run(root: Path, *args: str, isolated: bool = False) -> subprocess.CompletedProcess[str]:
    # -S leaves site-packages out, so a real mutmut is not importable: only the stand-in is.
    cmd = [sys.executable, "-S", str(root / "bench" / "mutation.py"), *args]
    env = {"PYTHONPATH": "" if isolated else str(root / "fake"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _one_error_line(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: mutation: "), r.stderr
    for needle in needles:
        assert needle in lines[0]
    assert "kill rate" not in r.stdout and "%" not in r.stdout


def test_the_tool_missing_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = _run(_project(tmp_path, fake_mutmut=False), "--report-only", isolated=True)
    _one_error_line(r, "mutmut is not installed")


def test_a_file_to_mutate_that_does_not_parse_is_named(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "src" / "cortex" / "mod.py").write_text("def f(:\n")
    _one_error_line(_run(root, "--only", "cortex.mod"), "src/cortex/mod.py: cannot parse")


def test_a_missing_configuration_is_named(tmp_path: Path) -> None:
    root = _project(tmp_path, config="[tool.other]\n")
    _one_error_line(_run(root, "--only", "cortex.mod"), "pyproject.toml: [tool.mutmut]")


def test_a_selected_test_file_that_is_gone_is_named(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "tests" / "test_mod.py").unlink()
    _one_error_line(
        _run(root, "--only", "cortex.mod"),
        "pytest_add_cli_args_test_selection: tests/test_mod.py: no such file",
    )


def test_an_unknown_module_is_named(tmp_path: Path) -> None:
    r = _run(_project(tmp_path), "--only", "cortex.nosuch")
    _one_error_line(r, "--only: cortex.nosuch: no such module")


def test_a_failed_mutmut_run_reports_no_rate_from_older_results(tmp_path: Path) -> None:
    r = _run(_project(tmp_path), "--only", "cortex.mod")
    _one_error_line(r, "mutmut run exited 1", "failed to collect stats")
    assert not (tmp_path / "bench" / "out" / "mutation.json").exists()


def test_the_report_of_a_finished_run_counts_only_what_ran(tmp_path: Path) -> None:
    # The stand-in's results: 1 killed, 1 survived -> 1 / (1 + 1) = 50.0%.
    r = _run(_project(tmp_path), "--only", "cortex.mod", "--report-only")
    assert r.returncode == 0, r.stderr
    assert "| cortex.mod | 1 | 1 | 0 | 0 | 0 | 50.0% |" in r.stdout


def test_an_isolation_mutant_whose_code_moved_stops_the_run(tmp_path: Path) -> None:
    # The scratch project has none of the API files the isolation mutants patch.
    r = _run(_project(tmp_path), "--isolation")
    _one_error_line(r, "isolation mutant", "No such file")


def test_the_isolation_mutants_match_the_code_once() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import mutation
    finally:
        sys.path.remove(str(REPO / "bench"))
    for name, rel, old, new in mutation.ISOLATION_MUTANTS:
        assert (REPO / rel).read_text().count(old) == 1, name
        assert old != new


# Unit-test files that import a mutated module but stay out of mutmut's selection, and why.
NOT_SELECTED = {
    "tests/unit/test_hetero_lp.py": "hetero_lp.py is configured but outside the core run",
    "tests/unit/test_intake.py": "drive/intake.py; reaches the scheduler only through the twin",
    "tests/unit/test_run_rules.py": "drive/runs.py; uses JobState names only",
    "tests/unit/test_twin.py": "whole twin runs: slow per mutant; the scenarios cover the cycle",
    "tests/unit/test_frozen_views.py": "whole twin runs under the views' write guard: slow per "
    "mutant, and a mutmut mutant changes a value, not whether a view is written",
    "tests/unit/test_spares.py": "sim/spares.py; uses ClusterState as the twin does",
    "tests/unit/test_mirror_devices.py": "control/mirror.py; builds a QueueConfig to exist",
    "tests/unit/test_twin_estimate.py": "sim/twin.py's estimate cache; imports the scheduler's "
    "alloc_size only to compute what it expects",
    "tests/unit/test_exact_cuts_differential.py": "whole twin runs, each twice (the cuts and "
    "their plain rules): slow per mutant; test_cycle_hand_over*.py and test_walk_skip.py select",
    "tests/unit/test_estimate_accuracy.py": "control/estimate_accuracy.py's forward twin runs; "
    "imports the scheduler's alloc_size only to compute what it expects",
    "tests/unit/test_twin_start_reference.py": "sim/twin.py's _start against its old form: "
    "whole twin runs, slow per mutant; imports the scheduler's Start only to build starts",
    "tests/unit/test_twin_instant_reference.py": "sim/twin.py's and sim/runs.py's per-instant "
    "and per-start paths against their old forms: whole twin runs, slow per mutant; imports the "
    "scheduler's schedule, Snapshot and Placement only for the old methods kept verbatim",
    "tests/unit/test_place_memo_twin.py": "Capacity.placed in whole twin runs, each twice (kept "
    "and not): slow per mutant; test_cycle_place_memo.py selects",
    "tests/unit/test_superseded_finishes.py": "sim/twin.py's and sim/engine.py's dropped "
    "finishes in whole twin runs, each twice: slow per mutant; uses JobState only for the "
    "old handler's test",
}


@pytest.mark.parametrize(
    "test_file",
    sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "tests" / "unit").glob("test_*.py")
        if any(
            f"from {m}" in p.read_text() or f"import {m}" in p.read_text()
            for m in ("cortex.scheduler", "cortex.control.auth", "cortex.workload.states")
        )
    ),
)
def test_every_unit_test_of_a_mutated_module_is_in_the_selection(test_file: str) -> None:
    """A mutant that a test reaches must not be reported as reached by no test: the unit
    tests of the mutated modules are in mutmut's selection unless listed above with a reason."""
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    selected = set(cfg["pytest_add_cli_args_test_selection"])
    assert test_file in selected or test_file in NOT_SELECTED


def test_a_baseline_keeps_its_kills_and_takes_this_runs_other_verdicts(tmp_path: Path) -> None:
    root = _project(tmp_path)
    # The earlier run killed both; this run's results (the stand-in's) say _1 killed and _2
    # survived. The baseline's kill of _2 stands: 2 / 2 = 100.0%.
    base = root / "base.txt"
    base.write_text("    cortex.mod.x_f__mutmut_1: killed\n    cortex.mod.x_f__mutmut_2: killed\n")
    r = _run(root, "--only", "cortex.mod", "--baseline", str(base), "--report-only")
    assert r.returncode == 0, r.stderr
    assert "| cortex.mod | 2 | 0 | 0 | 0 | 0 | 100.0% |" in r.stdout
    # Survivors of the baseline keep this run's verdict: 1 killed, 1 survived -> 50.0%.
    lines = [f"    cortex.mod.x_f__mutmut_{i}: survived" for i in (1, 2)]
    base.write_text("\n".join(lines) + "\n")
    r = _run(root, "--only", "cortex.mod", "--baseline", str(base), "--report-only")
    assert "| cortex.mod | 1 | 1 | 0 | 0 | 0 | 50.0% |" in r.stdout


def test_a_baseline_of_other_source_or_missing_is_refused(tmp_path: Path) -> None:
    root = _project(tmp_path)
    base = root / "base.txt"
    base.write_text("    cortex.mod.x_f__mutmut_1: killed\n    cortex.mod.x_g__mutmut_1: killed\n")
    r = _run(root, "--only", "cortex.mod", "--baseline", str(base), "--report-only")
    _one_error_line(r, "--baseline: mutants differ from this source's")
    r = _run(root, "--only", "cortex.mod", "--baseline", str(root / "nope.txt"), "--report-only")
    _one_error_line(r, "--baseline:", "nope.txt")
    base.write_text("    cortex.other.x_f__mutmut_1: killed\n")
    r = _run(root, "--only", "cortex.mod", "--baseline", str(base), "--report-only")
    _one_error_line(r, "no verdicts for the selected modules")


def test_baselines_combine_a_kill_in_any_of_them_stands(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first, second = root / "a.txt", root / "b.txt"
    # _2 killed in the first baseline only; _1 killed in neither, so this run's verdict
    # (the stand-in's: killed) counts: 2 killed of 2 = 100.0%.
    first.write_text(
        "    cortex.mod.x_f__mutmut_1: survived\n    cortex.mod.x_f__mutmut_2: killed\n"
    )
    second.write_text(
        "    cortex.mod.x_f__mutmut_1: survived\n    cortex.mod.x_f__mutmut_2: survived\n"
    )
    args = ["--only", "cortex.mod", "--report-only", "--baseline", str(first)]
    r = _run(root, *args, "--baseline", str(second))
    assert "| cortex.mod | 2 | 0 | 0 | 0 | 0 | 100.0% |" in r.stdout, r.stdout
    second.write_text("    cortex.mod.x_f__mutmut_1: survived\n")
    _one_error_line(_run(root, *args, "--baseline", str(second)), "not the mutants of the other")
