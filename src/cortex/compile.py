"""`python -m cortex.compile`: build, check or remove the optional compiled core.

    python -m cortex.compile            # compile (needs mypyc: pip install mypy, and a C compiler)
    python -m cortex.compile --status   # where the build is, and whether it would be used
    python -m cortex.compile --check    # mypyc's checks and C generation only (no C compiler)
    python -m cortex.compile --clean    # remove it
    CORTEX_COMPILED=1 cortex sim ...    # use it (only while it matches the sources)

Nothing here runs unless asked: without a build, or without `CORTEX_COMPILED=1`, Cortex runs
pure Python. The build compiles MODULES with mypyc as one group into a directory outside the
source tree (cortex/compiled.py says where and why) and writes a manifest with the sha256 of
every source last, so an interrupted build is never used.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cortex import compiled

# The typed hot paths of a twin run (bench/RESULTS.md: the scheduler cycle and the twin's loop).
MODULES: tuple[str, ...] = (
    "cortex.scheduler.admission",
    "cortex.scheduler.capacity",
    "cortex.scheduler.cycle",
    "cortex.scheduler.evict_place",
    "cortex.scheduler.ordering",
    "cortex.scheduler.pending",
    "cortex.scheduler.placement",
    "cortex.scheduler.power",
    "cortex.scheduler.cap_solver",
    "cortex.scheduler.preemption",
    "cortex.scheduler.queues",
    "cortex.scheduler.reasons",
    "cortex.scheduler.shadow",
    "cortex.scheduler.snapshot",
    "cortex.scheduler.state",
    "cortex.scheduler.statement",
    "cortex.scheduler.summaries",
    "cortex.scheduler.victims",
    "cortex.sim.engine",
    "cortex.sim.twin",
    "cortex.sim.twin_power",
    "cortex.sim.power",
    "cortex.sim.metrics",
    "cortex.sim.runs",
    "cortex.sim.failures",
    "cortex.sim.checkpoint",
    "cortex.sim.books",
    "cortex.sim.spares",
    "cortex.sim.quarantine",
    "cortex.drive.intake",
    "cortex.drive.runs",
    "cortex.drive.run_estimate",
    "cortex.drive.protection",
    "cortex.drive.allocation",
    "cortex.drive.power_books",
    "cortex.drive.power_jobs",
    "cortex.drive.power_moves",
    "cortex.power.battery",
    "cortex.power.cooling",
)

BUILD_ENTRIES = frozenset({compiled.MANIFEST, "build.log", "lib"})

# Run in a child so that mypy/mypyc and setuptools never load into the caller's process, and
# in a scratch directory so no project configuration (pyproject.toml) is picked up by either.
_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify
# The sources come last, one argument each: a checkout path may hold any character but NUL.
group, lib, tmp, opt, *paths = sys.argv[1:]
setup(
    name=group,
    ext_modules=mypycify(
        [*paths, "--ignore-missing-imports"], opt_level=opt, group_name=group,
        target_dir=tmp + "/c",
    ),
    script_args=["build_ext", "--build-lib", lib, "--build-temp", tmp + "/obj"],
)
"""

# mypyc's front end alone: its type checks and the C it would compile, written to a scratch
# directory; no setuptools, no C compiler. What mypyc refuses (a native class with two bases,
# say) fails here in seconds, where `build` would fail only on a machine that compiles.
_CHECK = """
import sys
from mypyc.build import mypycify
group, tmp, *paths = sys.argv[1:]
mypycify([*paths, "--ignore-missing-imports"], opt_level="0", group_name=group, target_dir=tmp)
"""


def missing_mypyc() -> str | None:
    """Why mypyc cannot run here (all that `check` needs), or None."""
    if importlib.util.find_spec("mypyc") is None:
        return "mypyc is not installed (pip install mypy)"
    return None


def missing_tools() -> str | None:
    """Why this machine cannot compile, or None."""
    why = missing_mypyc()
    if why is not None:
        return why
    try:
        import setuptools  # noqa: F401  (mypyc builds through it; venvs of 3.12+ lack it)
    except ImportError:
        return "setuptools is not installed (pip install setuptools)"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc}) on PATH"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.is_file():
        return f"no Python headers ({include})"
    return None


def build(
    modules: Sequence[str] = MODULES,
    directory: Path | None = None,
    package_dir: Path = compiled.PACKAGE_DIR,
    quiet: bool = False,
    opt_level: str = "3",
) -> Path:
    """Compile `modules` into `directory` (replacing what was there); returns the directory."""
    directory = directory or compiled.build_dir()
    clean(directory)
    lib = directory / "lib"
    lib.mkdir(parents=True)
    sources = [compiled.module_source(m, package_dir) for m in modules]
    # Hashed before compiling: a file edited during the build is then reported stale.
    hashes = {m: compiled.source_hash(s) for m, s in zip(modules, sources, strict=True)}
    with tempfile.TemporaryDirectory(prefix="cortex-compile-") as tmp:
        cmd = [sys.executable, "-c", _SETUP, compiled.GROUP, str(lib), tmp, opt_level]
        cmd += map(str, sources)
        with open(directory / "build.log", "w") as log:
            out = log if quiet else None
            subprocess.run(cmd, cwd=tmp, check=True, stdout=out, stderr=out)
    manifest = {
        "format": compiled.FORMAT,
        "group": compiled.GROUP,
        "interpreter": compiled.interpreter_tag(),
        "modules": hashes,
    }
    (directory / compiled.MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return directory


def check(
    modules: Sequence[str] = MODULES, package_dir: Path = compiled.PACKAGE_DIR
) -> tuple[bool, str]:
    """Whether mypyc accepts `modules` as one group, and what it printed (needs mypyc only)."""
    sources = [str(compiled.module_source(m, package_dir)) for m in modules]
    with tempfile.TemporaryDirectory(prefix="cortex-check-") as tmp:
        cmd = [sys.executable, "-c", _CHECK, compiled.GROUP, tmp + "/c", *sources]
        done = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
    return done.returncode == 0, done.stdout + done.stderr


def clean(directory: Path | None = None) -> bool:
    """Remove a build; True if there was one."""
    directory = directory or compiled.build_dir()
    if not directory.exists():
        return False
    # Never wipe a directory that is not a build (a mistyped --dir).
    foreign = sorted(p.name for p in directory.iterdir() if p.name not in BUILD_ENTRIES)
    if foreign:
        raise ValueError(f"--dir: {directory} holds {foreign[0]!r}: not a compiled-core build")
    shutil.rmtree(directory)
    return True


def status(directory: Path | None = None) -> str:
    directory = directory or compiled.build_dir()
    found = compiled.read_manifest(directory)
    if isinstance(found, str):
        return f"{directory}: not usable: {found}"
    reason = compiled.stale_reason(found)
    if reason is not None:
        return f"{directory}: stale, not used: {reason}"
    return f"{directory}: current, {len(found.modules)} modules; used when {compiled.ENV}=1"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cortex.compile", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--clean", action="store_true", help="remove the compiled core")
    group.add_argument("--status", action="store_true", help="say whether it would be used")
    group.add_argument(
        "--check", action="store_true", help="run mypyc's checks only (no C compiler, no build)"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help=f"build directory (default: ${compiled.DIR_ENV} or a per-checkout cache directory)",
    )
    parser.add_argument("--modules", help="comma-separated module names (default: the hot set)")
    args = parser.parse_args(argv)
    where = args.dir or compiled.build_dir()
    if args.status:
        print(status(where))
        return 0
    modules = args.modules.split(",") if args.modules else list(MODULES)
    try:
        if args.clean:
            print("removed" if clean(where) else "nothing to remove", where)
            return 0
        for m in modules:
            if not compiled.module_source(m).is_file():
                raise ValueError(f"--modules: {m}: no such module")
        if args.check:
            return _check_main(modules)
        clean(where)  # before checking the tools: a failed build never leaves an old one
    except ValueError as exc:
        print(f"error: cortex.compile: {exc}", file=sys.stderr)
        return 2
    why = missing_tools()
    if why is not None:
        print(f"error: cortex.compile: {why}; Cortex runs pure Python without it", file=sys.stderr)
        return 2
    try:
        build(modules, directory=where)
    except subprocess.CalledProcessError as exc:
        print(f"error: cortex.compile: mypyc failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    print(f"compiled {len(modules)} modules into {where}; use them with {compiled.ENV}=1")
    return 0


def _check_main(modules: Sequence[str]) -> int:
    why = missing_mypyc()
    if why is not None:
        print(f"error: cortex.compile: {why}", file=sys.stderr)
        return 2
    ok, out = check(modules)
    if not ok:
        print(out.rstrip(), file=sys.stderr)
        print(f"error: cortex.compile: mypyc refuses the {len(modules)} modules", file=sys.stderr)
        return 1
    print(f"mypyc accepts the {len(modules)} modules (nothing built)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
