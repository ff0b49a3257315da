"""Checkpoint/restart, computed analytically so that checkpoints are never events.

A run starts with `overhead_s` of restart work, then repeats `tau_s` of compute followed by a
`write_s` blocking checkpoint. Work since the last completed checkpoint is lost at a failure or
preemption. Times here are in seconds of the run's own wall clock.
"""

from __future__ import annotations

import math


def daly_interval_s(write_s: float, mtbf_s: float) -> float:
    """Daly's optimum: sqrt(2 delta M) - delta (Young without the - delta term), for delta < M/2;
    beyond that, checkpoint every M (cortex-facts.md)."""
    if write_s <= 0:
        return math.inf
    if write_s >= mtbf_s / 2:
        return mtbf_s
    return math.sqrt(2.0 * write_s * mtbf_s) - write_s


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


def run_duration_s(compute_s: float, overhead_s: float, tau_s: float, write_s: float) -> float:
    """Wall time to finish `compute_s` of compute; no checkpoint is written after the last chunk."""
    if math.isinf(tau_s) or compute_s <= 0:
        return overhead_s + max(compute_s, 0.0)
    writes = max(math.ceil(compute_s / tau_s) - 1, 0)
    return overhead_s + compute_s + writes * write_s
