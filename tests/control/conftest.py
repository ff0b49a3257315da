"""Fixtures for the control plane: a throwaway PostgreSQL server (as in shared/STACK.md), a
database URL per test on each backend, and a service wired to an in-test fake executor for unit
tests of the API and the loop (end-to-end tests use the real executor)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import fake_service

from cortex.control.devpg import ThrowawayPostgres, find_bin
from cortex.control.service import Service

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Base URL (no database) of a PostgreSQL server that lives for the session."""
    binp = find_bin()
    # CI sets CORTEX_REQUIRE_POSTGRES: there, a missing server is a failure, not a skip.
    missing = pytest.fail if os.environ.get("CORTEX_REQUIRE_POSTGRES") else pytest.skip
    if binp is None:
        missing("PostgreSQL binaries not found under /usr/lib/postgresql")
    assert binp is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed")
    pg = ThrowawayPostgres(binp, durable=False)
    try:
        yield pg.start()
    finally:
        pg.stop("immediate")


def new_pg_database(base: str) -> str:
    import psycopg

    name = f"cortex_t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(
        base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cortex.db'}"
    return new_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def svc(db_url: str, tmp_path: Path) -> Iterator[Service]:
    """A service on `db_url` whose executor is an in-test fake (helpers.fake_service)."""
    service = fake_service(db_url, tmp_path)
    yield service
    service.close()


@pytest.fixture
def client(svc: Service) -> TestClient:
    return TestClient(svc.app)
