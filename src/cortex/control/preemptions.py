"""Preemption records: every preemption is recorded on its victim with the preemptor, the rule,
the work at stake (time since its last checkpoint, from its progress) and when it will be back
in the queue. The loop calls `record` as it persists a plan's preemptions; `GET /v1/jobs/{id}`
lists them and `cortex events` shows each one's event."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store
from cortex.control.progress import Progress
from cortex.scheduler.reasons import Reason
from cortex.workload.job import Job
from cortex.workload.preempt_rule import cost_s


def since_checkpoint_s(
    now: float, attempt_start_s: float | None, progress: Progress | None
) -> float | None:
    """Seconds of work a stop now would lose: since the newest checkpoint, or since the run
    began when it has written none yet (a checkpoint of an earlier attempt is where this run
    resumed from, so its work starts at the run's start). None when neither is known."""
    checkpoint_at = progress.checkpoint_at if progress is not None else None
    marks = [t for t in (attempt_start_s, checkpoint_at) if t is not None]
    return max(0.0, now - max(marks)) if marks else None


def lost_s(job: Job, now: float, checkpoint_at: float | None, grace_s: float) -> float:
    """What preempting a running job now costs it (seconds of its gang), by the twin's rule
    (workload/preempt_rule.py): the work since its newest checkpoint in this run, unless it
    checkpoints on the signal within the grace period, when only that write. A job that has
    reported no checkpoint in this run has kept nothing of it."""
    done = max(0.0, now - job.run_start_s)
    saved = 0.0 if checkpoint_at is None else min(max(0.0, checkpoint_at - job.run_start_s), done)
    write = job.ckpt_write_s or 0.0
    return cost_s(done, saved, write, grace_s, job.ckpt_on_signal, 0.0)


def record(
    s: Session,
    row: m.Job,
    reason: Reason,
    now: float,
    *,
    requeue_by: float,
    progress: Progress | None,
    attempt_start_s: float | None,
) -> m.Preemption:
    """Store one preemption of `row` (its current attempt) and its event."""
    by = reason.detail.get("by")
    rule = str(reason.detail.get("why") or reason.code.value)[:64]
    lost = since_checkpoint_s(now, attempt_start_s, progress)
    rec = m.Preemption(
        job_id=row.id,
        attempt=row.attempt,
        at=now,
        preemptor_id=by if isinstance(by, int) else None,
        rule=rule,
        since_checkpoint_s=lost,
        checkpoint_step=progress.checkpoint_step if progress is not None else None,
        requeue_by=requeue_by,
    )
    store.add_preemption(s, rec, describe(rec), row.team)
    return rec


def describe(rec: m.Preemption) -> str:
    who = f"job {rec.preemptor_id}" if rec.preemptor_id is not None else "the power budget"
    lost = (
        "work since its last checkpoint unknown"
        if rec.since_checkpoint_s is None
        else f"{rec.since_checkpoint_s / 60:.1f} min since its last checkpoint"
        + (f" (step {rec.checkpoint_step})" if rec.checkpoint_step is not None else "")
    )
    back = time.strftime("%H:%M:%S", time.gmtime(rec.requeue_by))
    return (
        f"preempted by {who} (rule {rec.rule}) in attempt {rec.attempt}; {lost}; "
        f"back in the queue by {back} UTC"
    )


def to_dict(rec: m.Preemption) -> dict[str, Any]:
    return {
        "at": rec.at,
        "attempt": rec.attempt,
        "preemptor_id": rec.preemptor_id,
        "rule": rec.rule,
        "since_checkpoint_s": rec.since_checkpoint_s,
        "checkpoint_step": rec.checkpoint_step,
        "requeue_by": rec.requeue_by,
    }


def on_preempt(
    s: Session,
    row: m.Job,
    reason: Reason,
    now: float,
    *,
    launched: bool,
    grace_s: float,
    progress: Any,
) -> m.Preemption:
    """The loop's hook (`_persist`): a launched victim is back in the queue once it exits, at
    the latest after its grace period; one admitted but never launched loses nothing and is
    back at once. `progress` is the loop's ProgressBook."""
    if not launched:
        return record(s, row, reason, now, requeue_by=now, progress=None, attempt_start_s=now)
    start = store.attempt_started_at(s, row.id, row.attempt)
    got = progress.current(row.id, row.attempt, start or 0.0, now)
    return record(
        s, row, reason, now, requeue_by=now + grace_s, progress=got, attempt_start_s=start
    )
