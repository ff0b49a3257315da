"""Job states and the one transition table that both drivers (twin and control plane) obey."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Lifecycle of a job (Kueue's Workload): queued -> admitted -> running -> completed."""

    QUEUED = "queued"
    ADMITTED = "admitted"
    RUNNING = "running"
    PREEMPTED = "preempted"
    FAILED = "failed"
    REQUEUED = "requeued"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


Q, A, R, P, F, RQ, C, X, K = (
    JobState.QUEUED,
    JobState.ADMITTED,
    JobState.RUNNING,
    JobState.PREEMPTED,
    JobState.FAILED,
    JobState.REQUEUED,
    JobState.COMPLETED,
    JobState.REJECTED,
    JobState.CANCELLED,
)

#: FROM -> allowed TO states. Requeued jobs wait like queued ones; failed jobs that exhausted
#: their retries stay failed.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    Q: frozenset({A, X, K}),
    A: frozenset({R, RQ, K}),
    R: frozenset({P, F, C, K}),
    P: frozenset({RQ, K}),
    F: frozenset({RQ, K}),
    RQ: frozenset({A, K}),
    C: frozenset(),
    X: frozenset(),
    K: frozenset(),
}

TERMINAL: frozenset[JobState] = frozenset({C, X, K})
PENDING: frozenset[JobState] = frozenset({Q, RQ})


class IllegalTransitionError(RuntimeError):
    """A driver tried a state change that the transition table forbids."""

    def __init__(self, job_id: object, src: JobState, dst: JobState, reason: str) -> None:
        super().__init__(f"job {job_id}: {src.value} -> {dst.value} is not allowed ({reason})")
        self.src = src
        self.dst = dst


def check_transition(job_id: object, src: JobState, dst: JobState, reason: str = "") -> None:
    """Raise IllegalTransitionError unless src -> dst is in the table."""
    if dst not in TRANSITIONS[src]:
        raise IllegalTransitionError(job_id, src, dst, reason)
