"""Lemon quarantine in the twin: a node that fails `strikes` times within `window_s` leaves the
fleet for repair and burn-in (`burn_in_s`) and comes back repaired.

Node failures are drawn up front (sim/failures.py) in proportion to each node's rate multiplier.
A repaired node fails at a typical node's rate (the fleet mean, 1) instead of its old
multiplier, so its later drawn failures are thinned: each one is kept with probability
min(1, 1 / old multiplier), on a random stream of its own (a run without quarantine draws
nothing from it, and its reports stay as they were). Thinning a Poisson process by a constant
probability gives a Poisson process at the thinned rate, so the repaired node's failures are
what a fresh draw at its new rate would give.
The parameters are rows of sim/data/quarantine.csv with their sources.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import numpy as np


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
        text = resources.files("cortex.sim").joinpath("data/quarantine.csv").read_text()
        v = {row["name"]: float(row["value"]) for row in csv.DictReader(text.splitlines())}
        return cls(int(v["strikes"]), v["window_s"], v["burn_in_s"])


@dataclass
class Quarantine:
    """Per-node strike counts and the thinning of repaired nodes' failures."""

    rules: QuarantineRules
    node_mult: np.ndarray  # the nodes' failure-rate multipliers (sim/failures.py)
    rng: np.random.Generator
    recent: dict[int, deque[float]] = field(default_factory=dict)
    keep: dict[int, float] = field(default_factory=dict)  # repaired node: P(keep a failure)
    quarantined: int = 0
    lemons_caught: int = 0  # quarantined nodes whose multiplier marks them as lemons
    out_gpu_s: float = 0.0  # GPU-seconds held out for burn-in beyond the repair itself

    def happens(self, node: int) -> bool:
        """Whether a drawn failure of this node happens (a repaired node's are thinned)."""
        p = self.keep.get(node)
        return p is None or bool(self.rng.random() < p)

    def strike(self, node: int, now: float) -> bool:
        """Record a failure; True when it is the strike that quarantines the node."""
        times = self.recent.setdefault(node, deque())
        times.append(now)
        while times and times[0] <= now - self.rules.window_s:
            times.popleft()
        if len(times) < self.rules.strikes:
            return False
        times.clear()
        self.quarantined += 1
        mult = float(self.node_mult[node])
        self.lemons_caught += mult > LEMON_MULT
        # Repaired: a typical node's rate from now on; a node that was not worse than typical
        # keeps its own.
        self.keep[node] = min(1.0, self.keep.get(node, 1.0) / mult) if mult > 0 else 1.0
        return True

    def report(self) -> dict[str, float | int]:
        lemons = int((self.node_mult > LEMON_MULT).sum())
        return {
            "strikes": self.rules.strikes,
            "window_s": self.rules.window_s,
            "burn_in_s": self.rules.burn_in_s,
            "nodes_quarantined": self.quarantined,
            "lemons_caught": self.lemons_caught,
            "lemon_nodes": lemons,
            "burn_in_gpu_h": round(self.out_gpu_s / 3600.0, 3),
        }


# A node is counted as a lemon in the report when its multiplier is this many times the fleet
# mean: the two classes of sim/failures.py's mixture sit near 0.3 and near 60, so any threshold
# between them sorts them the same way.
LEMON_MULT = 5.0
