"""Running the `cortex` command as a user does, for tests: in a fresh process, with warnings as
errors (one process per call, or many calls in one process to save interpreter starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# The console script's target, run under this interpreter so the test does not depend on PATH.
CORTEX = [sys.executable, "-W", "error", "-c", "from cortex.cli.main import main; main()"]
Run = subprocess.CompletedProcess[str]
ENV = {**os.environ, "COLUMNS": "200", "MPLBACKEND": "Agg", "NO_COLOR": "1"}

# Runs many commands in one interpreter (each start costs about a second): each case gets its
# own argv, working folder and captured stdout/stderr; an exception that escapes main() is
# printed as the traceback a user would see.
BATCH = r"""
import contextlib, io, json, os, sys, traceback, warnings
warnings.simplefilter("error")
from cortex.cli.main import main
results = []
for args, cwd in json.load(sys.stdin):
    os.chdir(cwd)
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        sys.argv = ["cortex", *args]
        try:
            main()
        except SystemExit as e:
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
    results.append([code, out.getvalue(), err.getvalue()])
json.dump(results, sys.__stdout__)
"""


def cortex(*args: str | Path, cwd: Path | None = None) -> Run:
    """Run `cortex ARGS` in a fresh process."""
    return subprocess.run(
        [*CORTEX, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=ENV,
        timeout=300,
        check=False,
    )


def cortex_batch(calls: list[tuple[list[str], Path]]) -> list[Run]:
    """Run several `cortex` commands (args, working folder) in one fresh process."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", BATCH],
        input=json.dumps([(args, str(cwd)) for args, cwd in calls]),
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [
        subprocess.CompletedProcess(args, code, out, err)
        for (args, _), (code, out, err) in zip(calls, json.loads(proc.stdout), strict=True)
    ]
