"""The scheduler loop's exit side: cancel requests, process exits, releases and requeues (with
their retry backoff). A mixin of `cortex.control.loop.SchedulerLoop`, split out along the seam
between deciding what runs (loop.py, loop_launch.py) and recording how runs ended (here)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store
from cortex.control.config import Settings
from cortex.control.mirror import Mirror
from cortex.drive import run_estimate, runs
from cortex.workload.job import Job
from cortex.workload.states import JobState

log = logging.getLogger("cortex.control")

CANCEL_SCAN_S = 30.0


class ExitsMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    settings: Settings
    mirror: Mirror
    dirty: bool
    executor: Any
    retry_backoff_base_s: float
    retry_backoff_max_s: float
    max_exit75_requeues: int
    cancel_hint: set[int]
    _hint_lock: threading.Lock
    _last_cancel_scan: float
    _swaps: dict[int, tuple[int, Any]]
    progress: Any  # ProgressBook (loop.py)

    if TYPE_CHECKING:  # SchedulerLoop's

        def wake(self) -> None: ...
        def park_refused_class(self, row: m.Job, job: Job) -> bool: ...
        def _attempt_ended(
            self, s: Session, row: m.Job, e: Any, now: float, started: float | None = None
        ) -> runs.Blame: ...
        def _swap_in(
            self, s: Session, row: m.Job, job: Job, swap: tuple[int, Any], now: float
        ) -> None: ...
        def speed(self, kind: str, _flavor: int) -> float: ...

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
        if now - self._last_cancel_scan >= CANCEL_SCAN_S:
            self._last_cancel_scan = now
            return store.cancel_candidates(r, None)
        return store.cancel_candidates(r, sorted(hint)) if hint else []

    def _cancels(self, s: Session, ids: list[int], now: float) -> list[tuple[int, int, str]]:
        if not ids:
            return []
        stops = []
        for row in store.jobs_by_id(s, ids):
            if row.state == JobState.RUNNING.value:
                row.stopping = "cancel"
                stops.append((row.id, row.attempt, "cancel"))
                store.event(s, "stop", "SIGTERM: cancel", job_id=row.id, team=row.team, at=now)
                continue
            if not runs.unfinished(row.state):
                continue
            if self.mirror.withdraw(row.id):  # it held capacity: close its allocation too
                store.close_allocations(s, row.id, now)
            store.move(s, row, JobState.CANCELLED, "cancelled before it ran", now)
            row.ended_at = now
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
        self.mirror.release(job_id)
        store.close_allocations(s, job_id, now)
        self.dirty = True

    def _requeue(
        self, s: Session, row: m.Job, job: Job | None, reason: str, now: float, delay_s: float = 0
    ) -> None:
        """Back to the queue; with a delay, the job waits it out before it is scheduled."""
        store.move(s, row, JobState.REQUEUED, runs.requeue_reason(reason, delay_s), now)
        row.stopping = None
        if job is not None:
            job.state = JobState.REQUEUED
            runs.requeued(job)
            if self.park_refused_class(row, job):  # loop_gates.py: not at a class taken away
                self.mirror.forget(job.id)
            else:
                self.mirror.requeue(job, now + delay_s if delay_s > 0 else None)

    def _book_run(
        self,
        row: m.Job,
        job: Job,
        started: float | None,
        gang: int,
        now: float,
        last_checkpoint_s: float | None,
    ) -> None:
        """A run of `row` ended (begun at `started` on `gang` GPUs) and the job waits again:
        book what backfill's estimate starts from next, as the twin books a run it stops
        (drive/run_estimate.py): the compute the run kept by its last checkpoint (when it kept
        work by judge_exit's rule, `runs.kept_work`) as work done, and its measured startup
        (start to first reported step) as the restart overhead owed at the next start (a run
        that reported no step leaves the last one owed). Kept on the row too, for a restart."""
        if started is None:
            return
        p = self.progress.current(row.id, row.attempt, started, now)
        first = p.first_at if p is not None else None
        kept = 0.0
        if runs.kept_work(started, last_checkpoint_s, now):
            assert last_checkpoint_s is not None
            writes = p.checkpoints if p is not None else 0
            write = job.ckpt_write_s or 0.0
            kept = run_estimate.kept_compute_s(started, first, last_checkpoint_s, writes, write)
        speed = run_estimate.run_speed(job, self.speed(job.kind, job.run_flavor), gang or job.gpus)
        run_estimate.book_kept(job, kept, speed)
        if first is not None and first >= started:
            job.owed_overhead_s = first - started
        row.work_done_s, row.restart_owed_s = job.done_s, job.owed_overhead_s

    # ---- exits -----------------------------------------------------------------------------
    def _exit(self, s: Session, e: Any, now: float) -> None:
        row = s.get(m.Job, e.job_id)
        if row is None or row.attempt != e.attempt or row.state != JobState.RUNNING.value:
            log.info("stale exit %s", e)
            return
        job = self.mirror.jobs.get(row.id)
        # Goodput and node health (loop_health.py) before the mirror lets the job's placement
        # go (a hot-spare swap reads it); closing the allocation rows first tells it when the
        # attempt started.
        started = store.close_allocations(s, row.id, now).get(row.attempt)
        blame = self._attempt_ended(s, row, e, now, started)
        self.mirror.release(row.id)
        self.dirty = True
        row.exit_code = e.exit_code
        detail = f"{e.outcome}: {e.detail}" if e.detail else e.outcome
        store.event(
            s, "exit", f"attempt {e.attempt} {detail}", job_id=row.id, team=row.team, at=now
        )
        # Exit 75 that no one asked for: the job requeues itself. Bounded (in a row without
        # progress, as failures), or a job that always exits 75 would be relaunched forever.
        unasked = runs.unasked_exit75(e.outcome, row.stopping, bool(row.cancel_requested))
        limits = runs.RetryLimits(
            self.settings.max_retries,
            self.retry_backoff_base_s,
            self.retry_backoff_max_s,
            self.max_exit75_requeues,
        )
        # Did the attempt keep work? The job's newest checkpoint known to progress.py (its
        # metrics file was read up to the exit by goodput's record above; API reports too),
        # against when the attempt started. An exit that may not retry (a time limit,
        # loop_limits.py) says so, and keeps no work for this rule.
        no_retry = getattr(e, "no_retry", False)
        ckpt = None if no_retry else self.progress.known_checkpoint_at(row.id)
        v = runs.judge_exit(
            e.outcome,
            detail,
            cancel_requested=bool(row.cancel_requested),
            exit75_unasked=unasked,
            self_requeues=row.self_requeues_in_a_row,
            failures=row.failures_in_a_row,
            limits=limits,
            blame=blame,  # a node's failure spends no retry and waits no backoff
            run_start_s=started,
            last_checkpoint_s=ckpt,
            run_end_s=now,  # a checkpoint stamped later is no work of this run's
        )
        store.move(s, row, v.state, v.detail, now)
        row.preemptions += v.count_preemption
        row.failures += v.count_failure  # every failure of the job's own, shown to users
        row.failures_in_a_row = v.in_a_row  # those since its last progress: the retries spent
        row.self_requeues_in_a_row = v.self_requeues
        row.stopping = None
        if v.final:
            row.ended_at = now
            self.mirror.forget(row.id)
        else:
            assert v.requeue is not None
            if job is not None:
                self._book_run(row, job, started, job.run_gpus, now, ckpt)
            swap = self._swaps.pop(row.id, None)  # a gang that lost a node (loop_health.py)
            self._requeue(s, row, job, v.requeue, now, 0.0 if swap else v.delay_s)
            if swap is not None and job is not None:
                self._swap_in(s, row, job, swap, now)
        self._swaps.pop(row.id, None)
