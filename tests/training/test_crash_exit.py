"""An unexpected error in a run with DataLoader workers must end the process (exit 1, with the
traceback), not leave it waiting for its workers. They ignore SIGTERM (stream.py), so the
interpreter's exit, which stops daemon workers with SIGTERM and joins them, waited for ever
while the traceback kept the loader alive; the main process only flags SIGTERM, so nothing
short of SIGKILL ended the job. The first GPU run met it (bench/RESULTS.md §81: fsd
--deterministic timed out after 240 s before the refusal had its own exit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from .trainkit import ROOT, env

BUG = """
import sys, torch
from cortex.training import cli
def boom(*_a, **_k):
    raise RuntimeError("a bug after the loader started")
torch.nn.utils.clip_grad_norm_ = boom  # called by the loop after the first backward
sys.exit(cli.main("fsd", sys.argv[1:]))
"""


@pytest.mark.parametrize("workers", ["1", "0"])
def test_an_unexpected_error_ends_the_run_with_workers(workers: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", BUG, "--config", "tiny", "--steps", "4", "--num-workers", workers],
        env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=120)  # a bound, not a timing: it takes seconds
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the run did not exit after its error: waiting for its DataLoader workers")
    assert proc.returncode == 1, err
    assert "RuntimeError: a bug after the loader started" in err
