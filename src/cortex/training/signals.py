"""SIGTERM → a flag the training loop polls once per step (checkpoint, then exit 75).

The handler only sets the flag: checkpointing inside a signal handler could interrupt a
half-done optimizer step and save inconsistent state."""

from __future__ import annotations

import signal
import sys
from types import FrameType


class StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(
            f"{self.signal_name} received: checkpointing and exiting", file=sys.stderr, flush=True
        )
