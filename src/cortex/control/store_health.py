"""The store's queries for goodput and node health (control/goodput.py,
control/node_health.py): measured attempts, job failures attributed to nodes, node drains.
Kept apart from store.py, which is near its size limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control.progress import FUTURE_SLACK_S
from cortex.drive import runs

MAX_ROWS = 100_000  # attempt records one fleet answer reads (newest first)


# ---- progress -----------------------------------------------------------------------------------
def note_checkpoint(s: Session, job_id: int, at: float, now: float) -> None:
    """Keep a checkpoint time the job's tooling reported through the API, if it is the job's
    newest (one conditional UPDATE: reports of one job may race): what control/progress.py
    holds in memory, for `restore` after a restart. A stored time past the service's clock by
    more than FUTURE_SLACK_S (taken before the API refused such reports) is no checkpoint: the
    report replaces it, or it would hide every real one after it."""
    col = m.Job.checkpoint_reported_at
    s.execute(
        update(m.Job)
        .where(m.Job.id == job_id, or_(col.is_(None), col < at, col > now + FUTURE_SLACK_S))
        .values(checkpoint_reported_at=at)
    )


# ---- attempts -----------------------------------------------------------------------------------
def add_attempt(s: Session, rec: m.AttemptRecord) -> None:
    """One ended attempt; a second record of the same attempt (an exit seen twice across a
    restart) is ignored: one INSERT ... ON CONFLICT DO NOTHING on the (job, attempt) key, not a
    lookup and an insert, as every exit pays for it inside the scheduler's tick."""
    values = {c.key: getattr(rec, c.key) for c in m.AttemptRecord.__table__.columns}
    del values["id"]
    values["checkpoints"] = values["checkpoints"] or 0
    values["checkpoint_write_s"] = values["checkpoint_write_s"] or 0.0
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        s.execute(sqlite_insert(m.AttemptRecord).values(**values).on_conflict_do_nothing())
    elif dialect == "postgresql":
        s.execute(pg_insert(m.AttemptRecord).values(**values).on_conflict_do_nothing())
    else:  # another database: look first
        key = (m.AttemptRecord.job_id == rec.job_id, m.AttemptRecord.attempt == rec.attempt)
        if s.scalar(select(m.AttemptRecord.id).where(*key)) is None:
            s.add(rec)


def attempts_of(s: Session, job_id: int) -> Sequence[m.AttemptRecord]:
    return s.scalars(
        select(m.AttemptRecord)
        .where(m.AttemptRecord.job_id == job_id)
        .order_by(m.AttemptRecord.attempt)
    ).all()


def attempts_since(s: Session, team: str | None, since: float) -> Sequence[m.AttemptRecord]:
    """Attempts that ended at or after `since` (one team's, or all), newest first, bounded."""
    q = select(m.AttemptRecord).where(m.AttemptRecord.ended_at >= since)
    if team is not None:
        q = q.where(m.AttemptRecord.team == team)
    return s.scalars(q.order_by(m.AttemptRecord.ended_at.desc()).limit(MAX_ROWS)).all()


def running_jobs(s: Session, team: str | None) -> list[tuple[m.Job, float]]:
    """Running jobs and when their current attempt's allocation was made."""
    q = (
        select(m.Job, m.Allocation.created_at)
        .join(m.Allocation, m.Allocation.job_id == m.Job.id)
        .where(m.Job.state == "running", m.Allocation.active.is_(True))
        .where(m.Allocation.attempt == m.Job.attempt)
    )
    if team is not None:
        q = q.where(m.Job.team == team)
    seen: dict[int, tuple[m.Job, float]] = {}
    for job, at in s.execute(q.limit(MAX_ROWS)).all():
        prev = seen.get(job.id)
        seen[job.id] = (job, at if prev is None else min(prev[1], at))
    return list(seen.values())


def jobs_for(s: Session, team: str | None, since: float) -> Sequence[m.Job]:
    """The jobs a fleet answer books: those with attempts that ended since `since`, those
    still waiting or running, and those submitted since then. (A subquery, not a list of ids,
    which could run to MAX_ROWS bound parameters.)"""
    ended = select(m.AttemptRecord.job_id).where(m.AttemptRecord.ended_at >= since)
    cond: list[Any] = [
        m.Job.state.in_(runs.UNFINISHED_VALUES),
        m.Job.submitted_at >= since,
        m.Job.id.in_(ended),
    ]
    q = select(m.Job).where(or_(*cond))
    if team is not None:
        q = q.where(m.Job.team == team)
    return s.scalars(q.limit(MAX_ROWS)).all()


# ---- node failures and drains -------------------------------------------------------------------
def add_node_failure(s: Session, rec: m.NodeFailure) -> None:
    s.add(rec)


def spend_strikes(s: Session, node: str) -> None:
    """The node's strikes so far drained it: they no longer count toward the next drain."""
    s.execute(
        update(m.NodeFailure)
        .where(m.NodeFailure.node == node, m.NodeFailure.strike.is_(True))
        .values(spent=True)
    )


def node_failures_since(s: Session, since: float) -> Sequence[m.NodeFailure]:
    return s.scalars(
        select(m.NodeFailure)
        .where(m.NodeFailure.at >= since)
        .order_by(m.NodeFailure.at)
        .limit(MAX_ROWS)
    ).all()


def drains(s: Session) -> dict[str, m.NodeDrain]:
    return {d.node: d for d in s.scalars(select(m.NodeDrain)).all()}


def put_drain(
    s: Session, node: str, reason: str, by: str, at: float, return_at: float | None
) -> m.NodeDrain:
    row = s.get(m.NodeDrain, node)
    if row is None:
        row = m.NodeDrain(node=node, reason=reason[:500], by=by, drained_at=at, return_at=return_at)
        s.add(row)
    else:
        row.reason, row.by, row.drained_at, row.return_at = reason[:500], by, at, return_at
    return row


def remove_drain(s: Session, node: str) -> bool:
    res = s.execute(delete(m.NodeDrain).where(m.NodeDrain.node == node))
    return bool(getattr(res, "rowcount", 0))


def team_exists(s: Session, name: str) -> bool:
    return s.scalar(select(m.Team.id).where(m.Team.name == name)) is not None
