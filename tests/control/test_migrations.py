"""Migrations upgrade an empty database, downgrade to nothing and upgrade again, on both
backends; the migrated schema matches the ORM models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from cortex.control import db
from cortex.control.models import Base

TABLES = {
    "teams",
    "tokens",
    "queues",
    "jobs",
    "job_transitions",
    "nodes",
    "accelerators",
    "allocations",
    "events",
    "idempotency_keys",
    "preemptions",
    "site_settings",
    "attempt_records",
    "node_failures",
    "node_drains",
    "job_gates",
    "burn_ins",
}


def _tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    assert _tables(db_url) == set()
    db.upgrade(db_url)
    assert _tables(db_url) == TABLES
    db.downgrade(db_url, "base")
    assert _tables(db_url) == set()
    db.upgrade(db_url)
    assert _tables(db_url) == TABLES


def test_migrated_schema_matches_models(db_url: str) -> None:
    db.upgrade(db_url)
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_0010_gives_a_job_in_flight_its_total_as_its_failures_in_a_row(db_url: str) -> None:
    """A job judged by its total failures before the upgrade keeps no retry more than the old
    rule allowed (drive/runs.py judge_exit): its count in a row starts at its total."""
    db.upgrade(db_url, "0009_burn_ins")
    engine = db.make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, team, name, state, priority_class, gpus, spec, command,"
                    " env, nprocs, submitted_at, attempt, failures, preemptions, reason,"
                    " cancel_requested, seen) VALUES (7, 't', 'j', 'requeued', 'normal', 1, '{}',"
                    " '[]', '{}', 1, 0, 2, 1, 0, '', false, true)"
                )
            )
        db.upgrade(db_url)
        with engine.connect() as conn:
            got = conn.execute(text("SELECT failures, failures_in_a_row FROM jobs")).one()
    finally:
        engine.dispose()
    assert tuple(got) == (1, 1)


def test_0011_gives_a_job_in_flight_its_self_requeues_so_far_as_its_count_in_a_row(
    db_url: str,
) -> None:
    """Self-requeues were counted over the job's life from its history: a job stored before
    the upgrade starts with all of them in a row (no more than the old rule allowed), and no
    reported checkpoint (the reports were memory)."""
    db.upgrade(db_url, "0010_failures_in_a_row")
    engine = db.make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, team, name, state, priority_class, gpus, spec, command,"
                    " env, nprocs, submitted_at, attempt, failures, failures_in_a_row,"
                    " preemptions, reason, cancel_requested, seen) VALUES (7, 't', 'j',"
                    " 'requeued', 'normal', 1, '{}', '[]', '{}', 1, 0, 3, 0, 0, 2, '', false,"
                    " true), (8, 't', 'k', 'queued', 'normal', 1, '{}', '[]', '{}', 1, 0, 0, 0,"
                    " 0, 0, '', false, true)"
                )
            )
            for i, reason in enumerate(
                [
                    "exited 75 without a stop request (1); retry in 1 s",
                    "back to queue after preemption",
                    "exited 75 without a stop request (2); retry in 2 s",
                ]
            ):
                conn.execute(
                    text(
                        "INSERT INTO job_transitions (job_id, src, dst, reason, at)"
                        " VALUES (7, 'preempted', 'requeued', :r, :at)"
                    ),
                    {"r": reason, "at": float(i)},
                )
        db.upgrade(db_url)
        with engine.connect() as conn:
            got = conn.execute(
                text(
                    "SELECT id, self_requeues_in_a_row, checkpoint_reported_at FROM jobs"
                    " ORDER BY id"
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in got] == [(7, 2, None), (8, 0, None)]


def test_0012_gives_a_job_in_flight_no_work_done_and_nothing_owed(db_url: str) -> None:
    """A job stored before the upgrade starts from the estimate the old rule gave it: no work
    done, no restart owed (the loop books both as its next run ends)."""
    db.upgrade(db_url, "0011_progress_in_a_row")
    engine = db.make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, team, name, state, priority_class, gpus, spec, command,"
                    " env, nprocs, submitted_at, attempt, failures, failures_in_a_row,"
                    " self_requeues_in_a_row, preemptions, reason, cancel_requested, seen)"
                    " VALUES (7, 't', 'j', 'requeued', 'normal', 1, '{}', '[]', '{}', 1, 0, 2,"
                    " 1, 1, 0, 0, '', false, true)"
                )
            )
        db.upgrade(db_url)
        with engine.connect() as conn:
            got = conn.execute(text("SELECT work_done_s, restart_owed_s FROM jobs")).one()
    finally:
        engine.dispose()
    assert tuple(got) == (0.0, 0.0)
