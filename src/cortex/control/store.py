"""Repository functions over the tables. Every job state change goes through `move`, which
checks the twin's transition table and writes the history row in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control.auth import Principal, hash_token, new_token
from cortex.control.envcrypt import EnvBox
from cortex.control.schemas import JobOut, SubmitRequest, Transition
from cortex.drive import runs
from cortex.errors import InputError
from cortex.workload.states import JobState, check_transition

REASON_MAX = 500  # the reason columns' width (PostgreSQL refuses a longer value)


def move(s: Session, job: m.Job, dst: JobState, reason: str, at: float) -> None:
    """Change a job's state through the transition table and record it.

    Every write here takes its time from the caller (`at`): the service's injected clock, and in the
    scheduler loop its one `now` per tick, so that a transition and its event carry one time."""
    check_transition(job.id, JobState(job.state), dst, reason)
    # Reasons quote exit details, which may quote a command line of any length.
    if len(reason) > REASON_MAX:
        reason = reason[: REASON_MAX - 3] + "..."
    s.add(m.JobTransition(job_id=job.id, src=job.state, dst=dst.value, reason=reason, at=at))
    job.state = dst.value
    job.reason = reason


def event(
    s: Session,
    kind: str,
    message: str,
    *,
    job_id: int | None = None,
    team: str | None = None,
    at: float,
) -> None:
    """Record an event at the caller's clock reading (the loop's tick `now`)."""
    s.add(m.Event(at=at, kind=kind, job_id=job_id, team=team, message=message[:1000]))


# ---- teams, queues, tokens ----------------------------------------------------------------------
def ensure_team(s: Session, name: str, at: float) -> m.Team:
    """The team, created with a queue (no nominal share, unlimited borrowing) if new."""
    team = s.scalar(select(m.Team).where(m.Team.name == name))
    if team is None:
        team = m.Team(name=name, created_at=at)
        s.add(team)
        if s.scalar(select(m.Queue).where(m.Queue.name == name)) is None:
            s.add(m.Queue(name=name, nominal_share=0.0, borrowing_limit_share=None, weight=1.0))
        s.flush()
        event(s, "team", f"team {name} created", team=name, at=at)
    return team


def create_token(
    s: Session,
    team: str | None,
    *,
    at: float,
    admin: bool = False,
    label: str = "",
    secret: str | None = None,
    expires_at: float | None = None,
) -> tuple[str, m.Token]:
    """Store a token's hash; return the secret (shown once, never stored) and the row."""
    secret = secret or new_token()
    team_id = ensure_team(s, team, at).id if team else None
    row = m.Token(
        team_id=team_id,
        admin=admin,
        token_hash=hash_token(secret),
        label=label,
        created_at=at,
        expires_at=expires_at,
    )
    s.add(row)
    s.flush()
    event(s, "token", f"token {row.id} created for {'admin' if admin else team}", team=team, at=at)
    return secret, row


ADMIN_ENV_LABEL = "CORTEX_ADMIN_TOKEN"


def bootstrap_admin(s: Session, configured: str | None, at: float) -> str | None:
    """Make sure there is an admin token. With CORTEX_ADMIN_TOKEN set, that value is the admin
    token and every other admin token is revoked (so changing the variable rotates it); else,
    at first start, a new one is returned for the caller to print once."""
    if configured:
        key = hash_token(configured)
        row = s.scalar(select(m.Token).where(m.Token.token_hash == key))
        if row is None:
            create_token(s, None, at=at, admin=True, label=ADMIN_ENV_LABEL, secret=configured)
        elif not row.admin or row.revoked_at is not None:
            # A configured admin secret that is a team's token, or was revoked, is not reused.
            raise InputError(ADMIN_ENV_LABEL, "value", "names a revoked or non-admin token")
        others = s.scalars(
            select(m.Token).where(
                m.Token.admin.is_(True), m.Token.revoked_at.is_(None), m.Token.token_hash != key
            )
        ).all()
        for t in others:
            t.revoked_at = at
            event(s, "token", f"admin token {t.id} revoked: CORTEX_ADMIN_TOKEN changed", at=at)
        return None
    live = select(m.Token.id).where(m.Token.admin.is_(True), m.Token.revoked_at.is_(None))
    if s.scalar(live.limit(1)) is not None:
        return None
    return create_token(s, None, at=at, admin=True, label="first start")[0]


def principal_for(s: Session, secret: str, at: float) -> tuple[Principal, float | None] | None:
    """The caller a token stands for and when it expires; None if unknown, revoked or
    expired."""
    row = s.execute(
        select(m.Token.id, m.Token.admin, m.Team.name, m.Token.expires_at, m.Token.revoked_at)
        .outerjoin(m.Team, m.Team.id == m.Token.team_id)
        .where(m.Token.token_hash == hash_token(secret))
    ).first()
    if row is None or row[4] is not None or (row[3] is not None and at >= row[3]):
        return None
    return Principal(team=row[2], admin=bool(row[1]), token_id=row[0]), row[3]


def tokens(s: Session) -> list[tuple[m.Token, str | None]]:
    rows = s.execute(
        select(m.Token, m.Team.name)
        .outerjoin(m.Team, m.Team.id == m.Token.team_id)
        .order_by(m.Token.id)
    ).all()
    return [(r[0], r[1]) for r in rows]


def revoke_token(s: Session, token_id: int, at: float) -> tuple[m.Token, bool] | None:
    """The token, revoked (locked: of two revokes at once one revokes, one finds it done),
    and whether it was revoked already (its `revoked_at` is then the first revocation's)."""
    row = s.get(m.Token, token_id, with_for_update=True)
    if row is None:
        return None
    if row.revoked_at is not None:
        return row, True
    row.revoked_at = at
    event(s, "token", f"token {token_id} revoked", at=at)
    return row, False


def has_queue(s: Session, name: str) -> bool:
    return s.scalar(select(m.Queue.id).where(m.Queue.name == name)) is not None


def queues(s: Session) -> Sequence[m.Queue]:
    return s.scalars(select(m.Queue).order_by(m.Queue.name)).all()


def lock_queues(s: Session) -> Sequence[m.Queue]:
    """Every queue, locked for the rest of the transaction (FOR UPDATE on PostgreSQL; SQLite's
    writers are serialized already). A quota edit checks a sum over all queues, so two edits of
    different queues at once must not both read the old sum; rows are taken in name order so
    two lockers never deadlock."""
    return s.scalars(select(m.Queue).order_by(m.Queue.name).with_for_update()).all()


# ---- jobs ---------------------------------------------------------------------------------------
def insert_jobs(
    s: Session, reqs: list[SubmitRequest], at: float, *, box: EnvBox | None = None
) -> list[JobOut]:
    """Insert validated submissions as queued jobs, with their first history row. Core inserts
    with RETURNING (one round trip per batch): the ORM's unit of work costs more than the
    insert itself at hundreds of submissions a second. With `box`, env values are stored
    encrypted (cortex.control.envcrypt)."""
    rows: list[dict[str, Any]] = [
        {
            "team": req.team,
            "name": req.name,
            "state": JobState.QUEUED.value,
            "priority_class": req.priority_class,
            "gpus": req.gpus,
            "spec": req.model_dump(
                mode="json", exclude_defaults=True, exclude=set(SubmitRequest.PROCESS_FIELDS)
            ),
            "command": list(req.command),
            "env": box.seal(dict(req.env)) if box is not None else dict(req.env),
            "working_dir": req.working_dir,
            "nprocs": req.nprocs,
            "submitted_at": at,
            "attempt": 0,
            "failures": 0,
            "preemptions": 0,
            "reason": "submitted",
            "cancel_requested": False,
            "seen": False,
        }
        for req in reqs
    ]
    # On the tables, not the mapped classes: the ORM's bulk path coerces every value of every
    # row again (a third of the writer thread's CPU); these rows need none of what it adds.
    jobs = cast(Table, m.Job.__table__)
    transitions = cast(Table, m.JobTransition.__table__)
    conn = s.connection()
    ids = list(
        conn.execute(
            insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True), rows
        ).scalars()
    )
    conn.execute(
        insert(transitions),
        [
            {
                "job_id": i,
                "src": None,
                "dst": JobState.QUEUED.value,
                "reason": "submitted",
                "at": at,
            }
            for i in ids
        ],
    )
    fields = [k for k in JobOut.model_fields if rows and k in rows[0]]
    # model_construct: every value was validated on the way in.
    return [
        JobOut.model_construct(
            id=i,
            started_at=None,
            ended_at=None,
            exit_code=None,
            devices=None,
            history=None,
            **{k: r[k] for k in fields},
        )
        for i, r in zip(ids, rows, strict=True)
    ]


def open_env(env: dict[str, str] | None, box: EnvBox | None = None) -> dict[str, str]:
    """A job's env as stored, decrypted for launch (EnvBoxError if the key cannot open it)."""
    return box.open(env) if box is not None else dict(env or {})


def visible_job(s: Session, who: Principal, job_id: int) -> m.Job | None:
    """The job if the caller may see it; another team's job is None, like a missing one."""
    job = s.get(m.Job, job_id)
    if job is None or (not who.admin and job.team != who.team):
        return None
    return job


def request_cancel(s: Session, job: m.Job, at: float) -> None:
    s.execute(update(m.Job).where(m.Job.id == job.id).values(cancel_requested=True))
    job.cancel_requested = True
    event(s, "cancel", "cancel requested", job_id=job.id, team=job.team, at=at)


def history(s: Session, job_id: int) -> list[Transition]:
    rows = s.scalars(
        select(m.JobTransition).where(m.JobTransition.job_id == job_id).order_by(m.JobTransition.id)
    ).all()
    return [Transition(src=r.src, dst=r.dst, reason=r.reason, at=r.at) for r in rows]


def active_allocation(s: Session, job_id: int) -> m.Allocation | None:
    return s.scalar(
        select(m.Allocation)
        .where(m.Allocation.job_id == job_id, m.Allocation.active.is_(True))
        .order_by(m.Allocation.id.desc())
        .limit(1)
    )


def job_out(
    job: m.Job, *, devices: list[int] | None = None, hist: list[Transition] | None = None
) -> JobOut:
    return JobOut(
        id=job.id,
        team=job.team,
        name=job.name,
        state=job.state,
        priority_class=job.priority_class,
        gpus=job.gpus,
        command=job.command,
        working_dir=job.working_dir,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        attempt=job.attempt,
        failures=job.failures,
        preemptions=job.preemptions,
        exit_code=job.exit_code,
        reason=job.reason,
        cancel_requested=job.cancel_requested,
        devices=devices,
        history=hist,
    )


def job_counts(s: Session) -> list[tuple[str, str, int]]:
    """(team, state, count) for the metrics endpoint."""
    rows = s.execute(
        select(m.Job.team, m.Job.state, func.count()).group_by(m.Job.team, m.Job.state)
    ).all()
    return [(r[0], r[1], int(r[2])) for r in rows]


# ---- the scheduler loop's reads and writes ------------------------------------------------------
def unseen_jobs(r: Session) -> Sequence[Any]:
    """Jobs the loop has not read yet (new submissions), oldest first: the columns it needs,
    and `gated`: whether the job has a gate row (only those need the loop's gate lookup)."""
    return r.execute(
        select(
            m.Job.id,
            m.Job.state,
            m.Job.spec,
            m.Job.submitted_at,
            m.Job.failures,
            m.Job.preemptions,
            m.JobGate.job_id.is_not(None).label("gated"),
        )
        .outerjoin(m.JobGate, m.JobGate.job_id == m.Job.id)
        .where(m.Job.seen.is_(False))
        .order_by(m.Job.id)
    ).all()


def mark_seen(s: Session, ids: list[int]) -> None:
    s.execute(update(m.Job).where(m.Job.id.in_(ids)).values(seen=True))


def mark_seen_unless_queued(s: Session) -> None:
    """Recovery: jobs recorded unseen in any state but `queued` need no intake."""
    s.execute(update(m.Job).where(m.Job.seen.is_(False), m.Job.state != "queued").values(seen=True))


def cancel_candidates(r: Session, only: list[int] | None) -> list[int]:
    """Unfinished jobs with a cancel request not yet acted on; among `only` if given."""
    q = select(m.Job.id).where(
        m.Job.cancel_requested.is_(True),
        m.Job.state.in_(runs.UNFINISHED_VALUES),
        or_(m.Job.stopping.is_(None), m.Job.stopping != "cancel"),
    )
    if only is not None:
        q = q.where(m.Job.id.in_(sorted(only)))
    return list(r.scalars(q).all())


def jobs_by_id(s: Session, ids: list[int]) -> Sequence[m.Job]:
    return s.scalars(select(m.Job).where(m.Job.id.in_(ids))).all()


def unfinished_jobs(s: Session) -> Sequence[m.Job]:
    return s.scalars(
        select(m.Job).where(m.Job.state.in_(runs.UNFINISHED_VALUES)).order_by(m.Job.id)
    ).all()


def last_transition_at(s: Session, job_id: int) -> float | None:
    at = s.scalar(select(func.max(m.JobTransition.at)).where(m.JobTransition.job_id == job_id))
    return None if at is None else float(at)


def close_allocations(s: Session, job_id: int, at: float) -> dict[int, float]:
    """The job's active allocation rows end now. Returns, per attempt among them, when its
    latest one was made (attempt_started_at's answer, without a second query)."""
    rows = s.execute(
        update(m.Allocation)
        .where(m.Allocation.job_id == job_id, m.Allocation.active.is_(True))
        .values(active=False, released_at=at)
        .returning(m.Allocation.id, m.Allocation.attempt, m.Allocation.created_at)
    ).all()
    return {attempt: created for _, attempt, created in sorted(rows)}


def close_leaked_allocations(s: Session, holding: set[int], at: float) -> int:
    """Recovery: active allocation rows of jobs that hold nothing end now; how many."""
    res = s.execute(
        update(m.Allocation)
        .where(m.Allocation.active.is_(True), m.Allocation.job_id.not_in(holding or {-1}))
        .values(active=False, released_at=at)
    )
    return int(getattr(res, "rowcount", 0) or 0)


def set_handle(s: Session, job_id: int, attempt: int, handle: dict[str, Any]) -> None:
    s.execute(
        update(m.Allocation)
        .where(m.Allocation.job_id == job_id, m.Allocation.attempt == attempt)
        .values(handle=handle)
    )


def node_heartbeat(s: Session, node_id: int, at: float) -> bool:
    """The node is alive now; returns whether it may take new work (an operator may drain it)."""
    s.execute(update(m.Node).where(m.Node.id == node_id).values(last_seen=at, healthy=True))
    node = s.get(m.Node, node_id)
    return bool(node.schedulable) if node is not None else True


def register_node(
    s: Session, name: str, flavor: str, devices: list[int], kind: str, at: float
) -> m.Node:
    """The node's row, created (with an event) or refreshed, and a row per accelerator."""
    node = s.scalar(select(m.Node).where(m.Node.name == name))
    count = len(devices)
    if node is None:
        node = m.Node(
            name=name,
            flavor=flavor,
            gpus=count,
            kind=kind,
            healthy=True,
            schedulable=True,
            last_seen=at,
        )
        s.add(node)
        s.flush()
        event(s, "node", f"node {name} registered: {count} x {flavor}", at=at)
    else:
        node.flavor, node.gpus, node.kind = flavor, count, kind
        node.healthy, node.last_seen = True, at
    have = {
        a.index for a in s.scalars(select(m.Accelerator).where(m.Accelerator.node_id == node.id))
    }
    for d in devices:
        if d not in have:
            s.add(m.Accelerator(node_id=node.id, index=d, flavor=flavor))
    return node


# ---- the API's reads ----------------------------------------------------------------------------
def queue_named(s: Session, name: str) -> m.Queue | None:
    return s.scalar(select(m.Queue).where(m.Queue.name == name))


def team_name(s: Session, team_id: int | None) -> str | None:
    if team_id is None:
        return None
    return s.scalar(select(m.Team.name).where(m.Team.id == team_id))


def nodes(s: Session) -> Sequence[m.Node]:
    return s.scalars(select(m.Node).order_by(m.Node.name)).all()


def node_named(s: Session, name: str) -> m.Node | None:
    return s.scalar(select(m.Node).where(m.Node.name == name))


def recent_jobs(s: Session, team: str | None, state: str | None, limit: int) -> Sequence[m.Job]:
    """Newest first; `team` None means every team's (the caller decides who may ask)."""
    q = select(m.Job).order_by(m.Job.id.desc()).limit(limit)
    if team is not None:
        q = q.where(m.Job.team == team)
    if state is not None:
        q = q.where(m.Job.state == state)
    return s.scalars(q).all()


def recent_events(
    s: Session, team: str | None, job_id: int | None, limit: int
) -> Sequence[m.Event]:
    """Newest first; `team` None means every team's and the service's own events."""
    q = select(m.Event).order_by(m.Event.id.desc()).limit(limit)
    if team is not None:
        q = q.where(m.Event.team == team)
    if job_id is not None:
        q = q.where(m.Event.job_id == job_id)
    return s.scalars(q).all()


def ping(s: Session) -> None:
    """A round trip to the database (readiness)."""
    s.execute(text("SELECT 1"))


# ---- idempotency keys (the submission batcher) ---------------------------------------------------
def idempotency_keys(
    s: Session, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], m.IdempotencyKey]:
    """The stored (team, key) rows among `keys`."""
    if not keys:
        return {}
    rows = s.scalars(
        select(m.IdempotencyKey).where(
            tuple_(m.IdempotencyKey.team, m.IdempotencyKey.key).in_(list(keys))
        )
    ).all()
    return {(r.team, r.key): r for r in rows}


def prune_idempotency_keys(s: Session, before: float) -> None:
    s.execute(delete(m.IdempotencyKey).where(m.IdempotencyKey.created_at < before))


def job_outs(s: Session, ids: list[int]) -> list[JobOut]:
    """The jobs in the order of `ids` (missing ones left out)."""
    rows = {j.id: j for j in jobs_by_id(s, ids)}
    return [job_out(rows[i]) for i in ids if i in rows]


# ---- why, progress, preemption records (issue 14) ------------------------------------------------
def job_briefs(s: Session, ids: Sequence[int]) -> dict[int, tuple[str, int]]:
    """(name, GPUs) of the given jobs."""
    if not ids:
        return {}
    rows = s.execute(select(m.Job.id, m.Job.name, m.Job.gpus).where(m.Job.id.in_(ids))).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def attempt_started_at(s: Session, job_id: int, attempt: int) -> float | None:
    """When an attempt's allocation was made (its admission): lines a job wrote before that
    belong to an earlier attempt."""
    return s.scalar(
        select(m.Allocation.created_at)
        .where(m.Allocation.job_id == job_id, m.Allocation.attempt == attempt)
        .order_by(m.Allocation.id.desc())
        .limit(1)
    )


def add_preemption(s: Session, rec: m.Preemption, message: str, team: str) -> None:
    """A preemption record and its event (`cortex events` shows the message)."""
    s.add(rec)
    event(s, "preempt", message, job_id=rec.job_id, team=team, at=rec.at)


def preemptions_of(s: Session, job_id: int, limit: int = 100) -> Sequence[m.Preemption]:
    """A job's newest preemption records first."""
    return s.scalars(
        select(m.Preemption)
        .where(m.Preemption.job_id == job_id)
        .order_by(m.Preemption.id.desc())
        .limit(limit)
    ).all()


def evictions_by_job(s: Session) -> dict[int, int]:
    """Per unfinished job, how often another job's start evicted it (preemption records with a
    preemptor; pauses for power have none): what its queue's preemption budget counts."""
    rows = s.execute(
        select(m.Preemption.job_id, func.count())
        .join(m.Job, m.Job.id == m.Preemption.job_id)
        .where(m.Preemption.preemptor_id.is_not(None), m.Job.ended_at.is_(None))
        .group_by(m.Preemption.job_id)
    ).all()
    return {int(j): int(n) for j, n in rows}


def used_by_team(s: Session) -> dict[tuple[str, str], int]:
    """GPUs held now by (team, flavor): the active allocations (running jobs, and admitted
    ones waiting for their devices)."""
    rows = s.execute(
        select(m.Job.team, m.Allocation.flavor, func.sum(m.Allocation.gpus))
        .join(m.Job, m.Job.id == m.Allocation.job_id)
        .where(m.Allocation.active.is_(True))
        .group_by(m.Job.team, m.Allocation.flavor)
    ).all()
    return {(r[0], r[1]): int(r[2] or 0) for r in rows}


def preemptions_by_rule(s: Session) -> dict[str, int]:
    rows = s.execute(select(m.Preemption.rule, func.count()).group_by(m.Preemption.rule)).all()
    return {r[0]: int(r[1]) for r in rows}


# ---- site settings (PUT /v1/power) ---------------------------------------------------------------
def site_settings(s: Session) -> dict[str, m.SiteSetting]:
    return {r.name: r for r in s.scalars(select(m.SiteSetting)).all()}


def put_site_setting(
    s: Session, name: str, value: float, configured: float | None, at: float
) -> None:
    row = s.get(m.SiteSetting, name)
    if row is None:
        s.add(m.SiteSetting(name=name, value=value, configured=configured, set_at=at))
    else:
        row.value, row.configured, row.set_at = value, configured, at
