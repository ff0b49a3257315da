"""Crash recovery at start: make the store and the machine agree before the first tick.

After a kill -9 the store may hold any of the loop's intents. For each job not yet final:
- queued or requeued: back into the pending queues;
- admitted (capacity reserved, never launched): requeued, its allocation closed;
- running with a handle the executor can adopt (same pid and process start time): kept, and a
  SIGTERM that was committed but maybe not sent is sent again;
- running whose handle never reached the store (killed between launch and commit): the
  executor's run dir for that attempt still names the run, live or finished (`find_run`), so it
  is adopted all the same, and a verdict it wrote while the service was down is recorded (an
  exit 0 completes the job: it is never run again);
- running otherwise (the process is gone with no verdict): whatever is left of it is killed,
  the run is marked failed and the job requeued.
Runs the executor finds that the store does not want are killed: no job runs twice.
Allocation rows left active for jobs that hold nothing are closed: no allocation leaks.

A mixin of `cortex.control.loop.SchedulerLoop` (`loop.recover()`): recovery rebuilds the loop's
mirror (control/mirror.py) and reads and writes the store only through control/store.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from cortex.control import goodput, store, store_gates
from cortex.control import models as m
from cortex.control.clock import Clock
from cortex.control.db import Sessions
from cortex.control.loop_launch import LAUNCHING
from cortex.control.mirror import Mirror
from cortex.control.progress import FUTURE_SLACK_S
from cortex.drive import intake, runs
from cortex.scheduler.reasons import Reason
from cortex.workload.job import Job
from cortex.workload.states import PENDING, JobState

log = logging.getLogger("cortex.control")


def _retry_until(s: Session, row: m.Job) -> float | None:
    """When a requeued job's retry delay ends: its last move's reason says how long it was
    (loop_exits._requeue), the transition's time when it started."""
    if row.state != JobState.REQUEUED.value or not row.reason:
        return None
    delay_s = runs.retry_delay_s(row.reason)
    if delay_s is None:
        return None
    at = store.last_transition_at(s, row.id)
    return at + delay_s if at is not None else None


class RecoveryMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    mirror: Mirror
    executor: Any
    topo: Any
    sessions: Sessions
    clock: Clock
    handle_from_dict: Any
    node_name: str
    flavor: str
    all_devices: list[int]
    node_id: int
    schedulable: bool
    dirty: bool
    tick_lock: Any
    _starting: set[tuple[int, int]]

    if TYPE_CHECKING:  # SchedulerLoop's and its mixins'

        def reset(self) -> None: ...
        def rebuild(self, s: Session) -> None: ...
        def publish(self) -> None: ...
        def mem_job(self, row: Any) -> Job: ...
        def _resolve(self, job: Job) -> Reason | None: ...
        def estimate_s(self, job: Job, flavor: int, gang: int) -> float: ...
        def _terminate(self, job_id: int, attempt: int, why: str) -> None: ...
        def park_rows(self, rows: dict[int, Any], jobs: dict[int, Job]) -> set[int]: ...
        def park_refused_class(self, row: Any, job: Job) -> bool: ...
        def _recover_burn_ins(self, s: Session, live: dict[Any, Any], now: float) -> None: ...
        def _book_run(
            self,
            row: m.Job,
            job: Job,
            started: float | None,
            gang: int,
            now: float,
            last_checkpoint_s: float | None,
        ) -> None: ...

    def register_node(self, s: Session, kind: str) -> None:
        node = store.register_node(
            s, self.node_name, self.flavor, self.all_devices, kind, self.clock.time()
        )
        self.node_id = node.id
        self.schedulable = node.schedulable

    # ---- the executor, failures logged (recovery goes on whatever one run does) ------------
    def _adopt(self, handle: dict[str, Any] | None) -> bool:
        if handle is None:
            return False
        try:
            return bool(self.executor.adopt(self.handle_from_dict(handle)))
        except Exception:
            log.exception("adopt failed")
            return False

    def _kill_handle(self, handle: dict[str, Any] | None) -> None:
        if handle is None:
            return
        try:
            self.executor.kill(self.handle_from_dict(handle))
        except Exception:
            log.exception("kill of an unadoptable handle failed")

    def _live_handles(self) -> list[Any]:
        try:
            return list(self.executor.live_handles())
        except Exception:
            log.exception("listing live runs failed")
            return []

    def _find_run(self, job_id: int, attempt: int) -> Any:
        """The executor's record of one attempt, whether its runner lives or not."""
        find = getattr(self.executor, "find_run", None)
        if find is None:
            return None
        try:
            return find(job_id, attempt)
        except Exception:
            log.exception("reading the run dir of job %s attempt %s failed", job_id, attempt)
            return None

    # ---- one job ----------------------------------------------------------------------------
    def _take_back(self, s: Session, row: m.Job, job: Job, alloc: m.Allocation, now: float) -> None:
        """An adopted run holds its devices and capacity in the mirror again (a victim still
        exiting holds its devices only, as in the loop)."""
        est = now + self.estimate_s(job, 0, job.gpus)
        # The attempt's start (its allocation's claim, as the loop's runs.begin had it), not
        # the job's first (`started_at`): the queue's min_runtime_s protection counts from it.
        runs.begin(job, alloc.created_at, 0, alloc.gpus, alloc.gpus, est)
        exiting = row.stopping == "preempt"
        self.mirror.take_back(job, row.attempt, alloc.gpus, list(alloc.devices or []), exiting)
        msg = f"attempt {row.attempt} adopted after restart"
        store.event(s, "adopt", msg, job_id=row.id, team=row.team, at=now)
        if row.reason.startswith(LAUNCHING):  # not seen running before the restart
            self._starting.add((row.id, row.attempt))

    def _lost(
        self, s: Session, row: m.Job, job: Job, alloc: m.Allocation | None, now: float
    ) -> bool:
        """A run the service lost: kill what is left of it and fail it; then cancel the job if
        that was asked, else requeue it. Returns whether it was requeued."""
        self._kill_handle(alloc.handle if alloc is not None else None)
        # Booked as failed at the restart (when it died is unknown): control/goodput.py.
        gbps = self.topo.spec.storage_write_gbps
        goodput.record_end(
            s, row, "failed", now, getattr(self, "progress", None), storage_write_gbps=gbps
        )
        store.close_allocations(s, row.id, now)
        detail = "process lost while the service was down"
        store.move(s, row, JobState.FAILED, detail, now)
        msg = f"attempt {row.attempt}: {detail}"
        store.event(s, "lost", msg, job_id=row.id, team=row.team, at=now)
        if row.cancel_requested:
            store.move(s, row, JobState.CANCELLED, "cancel requested", now)
            row.ended_at = now
            return False
        progress = getattr(self, "progress", None)
        if progress is not None and alloc is not None:
            # What the run kept and its startup, as for a run whose exit was seen (loop_exits.py).
            ckpt = progress.known_checkpoint_at(row.id)
            self._book_run(row, job, alloc.created_at, alloc.gpus, now, ckpt)
        # The service, not the job, lost this run: it does not count as a retry.
        store.move(s, row, JobState.REQUEUED, "requeued after service restart", now)
        row.stopping = None
        job.state = JobState.REQUEUED
        return True

    def _running(
        self, s: Session, row: m.Job, job: Job, live: dict[tuple[int, int], Any], now: float
    ) -> str:
        """A job the store says runs: 'adopted', 'lost' (requeued) or 'cancelled'."""
        alloc = store.active_allocation(s, row.id)
        key = (row.id, row.attempt)
        if alloc is not None and alloc.handle is None:
            found = live.get(key) or self._find_run(row.id, row.attempt)
            if found is not None:
                alloc.handle = found.to_dict()
                alloc.devices = alloc.devices or list(found.devices)
        live.pop(key, None)
        if alloc is not None and alloc.attempt == row.attempt and self._adopt(alloc.handle):
            self._take_back(s, row, job, alloc, now)
            return "adopted"
        return "lost" if self._lost(s, row, job, alloc, now) else "cancelled"

    # ---- the whole store ------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Rebuild the mirror from the store and reconcile running jobs with the machine."""
        counts = {
            "pending": 0, "adopted": 0, "lost": 0, "unlaunched": 0, "leaks": 0, "invalid_class": 0
        }  # fmt: skip
        if getattr(self, "fleet_pending", False):
            # No fleet yet (loop_fleet.py): stored devices name nothing; runs at the first one.
            log.info("recovery: deferred until the executor's first fleet")
            return counts
        now = self.clock.time()
        resend: list[tuple[int, int, str]] = []
        with self.tick_lock, self.sessions.begin() as s:
            self.reset()
            self.rebuild(s)
            holding: set[int] = set()
            live = {(h.job_id, h.attempt): h for h in self._live_handles()}
            evictions = store.evictions_by_job(s)
            gates = store_gates.gated(s)  # parked again, not queued (loop_gates.py)
            self.park_rows(gates, {})  # every time limit noted, running jobs' included
            progress = getattr(self, "progress", None)
            for row in store.unfinished_jobs(s):
                row.seen = True
                reported = row.checkpoint_reported_at
                if progress is not None and reported is not None:
                    # An API report of a checkpoint (memory) before the restart: judge_exit
                    # still sees that the running attempt kept work. One dated past the clock
                    # (stored before the API refused those) is no checkpoint: as the newest
                    # known it would hide every real one; the row keeps it until a report
                    # replaces it (store_health.note_checkpoint).
                    if reported <= now + FUTURE_SLACK_S:
                        progress.restore(row.id, reported)
                    else:
                        log.warning(
                            "job %s: reported checkpoint %s is in the future", row.id, reported
                        )
                job = self.mem_job(row)
                job.evictions = evictions.get(row.id, 0)
                reason = self._resolve(job)
                why = None if reason is None else intake.describe(reason)
                if why is not None and row.state == JobState.QUEUED.value:
                    # As the loop's _ingest does: a final state has an end time and an event.
                    store.move(s, row, JobState.REJECTED, why, now)
                    row.ended_at = now
                    store.event(s, "rejected", why, job_id=row.id, team=row.team, at=now)
                    continue
                if row.state == JobState.ADMITTED.value:
                    store.close_allocations(s, row.id, now)
                    store.move(s, row, JobState.REQUEUED, "service restarted before launch", now)
                    job.state = JobState.REQUEUED
                    counts["unlaunched"] += 1
                if row.state == JobState.RUNNING.value:
                    outcome = self._running(s, row, job, live, now)
                    if outcome == "adopted":
                        if row.stopping:
                            resend.append((row.id, row.attempt, row.stopping))
                        holding.add(row.id)
                        counts["adopted"] += 1
                        continue
                    if outcome == "cancelled":
                        continue
                    counts["lost"] += 1
                if why is not None:
                    continue
                if row.id in gates:
                    waiting = JobState(row.state) in PENDING
                    if self.park_rows({row.id: gates[row.id]}, {row.id: job} if waiting else {}):
                        continue
                if self.park_refused_class(row, job):  # loop_gates.py: its class was taken away
                    counts["invalid_class"] += 1
                    continue
                until = _retry_until(s, row)
                # A restart does not cut a retry delay short.
                self.mirror.enqueue(job, until if until is not None and until > now else None)
                counts["pending"] += 1
            self._recover_burn_ins(s, live, now)  # loop_burnin.py: adopted, or lost
            counts["leaks"] = store.close_leaked_allocations(s, holding, now)
            store.mark_seen_unless_queued(s)
        self._kill_strays(live.values())
        for jid, attempt, why in resend:
            self._terminate(jid, attempt, why)
        self.dirty = True
        with self.tick_lock:
            self.publish()
        log.info("recovery: %s", counts)
        return counts

    def _kill_strays(self, handles: Any) -> None:
        """Runs the executor holds that the store does not want: no job runs twice."""
        for h in handles:
            log.warning("killing run %s/%s that the store does not hold", h.job_id, h.attempt)
            try:
                self.executor.kill(h)
            except Exception:
                log.exception("kill of a stray run failed")
