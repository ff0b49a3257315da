"""A clock the test moves (control/clock.py's interface), for loop tests that decide by time
without sleeping."""

from __future__ import annotations

import time


class FakeClock:
    """Starts at the machine's wall time (stamps stay plausible next to rows the API writes
    with the system clock) and moves only when the test advances it."""

    def __init__(self) -> None:
        # A whole second: sums of the binary fractions tests advance by stay exact.
        self.wall = float(int(time.time()))
        self.mono = 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds
