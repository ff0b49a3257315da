"""Hot spares in the twin: `per_pod` nodes of every pod are held out of scheduling, and a gang
that loses a node to a failure swaps in a spare of the same pod instead of going back to the
queue. It keeps its checkpointed work as any failed run does, owes the detection time plus its
recovery and restart overhead divided by the standby speed-up (sim/data/spares.csv, from
ByteRobust), and restarts at once on its old nodes and the spare. A repaired node refills its
pod's pool when the pool is short, else returns to service. The pool itself is the driver
kit's (drive/spares.py), shared with the control plane.

The pool's GPU-time is booked as `hot_spare` (carved out of `down`, since the state holds spares
out of service like down nodes), so the GPU-hour categories still sum to installed.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

from cortex.drive.spares import SparePool

__all__ = ["SparePool", "swap_speedup"]


@cache
def swap_speedup() -> float:
    text = resources.files("cortex.sim").joinpath("data/spares.csv").read_text()
    rows = {r["name"]: float(r["value"]) for r in csv.DictReader(text.splitlines())}
    return rows["swap_speedup"]
