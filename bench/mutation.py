"""Mutation testing of the scheduler core and the isolation rules: one command, a kill-rate
report, never a CI gate (docs/testing.md).

    python bench/mutation.py                 # the core modules (about 2,000 mutants)
    python bench/mutation.py --only cortex.scheduler.victims
    python bench/mutation.py --report-only   # re-read the last run's results
    python bench/mutation.py --isolation     # hand-written mutants of the API's team filters

The first three wrap `mutmut` (configured in pyproject.toml, [tool.mutmut]): mutmut copies
src/ to mutants/, runs the fast tests once to learn which reach each function, then runs each
mutant under those tests only. The run is niced; on a shared 2-core machine the core takes
30-60 minutes. `--isolation` is hand-written because the filters live in FastAPI routes that
only a live server exercises end to end: each mutant is applied to a copy of src/ that a real
`cortex serve` imports (PYTHONPATH), and tests/control/test_isolation.py must fail.

Mutants listed in bench/mutation_equivalent.txt (name, then the reason they cannot be told
apart from the original) are reported apart. A kill rate is printed only over mutants that
were run; "not checked" ones are counted and named, never guessed.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "bench" / "mutation_equivalent.txt"
OUT = ROOT / "bench" / "out" / "mutation.json"
# The scheduler core and the isolation rules; power.py (the power policies) and the rest of
# the store are in the mutmut configuration but outside the default run.
CORE = [
    "cortex.scheduler.victims",
    "cortex.scheduler.preemption",
    "cortex.scheduler.statement",
    "cortex.scheduler.cycle",
    "cortex.scheduler.placement",
    "cortex.scheduler.admission",
    "cortex.scheduler.ordering",
    "cortex.scheduler.state",
    "cortex.scheduler.queues",
    "cortex.scheduler.pending",
    "cortex.scheduler.registry",
    "cortex.workload.states",
    "cortex.control.auth",
    "cortex.control.store.x_visible_job",
]
MUTMUT = [sys.executable, "-m", "mutmut"]
KILLED = {"killed", "timeout", "caught by type check"}
# (name, file, original, mutant): each removes or weakens one team filter.
ISOLATION_MUTANTS = [
    ("list_jobs: no team filter", "src/cortex/control/api/jobs.py",
     "    if not who.admin:\n        if team is not None and team != who.team:  # as /v1/queue, "
     "/v1/share, /v1/goodput\n            raise HTTPException(404, f\"team {team} not found\")\n"
     "        team = who.team\n", ""),
    ("list_jobs: ?team= of another team honoured", "src/cortex/control/api/jobs.py",
     "        if team is not None and team != who.team:  # as /v1/queue, /v1/share, /v1/goodput\n"
     "            raise HTTPException(404, f\"team {team} not found\")\n        team = who.team",
     "        team = team if team is not None else who.team"),
    ("visible_job: no team check", "src/cortex/control/store.py",
     "if job is None or (not who.admin and job.team != who.team):", "if job is None:"),
    ("list_queues: every queue", "src/cortex/control/api/admin.py",
     "if who.admin or q.name == who.team", ""),
    ("list_events: no team filter", "src/cortex/control/api/cluster.py",
     "    team = None if who.admin else who.team\n", "    team = None\n"),
]  # fmt: skip


def _fail(msg: str) -> None:
    print(f"error: mutation: {msg}", file=sys.stderr)
    raise SystemExit(2)


def _config() -> dict:
    try:
        return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
        _fail(f"pyproject.toml: [tool.mutmut]: {err}")
        raise  # unreachable; for the type checker


def _preflight(cfg: dict, patterns: list[str]) -> None:
    """mutmut importable, every file it will mutate parseable, every selected test file and
    every --only module present: else one line and exit 2."""
    if importlib.util.find_spec("mutmut") is None:
        _fail("mutmut is not installed (pip install mutmut==3.8.1)")
    for test in cfg.get("pytest_add_cli_args_test_selection", []):
        if not (ROOT / test).exists():
            _fail(f"pyproject.toml: pytest_add_cli_args_test_selection: {test}: no such file")
    for p in patterns:
        if _source_of(p) is None:
            _fail(f"--only: {p}: no such module under src/")
    for pattern in cfg.get("only_mutate", []):
        files = sorted(ROOT.glob(pattern)) if "*" in pattern else [ROOT / pattern]
        for f in files:
            if f.suffix != ".py":
                continue
            try:
                ast.parse(f.read_text(), str(f))
            except (OSError, SyntaxError, ValueError) as err:
                _fail(f"{f.relative_to(ROOT)}: cannot parse: {err}")


def _source_of(pattern: str) -> Path | None:
    """The source file a module prefix names (cortex.control.store.x_visible_job is in
    src/cortex/control/store.py), or None."""
    parts = pattern.rstrip("*").split(".")
    while parts:
        f = ROOT / "src" / Path(*parts).with_suffix(".py")
        if f.is_file():
            return f
        parts.pop()
    return None


def _glob(pattern: str) -> str:
    """mutmut's name pattern for a module (its mutants only: cortex.scheduler.state is not
    cortex.scheduler.statement) or for one function (cortex.control.store.x_visible_job)."""
    if pattern.endswith("*"):
        return pattern
    module_file = ROOT / "src" / Path(*pattern.split(".")).with_suffix(".py")
    return pattern + (".*" if module_file.is_file() else "__mutmut_*")


def _selected(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, _glob(p)) for p in patterns)


def _run_mutmut(patterns: list[str], children: int, names: list[str] | None = None) -> None:
    cmd = ["nice", "-n", "10", *MUTMUT, "run", "--max-children", str(children)]
    cmd += names if names is not None else [_glob(p) for p in patterns]
    print("running:", " ".join(cmd[:8]), "..." if len(cmd) > 8 else "", flush=True)
    # mutmut's progress line is noise on a terminal; it goes to a log, and the verdicts are
    # read back from mutmut's own files.
    OUT.parent.mkdir(parents=True, exist_ok=True)
    log = OUT.parent / "mutmut-run.log"
    with log.open("w") as fh:
        rc = subprocess.run(cmd, cwd=ROOT, check=False, stdout=fh, stderr=subprocess.STDOUT)
    if rc.returncode != 0:
        # The clean run or the stats run failed: the results on disk are an older run's.
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        last = lines[-1][-200:] if lines else "no output"
        _fail(f"mutmut run exited {rc.returncode} ({last}); see {log.relative_to(ROOT)}")


def _statuses() -> dict[str, str]:
    out = subprocess.run(
        [*MUTMUT, "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        _fail(f"mutmut results: {out.stderr.strip()[-300:]}")
    got = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s+(\S+): (.+)$", line)
        if m:
            got[m.group(1)] = m.group(2).strip()
    return got


def _equivalent() -> dict[str, str]:
    """name -> reason, from lines `name  reason` (# comments and blank lines skipped)."""
    if not EQUIVALENT.exists():
        return {}
    out = {}
    for line in EQUIVALENT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            out[name] = reason.strip()
    return out


def _module(name: str) -> str:
    return name.split(".x", maxsplit=1)[0] if ".x" in name else name.rsplit(".", 1)[0]


def _read_baseline(path: Path, patterns: list[str]) -> dict[str, str]:
    """An earlier run's verdicts (`mutmut results --all true` output) of the selected modules."""
    try:
        text = path.read_text()
    except OSError as err:
        _fail(f"--baseline: {path}: {err.strerror}")
    got = {}
    for line in text.splitlines():
        m = re.match(r"\s+(\S+): (.+)$", line)
        if m and _selected(m.group(1), patterns):
            got[m.group(1)] = m.group(2).strip()
    if not got:
        _fail(f"--baseline: {path}: no verdicts for the selected modules")
    return got


def _merge_baseline(statuses: dict[str, str], base: dict[str, str], patterns: list[str]) -> dict:
    """A baseline killed verdict stands (tests were only added since); every other mutant
    takes this run's verdict if it ran, else keeps the baseline's. The baseline must be of the
    same source: the same mutants."""
    mine = {k for k in statuses if _selected(k, patterns)}
    if mine != set(base):
        extra = sorted(mine ^ set(base))[:3]
        _fail(f"--baseline: mutants differ from this source's (e.g. {', '.join(extra)})")
    # A mutant this run did not check keeps its baseline verdict (a survivor stays one: the
    # rate is never computed without it).
    return {
        k: base[k] if base[k] in KILLED or statuses[k] == "not checked" else statuses[k]
        for k in mine
    }


def report(patterns: list[str], statuses: dict[str, str] | None = None) -> dict:
    statuses = statuses if statuses is not None else _statuses()
    statuses = {k: v for k, v in statuses.items() if _selected(k, patterns)}
    equiv = _equivalent()
    rows = {}
    for mod in sorted({_module(k) for k in statuses}):
        mine = {k: v for k, v in statuses.items() if _module(k) == mod}
        c = Counter(mine.values())
        eq_survived = sum(1 for k, v in mine.items() if k in equiv and v == "survived")
        eq_tests = sum(1 for k, v in mine.items() if k in equiv and v == "no tests")
        known = KILLED | {"survived", "no tests", "not checked"}
        rows[mod] = {
            "killed": sum(c[s] for s in KILLED),
            "survived": c["survived"] - eq_survived,
            "no_tests": c["no tests"] - eq_tests,
            "equivalent": eq_survived + eq_tests,
            "not_checked": c["not checked"],
            "other": sum(n for s, n in c.items() if s not in known),
        }
    total = {k: sum(r[k] for r in rows.values()) for k in next(iter(rows.values()), {})}
    survivors = sorted(
        k for k, v in statuses.items() if v in ("survived", "no tests") and k not in equiv
    )
    reasons = {k: equiv[k] for k in sorted(statuses) if k in equiv}
    return {"modules": rows, "total": total, "survivors": survivors, "equivalent": reasons}


def _rate(r: dict) -> str:
    ran = r["killed"] + r["survived"] + r["no_tests"]
    if ran == 0:
        return "not measured"
    return f"{100 * r['killed'] / ran:.1f}%"


def print_report(rep: dict) -> None:
    if not rep["modules"]:
        print("no mutants of the selected modules have results: no kill rate to report")
        raise SystemExit(1)
    print("| module | killed | survived | no tests | equivalent | not run | kill rate |")
    print("|---|---|---|---|---|---|---|")
    for mod, r in [*rep["modules"].items(), ("**total**", rep["total"])]:
        print(f"| {mod} | {r['killed']} | {r['survived']} | {r['no_tests']} | {r['equivalent']}"
              f" | {r['not_checked'] + r['other']} | {_rate(r)} |")  # fmt: skip
    print("\nkill rate = killed / (killed + survived + no tests); reasoned equivalents excluded")
    if rep["survivors"]:
        print(f"\nsurvivors ({len(rep['survivors'])}): `mutmut show NAME` shows each")
        for name in rep["survivors"]:
            print("  " + name)


def isolation() -> int:
    """Each hand-written filter mutant must fail tests/control/test_isolation.py. A mutant
    whose original text is gone (the code moved) stops the run before anything runs."""
    for name, rel, old, _ in ISOLATION_MUTANTS:
        try:
            found = (ROOT / rel).read_text().count(old)
        except OSError as err:
            _fail(f"isolation mutant {name!r}: {rel}: {err.strerror}")
        if found != 1:
            _fail(f"isolation mutant {name!r}: {rel}: original text found {found} times, not once")
    killed = 0
    for name, rel, old, new in ISOLATION_MUTANTS:
        src = (ROOT / rel).read_text()
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(ROOT / "src", Path(tmp) / "src")
            (Path(tmp) / rel).write_text(src.replace(old, new))
            env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "src")}
            r = subprocess.run(
                ["nice", "-n", "10", sys.executable, "-m", "pytest", "-q", "-p",
                 "no:cacheprovider", "tests/control/test_isolation.py"],
                cwd=ROOT, env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
        failed = sum(1 for line in r.stdout.splitlines() if line.startswith("FAILED"))
        verdict = "killed" if r.returncode != 0 and failed else "SURVIVED"
        killed += verdict == "killed"
        print(f"{name}: {verdict} ({failed} tests failed)", flush=True)
    print(f"isolation mutants killed: {killed} of {len(ISOLATION_MUTANTS)}")
    return 0 if killed == len(ISOLATION_MUTANTS) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", action="append", help="module prefix (repeatable); default: core")
    ap.add_argument("--children", type=int, default=1, help="mutmut workers (default 1)")
    ap.add_argument("--report-only", action="store_true", help="read the last run's results")
    ap.add_argument("--isolation", action="store_true", help="the API filter mutants")
    ap.add_argument(
        "--baseline",
        type=Path,
        action="append",
        help="an earlier run's `mutmut results --all true` output, same source (repeatable):\n"
        "rerun only the mutants none of them killed; their killed verdicts stand",
    )
    args = ap.parse_args()
    if args.isolation:
        return isolation()
    cfg = _config()
    patterns = args.only or CORE
    _preflight(cfg, patterns)
    base = None
    for path in args.baseline or []:
        got = _read_baseline(path, patterns)
        if base is not None and set(got) != set(base):
            _fail(f"--baseline: {path}: not the mutants of the other baselines")
        # A kill in any baseline stands; otherwise the latest verdict actually measured.
        base = {
            k: base[k] if base and (base[k] in KILLED or v == "not checked") else v
            for k, v in got.items()
        }
    if not args.report_only:
        # Reasoned equivalents are reported apart whatever they do: not rerun.
        equiv = _equivalent()
        rerun = (
            sorted(k for k, v in base.items() if v not in KILLED and k not in equiv)
            if base
            else None
        )
        if rerun == []:
            print("every mutant of the baseline was killed: nothing to rerun")
        else:
            _run_mutmut(patterns, args.children, rerun)
    statuses = _statuses()
    rep = report(patterns, _merge_baseline(statuses, base, patterns) if base else statuses)
    print_report(rep)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rep, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
