"""Time limits in the scheduler loop (Slurm's `--time`): a run past its job's `time_limit_s`
is stopped (SIGTERM, grace, SIGKILL, as a cancel) and the job ends failed with the reason,
not retried: the limit is the submitter's own budget, apart from the runtime estimate
(`duration_s`) that backfill plans with.

The clock starts when the loop first sees the attempt running (within a tick of its launch),
or, after a restart, at the attempt's last transition in the store. A stop sent before a
restart is known again from the store (the row's `stopping` with no cancel request), so the
run's exit still fails the job for its limit rather than cancelling it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store
from cortex.workload.states import JobState


class LimitsMixin:
    # Provided by the loop.
    mirror: Any
    settings: Any

    def init_limits(self) -> None:
        self.time_limits: dict[int, float] = {}  # job id -> seconds (jobs that have one)
        self._deadline: dict[tuple[int, int], float] = {}  # (job, attempt) -> stop at
        self._timed_out: dict[tuple[int, int], float] = {}  # stopped for it; the limit

    def run_limits(self, s: Session, now: float) -> list[tuple[int, int, str]]:
        """The runs past their time limit, to stop after this tick commits."""
        if not self.time_limits:
            return []
        stops = []
        attempts = self.mirror.attempt
        for jid, limit in list(self.time_limits.items()):
            if jid not in self.mirror.jobs:
                del self.time_limits[jid]  # final
                continue
            attempt = attempts.get(jid)
            if attempt is None or (jid, attempt) in self._timed_out:
                continue
            key = (jid, attempt)
            if key not in self._deadline:
                began = store.last_transition_at(s, jid) or now
                self._deadline[key] = began + limit
            if now < self._deadline[key]:
                continue
            row = s.get(m.Job, jid)
            if row is None or row.state != JobState.RUNNING.value or row.attempt != attempt:
                continue
            row.stopping = "cancel"
            self._timed_out[key] = limit
            why = f"time limit of {limit:g} s reached: stopping"
            store.event(s, "stop", why, job_id=jid, team=row.team, at=now)
            stops.append((jid, attempt, "cancel"))
        return stops

    def _exit(self, s: Session, e: Any, now: float) -> None:
        """A run stopped for its time limit ends the job failed, with the reason, however many
        retries it has left."""
        key = (e.job_id, e.attempt)
        self._deadline.pop(key, None)
        limit = self._timed_out.pop(key, None)
        row = s.get(m.Job, e.job_id)
        if limit is None and row is not None and self._stopped_for_limit(row, e.attempt):
            limit = self.time_limits.get(row.id)
        if limit is None or e.outcome == "completed":  # it finished within the grace period
            super()._exit(s, e, now)  # type: ignore[misc]
            return
        if row is not None:
            row.failures_in_a_row = self.settings.max_retries  # judged with no retry left
        detail = f"time limit of {limit:g} s reached"
        timed_out = SimpleNamespace(
            job_id=e.job_id, attempt=e.attempt, outcome="failed", exit_code=e.exit_code,
            detail=detail, no_retry=True,  # its checkpoints reset no count: it ran its time
        )  # fmt: skip
        super()._exit(s, timed_out, now)  # type: ignore[misc]

    @staticmethod
    def _stopped_for_limit(row: m.Job, attempt: int) -> bool:
        """Was this running attempt stopped for its time limit by a service before a restart?
        `_timed_out` lived in that service's memory; the store holds the stop (run_limits sets
        `stopping` "cancel", which only a user's cancel request sets otherwise), and the exit
        can come in the first tick after the restart, before run_limits looks again."""
        return (
            row.state == JobState.RUNNING.value
            and row.attempt == attempt
            and row.stopping == "cancel"
            and not row.cancel_requested
        )
