"""A run's wall time, written once for both drivers: backfill's runtime estimate (the twin's
`Twin._estimate_s`, the control plane's `SchedulerLoop.estimate_s`, and through it the start
estimates, the dry run and the dashboard's forecasts) and the length the twin gives a run it
starts.

A run pays the restart overhead its job owes, then computes what remains of its work at its
speed, stopping every checkpoint interval to write a checkpoint (none after the last chunk).
Each driver says what it knows: the job's spec gives the work, the checkpoint write time and
any interval of its own; its progress gives the work done and the overhead it owes (the twin
books both; the control plane books neither yet, so a live job is estimated from its spec).
Only the twin models failures, so only it can pick Young/Daly's interval; a driver without a
failure rate takes the shared fallback interval (`data/run_rules.csv`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from cortex.workload.job import Job


def daly_interval_s(write_s: float, mtbf_s: float) -> float:
    """Daly's optimum: sqrt(2 delta M) - delta (Young without the - delta term), for delta < M/2;
    beyond that, checkpoint every M (cortex-facts.md)."""
    if write_s <= 0:
        return math.inf
    if write_s >= mtbf_s / 2:
        return mtbf_s
    return math.sqrt(2.0 * write_s * mtbf_s) - write_s


def run_duration_s(compute_s: float, overhead_s: float, tau_s: float, write_s: float) -> float:
    """Wall time to finish `compute_s` of compute; no checkpoint is written after the last chunk."""
    if math.isinf(tau_s) or compute_s <= 0:
        return overhead_s + max(compute_s, 0.0)
    writes = max(math.ceil(compute_s / tau_s) - 1, 0)
    return overhead_s + compute_s + writes * write_s


def interval_s(
    job: Job,
    default_s: float | None,
    failure_rate_per_s: Callable[[], float] | None,
    fallback_s: float,
) -> float:
    """The checkpoint interval of a run of `job`: none (inf) without a write time; else the
    job's own interval, else the driver's default (`cortex sim --checkpoint-interval`), else
    Young/Daly over the run's failure rate (called only then: the twin's is a sum over causes),
    else, for a driver that models no failures (None), `fallback_s`."""
    write = job.ckpt_write_s or 0.0
    fixed = job.ckpt_interval_s
    if fixed is None:
        fixed = default_s
    if not write:
        return math.inf  # no checkpoint cost given: the job does not checkpoint
    if fixed is not None:
        return float(fixed)
    if failure_rate_per_s is not None:
        return daly_interval_s(write, 1.0 / failure_rate_per_s())
    return fallback_s


def run_speed(job: Job, flavor_speed: float, gang: int) -> float:
    """Reference seconds of the job's work done per second on a gang of `gang` GPUs of a flavor
    whose speed for the job's kind is `flavor_speed` (its work is given on its requested gang)."""
    return flavor_speed * gang / job.gpus


def estimate_s(job: Job, speed: float, tau_s: float) -> float:
    """Wall seconds of a run of `job` that starts now at `speed` (`run_speed`) with checkpoint
    interval `tau_s` (`interval_s`): the overhead it owes, its remaining work, its writes."""
    return run_duration_s(
        job.remaining_s / speed, job.owed_overhead_s, tau_s, job.ckpt_write_s or 0.0
    )
