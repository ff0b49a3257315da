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
