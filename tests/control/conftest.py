"""Fixtures for the control plane: a throwaway PostgreSQL server (as in shared/STACK.md), a
database URL per test on each backend, and a service wired to an in-test fake executor for unit
tests of the API and the loop (end-to-end tests use the real executor)."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_counter = itertools.count()


def _pg_bin() -> Path | None:
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(cand, "initdb").exists() and Path(cand, "pg_ctl").exists():
            return Path(cand)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_pg(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Base URL (no database) of a PostgreSQL server that lives for the session."""
    binp = _pg_bin()
    # CI sets CORTEX_REQUIRE_POSTGRES: there, a missing server is a failure, not a skip.
    missing = pytest.fail if os.environ.get("CORTEX_REQUIRE_POSTGRES") else pytest.skip
    if binp is None:
        missing("PostgreSQL binaries not found under /usr/lib/postgresql")
    assert binp is not None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed")
    root = Path(tempfile.mkdtemp(prefix="cortex-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run(
        _as_pg(
            [
                str(binp / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    opts = (
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c max_connections=200"
    )
    subprocess.run(
        _as_pg(
            [
                str(binp / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-w",
                "-o",
                opts,
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_pg([str(binp / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


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
