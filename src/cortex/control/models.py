"""The store's tables (SQLAlchemy 2 typed ORM). Times are Unix seconds as floats, the same unit
the scheduler core uses for `now_s`, so no conversion sits between the two."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class Token(Base):
    """A bearer token, stored as the SHA-256 of a 256-bit random secret (no salt is needed: the
    secret itself has full entropy, so a table dump cannot be brute-forced)."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[float] = mapped_column(Float)
    # Migration 0002_edge: a token past expires_at, or revoked, is refused.
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class IdempotencyKey(Base):
    """A submission's Idempotency-Key (migration 0002_edge): a retry with the same key and
    body gets the jobs the first request created instead of new ones."""

    __tablename__ = "idempotency_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    job_ids: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    __table_args__ = (UniqueConstraint("team", "key", name="uq_idempotency_team_key"),)


class Queue(Base):
    """A team's cluster queue and its quota (shares of each flavor, as in the fleet files)."""

    __tablename__ = "queues"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    nominal_share: Mapped[float] = mapped_column(Float, default=0.0)
    borrowing_limit_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    # Preemption protection (None: the service's min_runtime_s; no budget).
    min_runtime_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    preemption_budget: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Per-flavor quotas, {flavor: FlavorQuotaSpec fields}, as in a fleet file (None: none).
    flavor_quotas: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), index=True)
    priority_class: Mapped[str] = mapped_column(String(64))
    gpus: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    command: Mapped[list[str]] = mapped_column(JSON)
    env: Mapped[dict[str, str]] = mapped_column(JSON)
    working_dir: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    nprocs: Mapped[int] = mapped_column(Integer, default=1)
    submitted_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # The job's own failures since its last run that kept work (a checkpoint after the run's
    # start): the retries it has spent (drive/runs.py judge_exit); `failures` is the total.
    failures_in_a_row: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The newest checkpoint time the job's tooling reported through the API (migration 0011):
    # judge_exit reads it to tell a run that kept work, and an API report lives in memory
    # (control/progress.py), so without the row a restart forgot it. A metrics file is on disk.
    checkpoint_reported_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Its exits 75 that no stop request asked for since its last run that kept work (migration
    # 0011; judge_exit bounds them by max_exit75_requeues).
    self_requeues_in_a_row: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Backfill's runtime estimate starts from these (migration 0012; drive/run_estimate.py):
    # the work its runs kept by their last checkpoints, in reference seconds, and the restart
    # overhead it owes at its next start (its last run's measured startup), booked as a run
    # ends (control/loop_exits.py) so that a restart keeps them.
    work_done_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    restart_owed_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    preemptions: Mapped[int] = mapped_column(Integer, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # "preempt" or "cancel" once the loop has sent SIGTERM; re-sent after a restart.
    stopping: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # False until the scheduler loop has taken the submission in (ids may commit out of order
    # on PostgreSQL, so "id > last seen" would miss some).
    seen: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_jobs_unseen", "seen"),
        Index("ix_jobs_cancel", "cancel_requested"),
    )


class JobTransition(Base):
    __tablename__ = "job_transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    src: Mapped[str | None] = mapped_column(String(16), nullable=True)
    dst: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500), default="")
    at: Mapped[float] = mapped_column(Float)


class Node(Base):
    __tablename__ = "nodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    flavor: Mapped[str] = mapped_column(String(64))
    gpus: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8), default="cpu")
    healthy: Mapped[bool] = mapped_column(Boolean, default=True)
    schedulable: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen: Mapped[float] = mapped_column(Float)


class Accelerator(Base):
    __tablename__ = "accelerators"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    index: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("node_id", "index", name="uq_accelerator_node_index"),)


class Allocation(Base):
    """Devices held by one attempt of a job. Written before the launch (the intent) and closed
    (`active` False) once the process is gone: an active row is never left without an owner."""

    __tablename__ = "allocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    flavor: Mapped[str] = mapped_column(String(64))
    gpus: Mapped[int] = mapped_column(Integer)
    devices: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    released_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    team: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    message: Mapped[str] = mapped_column(String(1000), default="")


class Preemption(Base):
    """One preemption of a job (migration 0003_preemptions): who took its devices, under which
    rule, how much work since its last checkpoint was at stake, and by when it is back in the
    queue (its grace period: it is requeued when its process exits, at the latest when the
    SIGKILL lands)."""

    __tablename__ = "preemptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[float] = mapped_column(Float)
    preemptor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rule: Mapped[str] = mapped_column(String(64))
    since_checkpoint_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    checkpoint_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requeue_by: Mapped[float] = mapped_column(Float)


class SiteSetting(Base):
    """A setting an operator changed through the API (migration 0004_site_settings), with the
    value the service was configured with at the time: a restart keeps the operator's value
    unless the configuration has changed since."""

    __tablename__ = "site_settings"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    configured: Mapped[float | None] = mapped_column(Float, nullable=True)
    set_at: Mapped[float] = mapped_column(Float)


# ---- goodput and node health (migration 0006_goodput_health) ------------------------------------
class AttemptRecord(Base):
    """One ended attempt of a job, as measured (control/goodput.py): when it ran, how it ended,
    its first progress report and checkpoints, and the node its failure is blamed on."""

    __tablename__ = "attempt_records"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    team: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float] = mapped_column(Float, index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    first_step_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    checkpoint_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    checkpoints: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint_write_s: Mapped[float] = mapped_column(Float, default=0.0)
    node: Mapped[str | None] = mapped_column(String(200), nullable=True)
    __table_args__ = (UniqueConstraint("job_id", "attempt", name="uq_attempt_records_job"),)


class NodeFailure(Base):
    """A job failure attributed to a node (control/node_health.py). `strike` is whether it is
    a node failure, which counts toward draining the node (the node was lost, or the executor
    named it)."""

    __tablename__ = "node_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    strike: Mapped[bool] = mapped_column(Boolean, default=False)
    # A strike the rule has spent on a drain (the count starts over, as in the twin).
    spent: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[str] = mapped_column(String(500), default="")


class NodeDrain(Base):
    """A node out of service on purpose (`sinfo -R`): drained by the strike rule or an admin,
    back after its burn-in (`return_at`; None: until an admin undrains it)."""

    __tablename__ = "node_drains"
    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    reason: Mapped[str] = mapped_column(String(500))
    by: Mapped[str] = mapped_column(String(16))
    drained_at: Mapped[float] = mapped_column(Float)
    return_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class JobGate(Base):
    """What keeps a queued job out of the scheduler's queues (control/loop_gates.py): a hold
    (`cortex hold`), dependencies that must complete first (`afterok`), and its job array's
    limit on members running at once; and its time limit (control/loop_limits.py). Only jobs
    with one of these have a row."""

    __tablename__ = "job_gates"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    after_ok: Mapped[list[int]] = mapped_column(JSON, default=list)
    array_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    array_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    array_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    time_limit_s: Mapped[float | None] = mapped_column(Float, nullable=True)


# ---- burn-in (migration 0009_burn_ins) -------------------------------------------------------
class BurnIn(Base):
    """One diagnostic run of a node back from a drain (control/loop_burnin.py). Its id is the
    executor's attempt number under job id 0 (no job has id 0), so the run has a name for all
    time, as a job's attempt has. `state`: launching (stored, maybe started), running (its
    handle stored), passed, failed, lost (gone while the service was down), cancelled (the
    node was undrained by hand meanwhile). `stopping`: a stop asked and why (timeout,
    undrained)."""

    __tablename__ = "burn_ins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(200), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[float] = mapped_column(Float)
    deadline: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    stopping: Mapped[str | None] = mapped_column(String(16), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(String(500), default="")
