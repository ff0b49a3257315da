"""Checkpoint/restart, computed analytically so that checkpoints are never events.

A run starts with `overhead_s` of restart work, then repeats `tau_s` of compute followed by a
`write_s` blocking checkpoint. Work since the last completed checkpoint is lost at a failure or
preemption. Times here are in seconds of the run's own wall clock. A run's length and its
interval are drive/run_estimate.py's (one rule for the twin and the control plane's backfill
estimate), named here too for the twin's callers.
"""

from __future__ import annotations

import math

from cortex.drive.run_estimate import daly_interval_s, run_duration_s

__all__ = ["daly_interval_s", "progress", "run_duration_s"]


def progress(
    elapsed_s: float, overhead_s: float, tau_s: float, write_s: float
) -> tuple[float, float]:
    """(compute done, compute saved by completed checkpoints) after `elapsed_s` of a run."""
    u = elapsed_s - overhead_s
    if u <= 0:
        return 0.0, 0.0
    if math.isinf(tau_s):
        return u, 0.0
    period = tau_s + write_s
    n = math.floor(u / period)
    rem = u - n * period
    done = n * tau_s + min(rem, tau_s)
    return done, n * tau_s
