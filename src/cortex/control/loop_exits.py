"""The scheduler loop's exit side: cancel requests, process exits, releases and requeues (with
their retry backoff). A mixin of `cortex.control.loop.SchedulerLoop`, split out along the seam
between deciding what runs (loop.py, loop_launch.py) and recording how runs ended (here)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store
from cortex.control.config import Settings
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.state import ClusterState, Placement
from cortex.workload.job import Job
from cortex.workload.states import PENDING, TERMINAL, JobState

log = logging.getLogger("cortex.control")

CANCEL_SCAN_S = 30.0
# The reason recorded for an exit 75 that no stop request asked for; counting these rows in
# the job's history is what bounds such requeues across service restarts.
SELF_REQUEUE = "exited 75 without a stop request"

# Defaults of the loop's retry parameters (the settings model may override them).
RETRY_BACKOFF_BASE_S = 1.0
RETRY_BACKOFF_MAX_S = 300.0
MAX_EXIT75_REQUEUES = 20


def backoff_s(n: int, base_s: float, max_s: float) -> float:
    """Delay before the n-th retry (n >= 1): base, 2 base, 4 base, ... capped at max_s."""
    if n < 1 or base_s <= 0:
        return 0.0
    return min(max_s, base_s * 2.0 ** min(n - 1, 60))


class ExitsMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    settings: Settings
    jobs: dict[int, Job]
    placement: dict[int, Placement]
    admitted: dict[int, Job]
    stopping: set[int]
    attempt: dict[int, int]
    owner: dict[int, int]
    state: ClusterState
    pending: PendingQueues
    dirty: bool
    executor: Any
    backoff: dict[int, float]  # requeued job id -> wall time it may be scheduled again
    retry_backoff_base_s: float
    retry_backoff_max_s: float
    max_exit75_requeues: int
    cancel_hint: set[int]
    _hint_lock: threading.Lock
    _last_cancel_scan: float

    if TYPE_CHECKING:  # SchedulerLoop's

        def wake(self) -> None: ...

    # ---- cancel ---------------------------------------------------------------------------
    def request_cancel(self, job_id: int) -> None:
        """The API recorded a cancel request: look at it on the next tick. Lock-free for the
        caller (a set add under a lock no one holds for longer than a swap)."""
        with self._hint_lock:
            self.cancel_hint.add(job_id)
        self.wake()

    def _cancel_candidates(self, r: Session, now: float) -> list[int]:
        """Jobs with a cancel request still to act on. The API's hint names them; a full scan
        now and then covers requests recorded by an API process other than this one.
        The hints are taken before the query: the API commits its request before it adds the
        hint, so the query sees every request taken, and a hint added later waits for the next
        tick instead of being cleared unread."""
        with self._hint_lock:
            hint, self.cancel_hint = self.cancel_hint, set()
        q = select(m.Job.id).where(
            m.Job.cancel_requested.is_(True),
            m.Job.state.in_([*(st.value for st in PENDING), "admitted", "running"]),
            or_(m.Job.stopping.is_(None), m.Job.stopping != "cancel"),
        )
        if now - self._last_cancel_scan >= CANCEL_SCAN_S:
            self._last_cancel_scan = now
        elif hint:
            q = q.where(m.Job.id.in_(sorted(hint)))
        else:
            return []
        return list(r.scalars(q).all())

    def _cancels(self, s: Session, ids: list[int], now: float) -> list[tuple[int, int, str]]:
        if not ids:
            return []
        rows = s.scalars(select(m.Job).where(m.Job.id.in_(ids))).all()
        stops = []
        for row in rows:
            job = self.jobs.get(row.id)
            if row.state == JobState.RUNNING.value:
                row.stopping = "cancel"
                stops.append((row.id, row.attempt, "cancel"))
                store.event(s, "stop", "SIGTERM: cancel", job_id=row.id, team=row.team)
                continue
            if row.state not in ("queued", "requeued", "admitted"):
                continue
            if row.id in self.backoff:
                del self.backoff[row.id]
            elif job is not None and job.state in PENDING:
                self.pending.remove(job)
            elif job is not None and row.id in self.admitted:
                self._release(s, row.id, now)
                del self.admitted[row.id]
            store.move(s, row, JobState.CANCELLED, "cancelled before it ran", now)
            row.ended_at = now
            self.jobs.pop(row.id, None)
            self.dirty = True
        return stops

    def _terminate(self, job_id: int, attempt: int, why: str) -> None:
        try:
            self.executor.terminate(job_id, attempt, reason=why)
        except Exception:
            log.exception("terminate job %s attempt %s", job_id, attempt)

    # ---- release and requeue ------------------------------------------------------------------
    def _release(self, s: Session, job_id: int, now: float) -> None:
        """Give back capacity and devices and close the allocation rows."""
        job = self.jobs.get(job_id)
        if job_id in self.placement and job is not None:
            self.state.stop(job, job.queue_idx)
            del self.placement[job_id]
        self.stopping.discard(job_id)
        self.attempt.pop(job_id, None)
        for d in [d for d, j in self.owner.items() if j == job_id]:
            del self.owner[d]
        s.execute(
            update(m.Allocation)
            .where(and_(m.Allocation.job_id == job_id, m.Allocation.active.is_(True)))
            .values(active=False, released_at=now)
        )
        self.dirty = True

    def _requeue(
        self, s: Session, row: m.Job, job: Job | None, reason: str, now: float, delay_s: float = 0
    ) -> None:
        """Back to the queue; with a delay, the job waits it out before it is scheduled."""
        if delay_s > 0:
            reason = f"{reason}; retry in {delay_s:g} s"
        store.move(s, row, JobState.REQUEUED, reason, now)
        row.stopping = None
        if job is not None:
            job.state = JobState.REQUEUED
            job.restarts += 1
            job.est_cache = None
            if delay_s > 0:
                self.backoff[job.id] = now + delay_s
            else:
                self.pending.add(job)

    def _release_backoff(self, now: float) -> None:
        """Jobs whose retry delay is over join the pending queues."""
        for jid in [j for j, at in self.backoff.items() if at <= now]:
            del self.backoff[jid]
            job = self.jobs.get(jid)
            if job is not None and job.state in PENDING and job.queue_idx >= 0:
                self.pending.add(job)
                self.dirty = True

    # ---- exits -----------------------------------------------------------------------------
    def _exit(self, s: Session, e: Any, now: float) -> None:
        row = s.get(m.Job, e.job_id)
        if row is None or row.attempt != e.attempt or row.state != JobState.RUNNING.value:
            log.info("stale exit %s", e)
            return
        job = self.jobs.get(row.id)
        self._release(s, row.id, now)
        row.exit_code = e.exit_code
        detail = f"{e.outcome}: {e.detail}" if e.detail else e.outcome
        store.event(s, "exit", f"attempt {e.attempt} {detail}", job_id=row.id, team=row.team)
        outcome = e.outcome
        self_requeues = 0
        if outcome == "preempted" and row.stopping != "preempt" and not row.cancel_requested:
            # Exit 75 that no one asked for: the job requeues itself. Bounded, or a job that
            # always exits 75 would be relaunched forever.
            self_requeues = 1 + self._self_requeues(s, row.id)
            limit = self.max_exit75_requeues
            if self_requeues > limit:
                outcome = "failed"
                detail = f"{detail} ({SELF_REQUEUE} {self_requeues} times; limit {limit})"
        if row.cancel_requested or outcome == "cancelled":
            store.move(s, row, JobState.CANCELLED, detail, now)
            row.ended_at = now
            self.jobs.pop(row.id, None)
        elif outcome == "completed":
            store.move(s, row, JobState.COMPLETED, detail, now)
            row.ended_at = now
            self.jobs.pop(row.id, None)
        elif outcome == "preempted":
            store.move(s, row, JobState.PREEMPTED, detail, now)
            row.preemptions += 1
            if self_requeues:
                delay = self._retry_delay_s(self_requeues)
                self._requeue(s, row, job, f"{SELF_REQUEUE} ({self_requeues})", now, delay)
            else:
                self._requeue(s, row, job, "back to queue after preemption", now)
        elif self_requeues:
            # Over the exit-75 limit: final, however many ordinary retries are left.
            store.move(s, row, JobState.FAILED, detail, now)
            self._final_failure(row, now)
        else:
            store.move(s, row, JobState.FAILED, detail, now)
            row.failures += 1
            if row.failures <= self.settings.max_retries:
                why = f"retry {row.failures} of {self.settings.max_retries}"
                self._requeue(s, row, job, why, now, self._retry_delay_s(row.failures))
            else:
                self._final_failure(row, now)
        if row.state in TERMINAL or row.state == JobState.FAILED.value:
            row.stopping = None

    def _final_failure(self, row: m.Job, now: float) -> None:
        row.ended_at = now
        row.stopping = None
        self.jobs.pop(row.id, None)

    def _retry_delay_s(self, n: int) -> float:
        return backoff_s(n, self.retry_backoff_base_s, self.retry_backoff_max_s)

    @staticmethod
    def _self_requeues(s: Session, job_id: int) -> int:
        """Earlier requeues of this job after an exit 75 that no stop request asked for."""
        n = s.scalar(
            select(func.count())
            .select_from(m.JobTransition)
            .where(
                m.JobTransition.job_id == job_id,
                m.JobTransition.dst == JobState.REQUEUED.value,
                m.JobTransition.reason.startswith(SELF_REQUEUE),
            )
        )
        return int(n or 0)
