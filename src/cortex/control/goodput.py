"""Goodput in the control plane: each attempt of a job is recorded as it ends (`record_end`,
called by the loop), with what the job's progress said (its first report, its checkpoints);
the books are computed when asked, with the driver kit's rule (drive/goodput.py), from the
ended attempts' records and the running ones' allocations and progress.

`since` for the fleet: attempts that ended at or after it and running ones are booked whole,
and so are the waits of the jobs they belong to (and of jobs still waiting)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy.orm import Session

from cortex.control import goodput_ledger as ledger
from cortex.control import models as m
from cortex.control import store
from cortex.control import store_health as sh
from cortex.control.progress import Progress
from cortex.drive import goodput as gp
from cortex.drive import runs

ROUND = 6  # significant digits in answers


@cache
def large_job_gpus() -> int:
    """The twin's threshold for an effective-training-time line (sim/data/defaults.csv)."""
    text = resources.files("cortex.sim").joinpath("data/defaults.csv").read_text()
    rows = {r["name"]: r["value"] for r in csv.DictReader(text.splitlines())}
    return int(float(rows["large_job_gpus"]))


def write_s(spec: dict[str, Any], storage_write_gbps: float) -> float:
    """The job's seconds per checkpoint write, by the estimate's rule (`JobSpec.write_s`: its
    `checkpoint_write_s`, else its `checkpoint_size_gb` over the fleet's write bandwidth);
    0 when it declared neither."""
    if not isinstance(spec, dict):
        return 0.0
    w, size = spec.get("checkpoint_write_s"), spec.get("checkpoint_size_gb")
    return ledger.declared_write_s(w, size, storage_write_gbps)


def record_end(
    s: Session,
    row: m.Job,
    outcome: str,
    now: float,
    progress: Any,
    node: str | None = None,
    started: float | None = None,
    *,
    storage_write_gbps: float,
) -> m.AttemptRecord | None:
    """Record the current attempt of `row`, ending now (before the job's state moves on).
    `progress` is the loop's ProgressBook; `started`, when the caller knows it, is when the
    attempt's allocation was made (else it is looked up); `storage_write_gbps` the fleet's
    (its checkpoint writes' seconds, `write_s`). None for an attempt with no allocation
    (never ran)."""
    if started is None:
        started = store.attempt_started_at(s, row.id, row.attempt)
    if started is None or row.attempt < 1:
        return None
    p: Progress | None = None
    try:
        p = progress.current(row.id, row.attempt, started, now) if progress is not None else None
    except Exception:  # a progress file that cannot be read costs the figures, not the exit
        p = None
    rec = m.AttemptRecord(
        job_id=row.id,
        team=row.team,
        attempt=row.attempt,
        gpus=row.gpus,
        started_at=started,
        ended_at=max(now, started),
        outcome=outcome if outcome in gp.OUTCOMES else "failed",
        first_step_at=p.first_at if p is not None else None,
        checkpoint_at=p.checkpoint_at if p is not None else None,
        checkpoints=p.checkpoints if p is not None else 0,
        checkpoint_write_s=write_s(row.spec, storage_write_gbps),
        node=node,
    )
    sh.add_attempt(s, rec)
    return rec


def _ended(r: m.AttemptRecord) -> gp.Attempt:
    return gp.Attempt(
        number=r.attempt,
        gpus=r.gpus,
        started_at=r.started_at,
        ended_at=r.ended_at,
        outcome=r.outcome,
        first_step_at=r.first_step_at,
        checkpoint_at=r.checkpoint_at,
        checkpoints=r.checkpoints,
        checkpoint_write_s=r.checkpoint_write_s,
    )


def _running(
    job: m.Job, started: float, progress: Any, now: float, storage_write_gbps: float
) -> gp.Attempt:
    p: Progress | None = None
    try:
        p = progress.current(job.id, job.attempt, started, now) if progress is not None else None
    except Exception:
        p = None
    return gp.Attempt(
        number=job.attempt,
        gpus=job.gpus,
        started_at=started,
        ended_at=None,
        outcome="running",
        first_step_at=p.first_at if p is not None else None,
        checkpoint_at=p.checkpoint_at if p is not None else None,
        checkpoints=p.checkpoints if p is not None else 0,
        checkpoint_write_s=write_s(job.spec, storage_write_gbps),
    )


@dataclass
class JobBooks:
    job: m.Job
    attempts: list[tuple[gp.Attempt, str | None]]  # with the node blamed
    books: gp.Books
    splits: list[dict[str, float]]
    productive_s: float  # wall seconds of productive work (not GPU-seconds)
    end_s: float


def book_job(
    job: m.Job, records: list[m.AttemptRecord], running_start: float | None, progress: Any,
    now: float, storage_write_gbps: float,
) -> JobBooks:  # fmt: skip
    atts: list[tuple[gp.Attempt, str | None]] = [(_ended(r), r.node) for r in records]
    if running_start is not None and all(a.number != job.attempt for a, _ in atts):
        run = _running(job, running_start, progress, now, storage_write_gbps)
        atts.append((run, None))
    atts.sort(key=lambda x: x[0].number)
    books = gp.Books()
    splits = [books.add(a, now) for a, _ in atts]
    waiting = runs.unfinished(job.state) and job.state not in ("running", "admitted")
    books.queueing_s = gp.queueing_s(job.submitted_at, [a for a, _ in atts], now, waiting)
    end = job.ended_at if job.ended_at is not None else now
    productive = sum(sp["productive"] for sp in splits)
    return JobBooks(job, atts, books, splits, productive, end)


def _r(x: float) -> float:
    return float(f"{x:.{ROUND}g}")


def job_answer(jb: JobBooks, large_gpus: int) -> dict[str, Any]:
    first = jb.attempts[0][0].started_at if jb.attempts else None
    ett = None
    if first is not None:
        ett = _r(gp.effective_training_time(jb.productive_s, first, jb.end_s))
    return {
        "job_id": jb.job.id,
        "team": jb.job.team,
        "name": jb.job.name,
        "state": jb.job.state,
        "gpus": jb.job.gpus,
        "large": jb.job.gpus >= large_gpus,
        "submitted_at": jb.job.submitted_at,
        "first_start_at": first,
        "queueing_s": _r(jb.books.queueing_s),
        "attempts": [
            {
                "attempt": a.number,
                "outcome": a.outcome,
                "started_at": a.started_at,
                "ended_at": a.ended_at,
                "node": node,
                "seconds": {k: _r(v) for k, v in sp.items()},
            }
            for (a, node), sp in zip(jb.attempts, jb.splits, strict=True)
        ],
        "gpu_s": {k: _r(v) for k, v in jb.books.gpu_s.items()},
        "allocated_gpu_s": _r(jb.books.allocated_gpu_s),
        "goodput": _r(jb.books.goodput()),
        "effective_training_time": ett,
    }


def job_goodput(
    s: Session, job: m.Job, progress: Any, now: float, large_gpus: int, storage_write_gbps: float
) -> dict:
    recs = list(sh.attempts_of(s, job.id))
    start = None
    if job.state == "running":
        alloc = store.active_allocation(s, job.id)
        start = alloc.created_at if alloc is not None else None
    return job_answer(book_job(job, recs, start, progress, now, storage_write_gbps), large_gpus)


def fleet_goodput(
    s: Session, team: str | None, since: float, progress: Any, now: float, large_gpus: int,
    storage_write_gbps: float,
) -> dict[str, Any]:  # fmt: skip
    """The fleet's (or one team's) books since `since`, and each large job's line: each job
    booked as `book_job` books it, in one pass over plain rows (goodput_ledger.py); the
    fleet's `storage_write_gbps` prices a running job's declared checkpoint size."""
    by_job = ledger.attempts_by_job(s, team, since)
    rows = ledger.jobs_to_book(s, team, since)
    total = gp.Books()
    large = []
    for job, f in ledger.book_rows(rows, by_job, progress, now, storage_write_gbps):
        ledger.add_to(total, f)
        jid, jteam, name, state, gpus, _sub, ended_at = job[:7]
        if gpus >= large_gpus and f.attempts:
            end = ended_at if ended_at is not None else now
            assert f.first_start_s is not None  # it has attempts
            ett = _r(gp.effective_training_time(f.productive_s, f.first_start_s, end))
            large.append({"job_id": jid, "name": name, "team": jteam, "gpus": gpus,
                          "state": state, "goodput": _r(f.goodput()),
                          "effective_training_time": ett})  # fmt: skip
    losses = {k: _r(total.gpu_s[k]) for k in gp.LOSSES}
    return {
        "team": team,
        "since": since,
        "as_of": now,
        "jobs": len(rows),
        "attempts": total.attempts,
        "gpu_s": {k: _r(v) for k, v in total.gpu_s.items()},
        "allocated_gpu_s": _r(total.allocated_gpu_s),
        "badput_gpu_s": _r(sum(losses.values())),
        "losses_gpu_s": losses,
        "goodput": _r(total.goodput()),
        "queueing_s": _r(total.queueing_s),
        "large_job_gpus": large_gpus,
        "large_jobs": large,
    }
