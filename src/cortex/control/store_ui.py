"""The dashboard's reads (control/ui/): paged job lists and incidents, with the same team rule
as the API (`team` None: every team's, for the admin; the caller decides who may ask). Kept
apart from store.py, which is near the 600-line limit."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from cortex.control import models as m

# Event kinds the incident feed shows: a node lost, back or cordoned (not its registration), a
# run that ended in anything but success (exit events of completed runs are left out below), a
# job lost across a restart, a preemption, a rejection and a failed scheduler tick.
INCIDENT_KINDS = ("node", "exit", "lost", "preempt", "rejected", "tick")


def jobs_page(
    s: Session, team: str | None, states: Sequence[str] | None, offset: int, limit: int
) -> tuple[Sequence[m.Job], int]:
    """One page of jobs, newest first, and how many match in all."""
    where: list[ColumnElement[bool]] = []
    if team is not None:
        where.append(m.Job.team == team)
    if states:
        where.append(m.Job.state.in_(list(states)))
    total = s.scalar(select(func.count()).select_from(m.Job).where(*where)) or 0
    rows = s.scalars(
        select(m.Job).where(*where).order_by(m.Job.id.desc()).offset(offset).limit(limit)
    ).all()
    return rows, int(total)


def _incident() -> ColumnElement[bool]:
    ok_exit = and_(m.Event.kind == "exit", m.Event.message.like("% completed%"))
    registered = and_(m.Event.kind == "node", m.Event.message.like("% registered:%"))
    return and_(m.Event.kind.in_(INCIDENT_KINDS), not_(ok_exit), not_(registered))


def incidents(
    s: Session, team: str | None, after_id: int, limit: int, since: float | None = None
) -> Sequence[m.Event]:
    """Incidents newer than `after_id`, oldest first (the feed appends them in order). A team
    sees its own jobs' incidents and the fleet's (node, tick: events with no team), never
    another team's."""
    q = select(m.Event).where(_incident(), m.Event.id > after_id)
    if team is not None:
        q = q.where(or_(m.Event.team == team, m.Event.team.is_(None)))
    if since is not None:
        q = q.where(m.Event.at >= since)
    return s.scalars(q.order_by(m.Event.id).limit(limit)).all()


def latest_incidents(s: Session, team: str | None, limit: int) -> Sequence[m.Event]:
    """The newest `limit` incidents, newest first."""
    q = select(m.Event).where(_incident())
    if team is not None:
        q = q.where(or_(m.Event.team == team, m.Event.team.is_(None)))
    return s.scalars(q.order_by(m.Event.id.desc()).limit(limit)).all()


def count_incidents(s: Session, team: str | None, since: float) -> int:
    q = select(func.count()).select_from(m.Event).where(_incident(), m.Event.at >= since)
    if team is not None:
        q = q.where(or_(m.Event.team == team, m.Event.team.is_(None)))
    return int(s.scalar(q) or 0)


def jobs_by_state(s: Session, team: str | None) -> dict[str, int]:
    q = select(m.Job.state, func.count()).group_by(m.Job.state)
    if team is not None:
        q = q.where(m.Job.team == team)
    return {str(st): int(n) for st, n in s.execute(q).all()}


def running_preemptible_gpus(s: Session, classes: Sequence[str]) -> dict[str, int]:
    """Per team: GPUs its running jobs of the given (preemptible) priority classes hold."""
    if not classes:
        return {}
    q = (
        select(m.Job.team, func.sum(m.Job.gpus))
        .where(m.Job.state == "running", m.Job.priority_class.in_(list(classes)))
        .group_by(m.Job.team)
    )
    return {str(t): int(n or 0) for t, n in s.execute(q).all()}


def allocations_between(
    s: Session, since: float, until: float
) -> list[tuple[str, int, float, float | None]]:
    """(team, GPUs, from, to or None while held) of every allocation that overlaps
    [since, until]: the quota history's raw material."""
    q = (
        select(m.Job.team, m.Allocation.gpus, m.Allocation.created_at, m.Allocation.released_at)
        .join(m.Job, m.Job.id == m.Allocation.job_id)
        .where(
            m.Allocation.created_at < until,
            or_(m.Allocation.released_at.is_(None), m.Allocation.released_at > since),
        )
    )
    return [
        (str(t), int(g), float(a), None if b is None else float(b))
        for t, g, a, b in s.execute(q).all()
    ]


def runs_between(
    s: Session, team: str | None, since: float, until: float, limit: int
) -> tuple[list[tuple[int, str, str, int, float, float | None]], list[tuple[int, float, str]]]:
    """The timeline's raw material: the runs (allocations) of the `limit` newest jobs that
    held GPUs in [since, until] as (job, team, name, GPUs, from, to or None), and their marks
    in the window as (job, at, "preempted" or "failed")."""
    overlap = and_(
        m.Allocation.created_at < until,
        or_(m.Allocation.released_at.is_(None), m.Allocation.released_at > since),
    )
    jobs = select(m.Allocation.job_id).join(m.Job, m.Job.id == m.Allocation.job_id).where(overlap)
    if team is not None:
        jobs = jobs.where(m.Job.team == team)
    ids = list(s.scalars(jobs.distinct().order_by(m.Allocation.job_id.desc()).limit(limit)).all())
    if not ids:
        return [], []
    q = (
        select(
            m.Job.id, m.Job.team, m.Job.name, m.Allocation.gpus, m.Allocation.created_at,
            m.Allocation.released_at,
        )
        .join(m.Allocation, m.Allocation.job_id == m.Job.id)
        .where(m.Job.id.in_(ids), overlap)
        .order_by(m.Job.id, m.Allocation.created_at)
    )  # fmt: skip
    runs = [
        (int(j), str(t), str(n), int(g), float(a), None if b is None else float(b))
        for j, t, n, g, a, b in s.execute(q).all()
    ]
    pre = select(m.Preemption.job_id, m.Preemption.at).where(
        m.Preemption.job_id.in_(ids), m.Preemption.at >= since
    )
    failed = select(m.Event.job_id, m.Event.at).where(
        m.Event.job_id.in_(ids),
        m.Event.at >= since,
        m.Event.kind == "exit",
        not_(m.Event.message.like("% completed%")),
        not_(m.Event.message.like("% cancelled%")),
        not_(m.Event.message.like("% preempted%")),
    )
    marks = [(int(j), float(a), "preempted") for j, a in s.execute(pre).all()]
    marks += [(int(j), float(a), "failed") for j, a in s.execute(failed).all() if j is not None]
    return runs, sorted(marks)


def running_starts(s: Session, team: str | None) -> dict[int, float]:
    """Running jobs: when their current attempt's first allocation was made
    (`store_health.running_jobs`, without loading the jobs)."""
    q = (
        select(m.Allocation.job_id, func.min(m.Allocation.created_at))
        .join(m.Job, m.Job.id == m.Allocation.job_id)
        .where(m.Job.state == "running", m.Allocation.active.is_(True))
        .where(m.Allocation.attempt == m.Job.attempt)
        .group_by(m.Allocation.job_id)
    )
    if team is not None:
        q = q.where(m.Job.team == team)
    return {int(j): float(at) for j, at in s.execute(q).all()}


def last_devices(s: Session, ids: Sequence[int]) -> dict[int, list[int]]:
    """Each job's devices in its newest allocation (the timeline's lanes per pod)."""
    if not ids:
        return {}
    q = (
        select(m.Allocation.job_id, m.Allocation.devices)
        .where(m.Allocation.job_id.in_(list(ids)))
        .order_by(m.Allocation.job_id, m.Allocation.created_at, m.Allocation.id)
    )
    out: dict[int, list[int]] = {}
    for j, devs in s.execute(q).all():
        if devs:
            out[int(j)] = list(devs)
    return out


def power_events(s: Session, limit: int) -> Sequence[m.Event]:
    """The newest `limit` changes an operator or a feed made to the site's power (PUT
    /v1/power: a new cap, an outdoor temperature), newest first. Fleet-wide: no team's."""
    q = select(m.Event).where(m.Event.kind == "power").order_by(m.Event.id.desc()).limit(limit)
    return s.scalars(q).all()
