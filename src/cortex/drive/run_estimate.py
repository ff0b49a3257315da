"""A run's wall time, written once for both drivers: backfill's runtime estimate (the twin's
`Twin._estimate_s`, the control plane's `SchedulerLoop.estimate_s`, and through it the start
estimates, the dry run and the dashboard's forecasts) and the length the twin gives a run it
starts.

A run pays the restart overhead its job owes, then computes what remains of its work at its
speed, stopping every checkpoint interval to write a checkpoint (none after the last chunk).
Each driver says what it knows: the job's spec gives the work, the checkpoint write time (given,
or its size over the fleet's storage bandwidth: workload/spec.py `JobSpec.write_s`) and any
interval of its own; its progress gives the work done and the overhead it owes, booked when a
run ends (`book_kept`).
The twin books what its model says a run saved and the overhead its cause costs; the control
plane what it measured: the compute a run kept by its last checkpoint (`kept_compute_s`) and
the run's own startup, from its start to its first reported step, owed again at the next.
Only the twin models failures, so only it can pick Young/Daly's interval; a driver without a
failure rate takes the shared fallback interval (`data/run_rules.csv`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from cortex.workload.job import Job


def kept_compute_s(
    run_start_s: float,
    first_step_s: float | None,
    checkpoint_s: float | None,
    checkpoints: int,
    write_s: float,
) -> float:
    """Seconds of compute a run kept, measured: from its first step (its start, when it
    reported none before) to its last checkpoint, less the `checkpoints` writes it made by
    then. 0 without a checkpoint after the run's start (drive/runs.py kept_work decides which
    checkpoint is the run's). The twin's `sim/checkpoint.progress` models the same quantity."""
    if checkpoint_s is None or checkpoint_s <= run_start_s:
        return 0.0
    began = (
        run_start_s if first_step_s is None else min(max(first_step_s, run_start_s), checkpoint_s)
    )
    return max(0.0, checkpoint_s - began - checkpoints * write_s)


def book_kept(job: Job, compute_s: float, speed: float) -> None:
    """A run ends having kept `compute_s` seconds of compute at `speed` (`run_speed`): the
    job's work done, in reference seconds, never past its work."""
    job.done_s = min(job.done_s + compute_s * speed, job.work_s)


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
