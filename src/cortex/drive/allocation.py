"""The periodic allocation solve (the `hetero` profile's throughput LP), for both drivers: a
profile with an allocator gets a fresh solve every `allocator.interval_s` of the driver's clock
and its last targets in between; a profile without one gets none."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from cortex.scheduler.cycle import Policies
from cortex.scheduler.snapshot import Snapshot

if TYPE_CHECKING:  # the solve's module is imported by the profiles that run one (registry.py)
    from cortex.scheduler.hetero import Targets


class Allocation:
    def __init__(self) -> None:
        self.targets: Targets | None = None
        self.due_s = 0.0
        self.solves = 0

    def snapshot(self, pol: Policies, snap: Snapshot) -> Snapshot:
        """`snap` with the targets the cycle should follow (unchanged without an allocator)."""
        alloc = pol.allocator
        if alloc is None:
            return snap
        if snap.now_s >= self.due_s:
            self.targets = alloc.solve(snap)
            self.due_s = snap.now_s + alloc.interval_s
            self.solves += 1
        return dataclasses.replace(snap, targets=self.targets)
