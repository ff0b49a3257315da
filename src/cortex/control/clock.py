"""The control plane's clock, injected (as the twin's simulated `now` is) so that everything
the loop decides by time (retry and preemption backoff, idle passes, heartbeats, liveness) can
be tested on a clock the test moves, without sleeping.

`time()` is wall time since the epoch: it stamps rows (transitions, events, allocations) and
is compared with stamps read back from the store. `monotonic()` measures intervals inside one
process (tick liveness), where a wall clock stepped by NTP must not count."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The machine's clocks: what `cortex serve` runs on."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM = SystemClock()
