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


# What a run that did not complete loses its unsaved work as (completed and cancelled runs keep
# what they did).
_LOST_AS = {
    "failed": "rework_after_failures",
    "preempted": "rework_after_preemptions",
    "running": "in_progress",
}
_INDEX = {k: i for i, k in enumerate(ATTEMPT_CATEGORIES)}
_LOST_AT = {outcome: _INDEX[k] for outcome, k in _LOST_AS.items()}
_PRODUCTIVE, _STARTUP, _RESTART = (
    _INDEX["productive"],
    _INDEX["startup"],
    _INDEX["restart_overhead"],
)
_WRITES = _INDEX["checkpoint_writes"]


def split_values(
    number: int, started_at: float, ended_at: float | None, outcome: str,
    first_step_at: float | None, checkpoint_at: float | None, checkpoints: int,
    checkpoint_write_s: float, now: float,
) -> list[float]:  # fmt: skip
    """`split_attempt` from an attempt's fields, as a list in ATTEMPT_CATEGORIES' order: the
    books of thousands of jobs (control/goodput_ledger.py) build no Attempt and no dict per
    attempt. The one rule: `split_attempt` calls this."""
    end = now if ended_at is None else ended_at
    held = max(0.0, end - started_at)
    out = [0.0] * len(ATTEMPT_CATEGORIES)
    work_from = started_at
    if first_step_at is not None:
        work_from = min(max(first_step_at, started_at), started_at + held)
    overhead = work_from - started_at
    out[_STARTUP if number <= 1 else _RESTART] = overhead
    rest = held - overhead
    writes = min(rest, max(0, checkpoints) * max(0.0, checkpoint_write_s))
    out[_WRITES] = writes
    rest -= writes
    # Work since the last checkpoint (since work began when the checkpoint is older, or none).
    mark = work_from if checkpoint_at is None else max(work_from, checkpoint_at)
    unsaved = min(rest, max(0.0, end - mark))
    lost_at = _LOST_AT.get(outcome)
    if lost_at is not None:
        out[lost_at] = unsaved
        rest -= unsaved
    out[_PRODUCTIVE] = rest
    return out


def split_attempt(a: Attempt, now: float) -> dict[str, float]:
    """Wall seconds of one attempt per ATTEMPT_CATEGORIES; they sum to its held time."""
    vals = split_values(
        a.number, a.started_at, a.ended_at, a.outcome, a.first_step_at, a.checkpoint_at,
        a.checkpoints, a.checkpoint_write_s, now,
    )  # fmt: skip
    return dict(zip(ATTEMPT_CATEGORIES, vals, strict=True))


_ZERO = dict.fromkeys(ATTEMPT_CATEGORIES, 0.0)


@dataclass
class Books:
    """Seconds and GPU-seconds per category, summed over attempts (and jobs)."""

    gpu_s: dict[str, float] = field(default_factory=_ZERO.copy)
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
    spans = [(a.started_at, a.ended_at) for a in sorted(attempts, key=lambda x: x.number)]
    return queueing_spans_s(submitted_at, spans, now, waiting)


def queueing_spans_s(
    submitted_at: float, spans: list[tuple[float, float | None]], now: float, waiting: bool
) -> float:
    """`queueing_s` from the attempts' (start, end or None) in attempt order."""
    total, since = 0.0, submitted_at
    for started_at, ended_at in spans:
        total += max(0.0, started_at - since)
        since = now if ended_at is None else ended_at
    if waiting:
        total += max(0.0, now - since)
    return total


def effective_training_time(productive_s: float, first_start_s: float, end_s: float) -> float:
    """Productive seconds over the span from the first start to the end: the twin's figure for
    large jobs (sim/report.py), 0 for an empty span."""
    span = end_s - first_start_s
    return productive_s / span if span > 0 else 0.0
