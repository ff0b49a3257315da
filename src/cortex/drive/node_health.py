"""Repeat offenders, for both drivers: a node that fails `strikes` times within `window_s` is
quarantined (the twin's `--quarantine`, sim/quarantine.py). Nodes are keyed by whatever the
driver names them with (the twin's index; a live cluster's stable node label)."""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class QuarantineRules:
    strikes: int
    window_s: float
    burn_in_s: float

    def __post_init__(self) -> None:
        if self.strikes < 1:
            raise ValueError(f"quarantine strikes: must be at least 1, got {self.strikes}")
        for name in ("window_s", "burn_in_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"quarantine {name}: must be a finite number >= 0, got {v}")

    @classmethod
    @cache
    def load(cls) -> QuarantineRules:
        """The shipped rules (drive/data/quarantine.csv, with their sources)."""
        text = resources.files("cortex.drive").joinpath("data/quarantine.csv").read_text()
        v = {row["name"]: float(row["value"]) for row in csv.DictReader(text.splitlines())}
        return cls(int(v["strikes"]), v["window_s"], v["burn_in_s"])


@dataclass
class Strikes:
    """Each node's recent failures; `strike` says when one more makes it a repeat offender."""

    rules: QuarantineRules
    recent: dict[Hashable, deque[float]] = field(default_factory=dict)

    def strike(self, node: Hashable, now: float) -> bool:
        """Record a failure at `now`; True when it is the strike that quarantines the node
        (its count then starts over)."""
        times = self.recent.setdefault(node, deque())
        times.append(now)
        while times and times[0] <= now - self.rules.window_s:
            times.popleft()
        if len(times) < self.rules.strikes:
            return False
        times.clear()
        return True

    def count(self, node: Hashable, now: float) -> int:
        """Failures of the node within the window before `now` (a health figure to show)."""
        times = self.recent.get(node, ())
        return sum(1 for t in times if t > now - self.rules.window_s)
