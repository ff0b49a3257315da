"""Goodput and its losses, one vocabulary for both drivers.

The twin books every installed GPU-second of a run in one of `CATEGORIES` (sim/books.py); the
control plane books each attempt of a job from what it measured (control/goodput.py). Both speak
the names below, and the live side's rule for one attempt is written here, pure:

- `startup` / `restart_overhead`: from the attempt's start to its first reported step (the
  first attempt's is its startup, a later one's its restart overhead; the twin books both as
  `restart_overhead`, since its runs all start from a modelled overhead);
- `checkpoint_writes`: the checkpoints the attempt wrote, each at the job's declared write time
  (the job protocol reports when a checkpoint landed, not how long it took);
- `rework_after_failures` / `rework_after_preemptions`: a failed or preempted attempt's work
  since its last checkpoint (since its first step when it wrote none), lost;
- `in_progress`: a running attempt's work since its last checkpoint, not lost yet and not
  saved either (the twin's `in_progress_at_end` memo line);
- `productive`: the rest of the attempt's held time.

`queueing` is a job's time waiting for its attempts (wall seconds, GPUs not held).
Effective training time (the twin's figure for large jobs) is productive time over the span
from the first start to the end (or now).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The twin's GPU-hour categories (sim/books.py), in its report's order.
CATEGORIES = (
    "productive",
    "rework_after_failures",
    "rework_after_preemptions",
    "restart_overhead",
    "checkpoint_writes",
    "lost_to_power_caps",
    "lost_to_heat",
    "gang_rounding",
    "idle",
    "down",
)

# The categories one attempt's held GPU-time splits into in the control plane: the twin's
# allocated-time categories it can measure, plus `startup` (the first attempt's overhead, part
# of the twin's `restart_overhead`) and the memo `in_progress`.
ATTEMPT_CATEGORIES = (
    "productive",
    "startup",
    "restart_overhead",
    "checkpoint_writes",
    "rework_after_failures",
    "rework_after_preemptions",
    "in_progress",
)
LOSSES = (
    "startup",
    "restart_overhead",
    "checkpoint_writes",
    "rework_after_failures",
    "rework_after_preemptions",
)
OUTCOMES = ("running", "completed", "failed", "preempted", "cancelled")


@dataclass(frozen=True)
class Attempt:
    """What the control plane measured of one attempt (times are Unix seconds)."""

    number: int
    gpus: int
    started_at: float
    ended_at: float | None  # None: running
    outcome: str  # one of OUTCOMES
    first_step_at: float | None = None  # its first progress report
    checkpoint_at: float | None = None  # the newest checkpoint known at its end (any attempt's)
    checkpoints: int = 0  # checkpoints it wrote
    checkpoint_write_s: float = 0.0  # the job's declared time per checkpoint write


def split_attempt(a: Attempt, now: float) -> dict[str, float]:
    """Wall seconds of one attempt per ATTEMPT_CATEGORIES; they sum to its held time."""
    end = now if a.ended_at is None else a.ended_at
    held = max(0.0, end - a.started_at)
    out = dict.fromkeys(ATTEMPT_CATEGORIES, 0.0)
    work_from = a.started_at
    if a.first_step_at is not None:
        work_from = min(max(a.first_step_at, a.started_at), a.started_at + held)
    overhead = work_from - a.started_at
    out["startup" if a.number <= 1 else "restart_overhead"] = overhead
    rest = held - overhead
    writes = min(rest, max(0, a.checkpoints) * max(0.0, a.checkpoint_write_s))
    out["checkpoint_writes"] = writes
    rest -= writes
    # Work since the last checkpoint (since work began when the checkpoint is older, or none).
    mark = work_from if a.checkpoint_at is None else max(work_from, a.checkpoint_at)
    unsaved = min(rest, max(0.0, end - mark))
    lost_as = {
        "failed": "rework_after_failures",
        "preempted": "rework_after_preemptions",
        "running": "in_progress",
    }.get(a.outcome)
    if lost_as is not None:  # completed and cancelled runs keep what they did
        out[lost_as] = unsaved
        rest -= unsaved
    out["productive"] = rest
    return out


@dataclass
class Books:
    """Seconds and GPU-seconds per category, summed over attempts (and jobs)."""

    gpu_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ATTEMPT_CATEGORIES, 0.0))
    queueing_s: float = 0.0
    attempts: int = 0

    def add(self, a: Attempt, now: float) -> dict[str, float]:
        split = split_attempt(a, now)
        for k, v in split.items():
            self.gpu_s[k] += a.gpus * v
        self.attempts += 1
        return split

    def merge(self, other: Books) -> None:
        for k, v in other.gpu_s.items():
            self.gpu_s[k] += v
        self.queueing_s += other.queueing_s
        self.attempts += other.attempts

    @property
    def allocated_gpu_s(self) -> float:
        return sum(self.gpu_s.values())

    def goodput(self) -> float:
        """Productive over allocated GPU-time (the twin's `goodput`); 0 with nothing held."""
        alloc = self.allocated_gpu_s
        return self.gpu_s["productive"] / alloc if alloc > 0 else 0.0


def queueing_s(submitted_at: float, attempts: list[Attempt], now: float, waiting: bool) -> float:
    """Time a job waited: before its first attempt, between attempts, and since its last one
    ended while it `waiting` still."""
    total, since = 0.0, submitted_at
    for a in sorted(attempts, key=lambda x: x.number):
        total += max(0.0, a.started_at - since)
        since = now if a.ended_at is None else a.ended_at
    if waiting:
        total += max(0.0, now - since)
    return total


def effective_training_time(productive_s: float, first_start_s: float, end_s: float) -> float:
    """Productive seconds over the span from the first start to the end: the twin's figure for
    large jobs (sim/report.py), 0 for an empty span."""
    span = end_s - first_start_s
    return productive_s / span if span > 0 else 0.0
