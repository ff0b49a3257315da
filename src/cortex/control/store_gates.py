"""The store's queries for job gates (holds, afterok dependencies, job-array limits): kept
apart from store.py, which is near its size limit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.workload.states import JobState

# Ids per IN (...) list: SQLite takes at most 32,766 bound parameters a statement, and many
# arrays can park more jobs than that.
CHUNK = 5_000


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ids = list(ids)
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


# A job left failed has no retry left (a retried run is requeued in the same step).
FINAL_NOT_OK = (JobState.FAILED.value, JobState.CANCELLED.value, JobState.REJECTED.value)
FINAL = (JobState.COMPLETED.value, *FINAL_NOT_OK)


def insert_gates(s: Session, reqs: Sequence[Any], outs: Sequence[Any]) -> None:
    """Gate rows for the submissions that have any (`outs` are their jobs, in order)."""
    for req, out in zip(reqs, outs, strict=True):
        member = req._array_member
        if not (req.hold or req.after_ok or member or req.time_limit_s):
            continue
        key, index, limit = member if member else (None, None, None)
        s.add(
            m.JobGate(
                job_id=out.id,
                held=req.hold,
                after_ok=sorted(set(req.after_ok)),
                array_key=key,
                array_index=index,
                array_limit=limit,
                time_limit_s=req.time_limit_s,
            )
        )


def is_gated(g: m.JobGate) -> bool:
    """Does the row keep its job out of the queues (a time limit alone does not)?"""
    return bool(g.held or g.after_ok or g.array_key)


def gated(s: Session, ids: Iterable[int] | None = None) -> dict[int, m.JobGate]:
    """The gate rows of these jobs (of all unfinished jobs, with None)."""
    if ids is not None:
        return gates(s, ids)
    q = select(m.JobGate).join(m.Job, m.Job.id == m.JobGate.job_id)
    return {g.job_id: g for g in s.scalars(q.where(m.Job.state.not_in(FINAL)))}


def gates(s: Session, ids: Iterable[int]) -> dict[int, m.JobGate]:
    out: dict[int, m.JobGate] = {}
    for part in _chunks(ids):
        out.update(
            (g.job_id, g) for g in s.scalars(select(m.JobGate).where(m.JobGate.job_id.in_(part)))
        )
    return out


def waiting(s: Session, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Job id: (state, reason), columns only: the loop judges thousands of parked jobs and
    loads the ORM row only of those it changes (ten times cheaper at 10,000)."""
    out: dict[int, tuple[str, str]] = {}
    for part in _chunks(ids):
        q = select(m.Job.id, m.Job.state, m.Job.reason).where(m.Job.id.in_(part))
        out.update((jid, (state, reason)) for jid, state, reason in s.execute(q))
    return out


def gate_rows(s: Session, ids: Iterable[int]) -> dict[int, Any]:
    """The gates of these jobs as plain rows (held, after_ok, array_key, array_limit)."""
    g = m.JobGate
    out: dict[int, Any] = {}
    for part in _chunks(ids):
        q = select(g.job_id, g.held, g.after_ok, g.array_key, g.array_limit)
        out.update((r.job_id, r) for r in s.execute(q.where(g.job_id.in_(part))))
    return out


def gate(s: Session, job_id: int) -> m.JobGate | None:
    return s.get(m.JobGate, job_id)


def states(s: Session, ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    """Job id: (state, team) for these ids (missing ones left out)."""
    out: dict[int, tuple[str, str]] = {}
    for part in _chunks(ids):
        q = select(m.Job.id, m.Job.state, m.Job.team).where(m.Job.id.in_(part))
        out.update((jid, (state, team)) for jid, state, team in s.execute(q))
    return out


def array_unfinished(s: Session, key: str) -> int:
    """Members of a job array not final (queued, parked or not, admitted or running)."""
    q = (
        select(func.count())
        .select_from(m.JobGate)
        .join(m.Job, m.Job.id == m.JobGate.job_id)
        .where(m.JobGate.array_key == key, m.Job.state.not_in(FINAL))
    )
    return int(s.scalar(q) or 0)


def to_dict(g: m.JobGate | None) -> dict[str, Any] | None:
    if g is None:
        return None
    return {
        "held": g.held,
        "after_ok": list(g.after_ok or []),
        "array_key": g.array_key,
        "array_index": g.array_index,
        "array_limit": g.array_limit,
        "time_limit_s": g.time_limit_s,
    }
