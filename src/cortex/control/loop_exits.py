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
from cortex.drive import runs
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.state import ClusterState, Placement
from cortex.workload.job import Job
from cortex.workload.states import PENDING, JobState

log = logging.getLogger("cortex.control")

CANCEL_SCAN_S = 30.0


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
            m.Job.state.in_(runs.UNFINISHED_VALUES),
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
                store.event(s, "stop", "SIGTERM: cancel", job_id=row.id, team=row.team, at=now)
                continue
            if not runs.unfinished(row.state):
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
            runs.requeued(job)
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
        store.event(
            s, "exit", f"attempt {e.attempt} {detail}", job_id=row.id, team=row.team, at=now
        )
        self_requeues = 0
        if runs.unasked_exit75(e.outcome, row.stopping, bool(row.cancel_requested)):
            # Exit 75 that no one asked for: the job requeues itself. Bounded, or a job that
            # always exits 75 would be relaunched forever.
            self_requeues = 1 + self._self_requeues(s, row.id)
        limits = runs.RetryLimits(
            self.settings.max_retries,
            self.retry_backoff_base_s,
            self.retry_backoff_max_s,
            self.max_exit75_requeues,
        )
        v = runs.judge_exit(
            e.outcome,
            detail,
            cancel_requested=bool(row.cancel_requested),
            self_requeues=self_requeues,
            failures=row.failures,
            limits=limits,
        )
        store.move(s, row, v.state, v.detail, now)
        row.preemptions += v.count_preemption
        row.failures += v.count_failure
        row.stopping = None
        if v.final:
            row.ended_at = now
            self.jobs.pop(row.id, None)
        else:
            assert v.requeue is not None
            self._requeue(s, row, job, v.requeue, now, v.delay_s)

    @staticmethod
    def _self_requeues(s: Session, job_id: int) -> int:
        """Earlier requeues of this job after an exit 75 that no stop request asked for."""
        n = s.scalar(
            select(func.count())
            .select_from(m.JobTransition)
            .where(
                m.JobTransition.job_id == job_id,
                m.JobTransition.dst == JobState.REQUEUED.value,
                m.JobTransition.reason.startswith(runs.SELF_REQUEUE),
            )
        )
        return int(n or 0)
