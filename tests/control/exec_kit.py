"""Helpers of the local executor's tests (test_executor.py, test_executor_runs.py): jobs as
`python -c` snippets, bounded waits, and process checks through /proc."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from cortex.executors.local.executor import (
    ExitRecord,
    LaunchSpec,
    LocalExecutor,
)
from cortex.executors.local.procfs import proc_stat, same_process

PY = sys.executable
TIMEOUT_S = 60.0  # generous: a loaded 2-core CI machine starts interpreters slowly


def same_user_executor(root: Path, **kw: object) -> LocalExecutor:
    """Jobs run as the test's own user here (tests/control/test_privileges.py runs them as
    others), which the executor refuses unless told."""
    return LocalExecutor(root, allow_same_user=True, **kw)  # type: ignore[arg-type]


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def spec(job_id: int, cmd: list[str], attempt: int = 1, **kw: object) -> LaunchSpec:
    args: dict[str, object] = {
        "job_id": job_id,
        "attempt": attempt,
        "command": cmd,
        "env": {},
        "working_dir": None,
        "devices": [0],
    }
    args.update(kw)
    return LaunchSpec(**args)  # type: ignore[arg-type]


def wait_for(pred: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def wait_exits(ex: LocalExecutor, n: int, timeout_s: float = TIMEOUT_S) -> list[ExitRecord]:
    """Exactly n exits, then nothing more: each exit is reported once."""
    got: list[ExitRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {len(got)} of {n} exits: {got}")
        got.extend(ex.poll())
        time.sleep(0.02)
    time.sleep(0.1)
    assert ex.poll() == []
    assert len(got) == n, got
    return got


def gone(pid: int, start_ticks: int) -> bool:
    st = same_process(pid, start_ticks)
    return st is None or st.finished


def read_pid(path: Path) -> tuple[int, int]:
    """A pid a job wrote, with its start time, so a later check cannot be fooled by reuse."""
    wait_for(path.exists, f"{path.name}")
    pid = int(path.read_text())
    st = proc_stat(pid)
    assert st is not None, f"process {pid} already gone"
    return pid, st.start_ticks


def put_fn(path: Path) -> str:
    """Python source of `put(text)` for a job: write `path` via a rename, so the test never reads
    a half-written file. Needs `os`."""
    p = str(path)
    return (
        f"lambda text: (open({p!r} + '.tmp', 'w').write(text), os.replace({p!r} + '.tmp', {p!r}))"
    )


def sleeper(pidfile: Path) -> list[str]:
    """A job that writes its pid and sleeps far longer than any test waits."""
    return py(f"import os, time\nput = {put_fn(pidfile)}\nput(str(os.getpid()))\ntime.sleep(600)")


STUBBORN_JOB = """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    put = {put}
    put(str(child.pid))
    time.sleep(600)
"""
