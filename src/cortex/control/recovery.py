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
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store
from cortex.control.loop import SchedulerLoop
from cortex.drive import intake, runs
from cortex.workload.job import Job
from cortex.workload.states import JobState

log = logging.getLogger("cortex.control")


def register_node(s: Session, loop: SchedulerLoop, kind: str) -> None:
    node = s.scalar(select(m.Node).where(m.Node.name == loop.node_name))
    now = loop.clock.time()
    count = len(loop.all_devices)
    if node is None:
        node = m.Node(
            name=loop.node_name,
            flavor=loop.flavor,
            gpus=count,
            kind=kind,
            healthy=True,
            schedulable=True,
            last_seen=now,
        )
        s.add(node)
        s.flush()
        store.event(s, "node", f"node {loop.node_name} registered: {count} x {loop.flavor}", at=now)
    else:
        node.flavor, node.gpus, node.kind = loop.flavor, count, kind
        node.healthy, node.last_seen = True, now
    have = {
        a.index for a in s.scalars(select(m.Accelerator).where(m.Accelerator.node_id == node.id))
    }
    for d in loop.all_devices:
        if d not in have:
            s.add(m.Accelerator(node_id=node.id, index=d, flavor=loop.flavor))
    loop.node_id = node.id
    loop.schedulable = node.schedulable


def _adopt(loop: SchedulerLoop, handle: dict[str, Any] | None) -> bool:
    if handle is None:
        return False
    try:
        return bool(loop.executor.adopt(loop.handle_from_dict(handle)))
    except Exception:
        log.exception("adopt failed")
        return False


def _kill(loop: SchedulerLoop, handle: dict[str, Any] | None) -> None:
    if handle is None:
        return
    try:
        loop.executor.kill(loop.handle_from_dict(handle))
    except Exception:
        log.exception("kill of an unadoptable handle failed")


def _live_handles(loop: SchedulerLoop) -> list[Any]:
    try:
        return list(loop.executor.live_handles())
    except Exception:
        log.exception("listing live runs failed")
        return []


def _find_run(loop: SchedulerLoop, job_id: int, attempt: int) -> Any:
    """The executor's record of one attempt, whether its runner lives or not."""
    find = getattr(loop.executor, "find_run", None)
    if find is None:
        return None
    try:
        return find(job_id, attempt)
    except Exception:
        log.exception("reading the run dir of job %s attempt %s failed", job_id, attempt)
        return None


_RETRY_IN = re.compile(r"; retry in ([0-9][0-9.e+-]*) s$")


def _retry_until(s: Session, row: m.Job) -> float | None:
    """When a requeued job's retry delay ends: its last move's reason says how long it was
    (loop_exits._requeue), the transition's time when it started."""
    if row.state != JobState.REQUEUED.value or not row.reason:
        return None
    found = _RETRY_IN.search(row.reason)
    if found is None:
        return None
    at = s.scalar(select(func.max(m.JobTransition.at)).where(m.JobTransition.job_id == row.id))
    try:
        return float(at) + float(found.group(1)) if at is not None else None
    except ValueError:
        return None


def _take_back(
    s: Session, loop: SchedulerLoop, row: m.Job, job: Job, alloc: m.Allocation, now: float
) -> None:
    """An adopted run holds its devices and capacity in the mirror again (a victim still
    exiting holds its devices only, as in the loop)."""
    loop.jobs[row.id] = job
    est = now + loop.estimate_s(job, 0, job.gpus)
    runs.begin(job, row.started_at or now, 0, alloc.gpus, alloc.gpus, est)
    loop.attempt[row.id] = row.attempt
    for d in alloc.devices or []:
        loop.owner[d] = row.id
    if row.stopping == "preempt":
        loop.stopping.add(row.id)
    else:
        placement = ((0, alloc.gpus),)
        loop.state.start(job, job.queue_idx, 0, placement)
        loop.placement[row.id] = placement
    msg = f"attempt {row.attempt} adopted after restart"
    store.event(s, "adopt", msg, job_id=row.id, team=row.team, at=now)


def _lost(
    s: Session, loop: SchedulerLoop, row: m.Job, job: Job, alloc: m.Allocation | None, now: float
) -> bool:
    """A run the service lost: kill what is left of it and fail it; then cancel the job if
    that was asked, else requeue it. Returns whether it was requeued."""
    _kill(loop, alloc.handle if alloc is not None else None)
    s.execute(
        update(m.Allocation)
        .where(m.Allocation.job_id == row.id, m.Allocation.active.is_(True))
        .values(active=False, released_at=now)
    )
    detail = "process lost while the service was down"
    store.move(s, row, JobState.FAILED, detail, now)
    msg = f"attempt {row.attempt}: {detail}"
    store.event(s, "lost", msg, job_id=row.id, team=row.team, at=now)
    if row.cancel_requested:
        store.move(s, row, JobState.CANCELLED, "cancel requested", now)
        row.ended_at = now
        return False
    # The service, not the job, lost this run: it does not count as a retry.
    store.move(s, row, JobState.REQUEUED, "requeued after service restart", now)
    row.stopping = None
    job.state = JobState.REQUEUED
    return True


def recover(loop: SchedulerLoop) -> dict[str, int]:
    """Rebuild the loop's mirror from the store and reconcile running jobs with the machine."""
    counts = {"pending": 0, "adopted": 0, "lost": 0, "unlaunched": 0, "leaks": 0}
    now = loop.clock.time()
    resend: list[tuple[int, int, str]] = []
    with loop.tick_lock, loop.sessions.begin() as s:
        loop.reset()
        loop.rebuild(s)
        rows = s.scalars(
            select(m.Job).where(m.Job.state.in_(runs.UNFINISHED_VALUES)).order_by(m.Job.id)
        ).all()
        holding: set[int] = set()
        live = {(h.job_id, h.attempt): h for h in _live_handles(loop)}
        for row in rows:
            row.seen = True
            job = loop.mem_job(row)
            reason = loop._resolve(job)
            why = None if reason is None else intake.describe(reason)
            if why is not None and row.state in (JobState.QUEUED.value,):
                # As the loop's _ingest does: a final state has an end time and an event.
                store.move(s, row, JobState.REJECTED, why, now)
                row.ended_at = now
                store.event(s, "rejected", why, job_id=row.id, team=row.team, at=now)
                continue
            if row.state == JobState.ADMITTED.value:
                s.execute(
                    update(m.Allocation)
                    .where(m.Allocation.job_id == row.id, m.Allocation.active.is_(True))
                    .values(active=False, released_at=now)
                )
                store.move(s, row, JobState.REQUEUED, "service restarted before launch", now)
                job.state = JobState.REQUEUED
                counts["unlaunched"] += 1
            if row.state == JobState.RUNNING.value:
                alloc = store.active_allocation(s, row.id)
                key = (row.id, row.attempt)
                if alloc is not None and alloc.handle is None:
                    found = live.get(key) or _find_run(loop, row.id, row.attempt)
                    if found is not None:
                        alloc.handle = found.to_dict()
                        alloc.devices = alloc.devices or list(found.devices)
                live.pop(key, None)
                if (
                    alloc is not None
                    and alloc.attempt == row.attempt
                    and _adopt(loop, alloc.handle)
                ):
                    _take_back(s, loop, row, job, alloc, now)
                    if row.stopping:
                        resend.append((row.id, row.attempt, row.stopping))
                    holding.add(row.id)
                    counts["adopted"] += 1
                    continue
                if not _lost(s, loop, row, job, alloc, now):
                    continue  # cancelled
                counts["lost"] += 1
            if why is not None:
                continue
            loop.jobs[row.id] = job
            until = _retry_until(s, row)
            if until is not None and until > now:
                loop.backoff[row.id] = until  # a restart does not cut a retry delay short
            else:
                loop.pending.add(job)
            counts["pending"] += 1
        leaks = s.execute(
            update(m.Allocation)
            .where(m.Allocation.active.is_(True), m.Allocation.job_id.not_in(holding or {-1}))
            .values(active=False, released_at=now)
        )
        counts["leaks"] = int(getattr(leaks, "rowcount", 0) or 0)
        s.execute(
            update(m.Job).where(m.Job.seen.is_(False), m.Job.state != "queued").values(seen=True)
        )
    for h in live.values():
        log.warning("killing run %s/%s that the store does not hold", h.job_id, h.attempt)
        try:
            loop.executor.kill(h)
        except Exception:
            log.exception("kill of a stray run failed")
    for jid, attempt, why in resend:
        loop._terminate(jid, attempt, why)
    loop.dirty = True
    with loop.tick_lock:
        loop.publish()
    log.info("recovery: %s", counts)
    return counts
