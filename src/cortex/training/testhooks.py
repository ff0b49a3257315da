"""Hooks that let tests interrupt a real training process at an exact point. Unset in
production; each is read from the environment once per use so a test can set it per process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from cortex.training.signals import StopFlag

# "K:PATH": after finishing step K, create PATH and wait (up to 120 s) for a signal, so that the
# test's SIGTERM arrives at step K exactly rather than whenever the test thread gets scheduled.
ENV_PAUSE_AT_STEP = "CORTEX_TEST_PAUSE_AT_STEP"
# DIR: at the end of a run every rank saves its parameters to DIR/rank{RANK}.pt (the DDP test
# compares them; only rank 0 writes checkpoints, so they cannot show the other ranks' state).
ENV_DUMP_PARAMS = "CORTEX_TEST_DUMP_PARAMS"


def dump_params(model: nn.Module, rank: int) -> None:
    directory = os.environ.get(ENV_DUMP_PARAMS)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), Path(directory) / f"rank{rank}.pt")


def pause_at_step(step: int, stop: StopFlag) -> None:
    spec = os.environ.get(ENV_PAUSE_AT_STEP)
    if not spec:
        return
    at, _, marker = spec.partition(":")
    if int(at) != step:
        return
    Path(marker).write_text(str(step))
    deadline = time.monotonic() + 120.0
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(0.01)
