"""A service pointed at a PostgreSQL host that never answers stops within its connect timeout
(CORTEX_DB_CONNECT_TIMEOUT_S) with one line naming the database, password hidden, and exit 2.
It hung at start (psycopg waits 130 s when nothing bounds the connect; libpq forever). No
PostgreSQL server needed: a loopback socket that listens and never accepts, made here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cortex.control.db import shown, with_connect_timeout
from cortex.control.settings import Settings
from cortex.errors import InputError

SRC = str(Path(__file__).resolve().parents[2] / "src")
pytest.importorskip("psycopg")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connects complete in the kernel's backlog and are never answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_a_database_that_never_answers_stops_the_start_in_one_line(
    silent_port: int, tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://cortex:s3cret-pw@127.0.0.1:{silent_port}/cortexdb"
    env = {**os.environ, "PYTHONPATH": SRC, "CORTEX_DB_CONNECT_TIMEOUT_S": "2"}
    env.pop("CORTEX_DATABASE_URL", None)
    t0 = time.monotonic()
    # The old code waited psycopg's 130 s: the subprocess timeout ends it, failing the test.
    r = subprocess.run(
        [sys.executable, "-m", "cortex", "serve", "--home", str(tmp_path / "h"),
         "--database-url", url, "--port", "0"],
        check=False, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    waited = time.monotonic() - t0
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.splitlines()
    assert line.startswith("error: serve: database: postgresql+psycopg://cortex:***@127.0.0.1:")
    assert f":{silent_port}/cortexdb" in line and "s3cret" not in line
    assert "connect_timeout" not in line  # the URL as the operator gave it
    assert "within 2 s: CORTEX_DB_CONNECT_TIMEOUT_S" in line, line
    assert waited < 60


def test_the_timeout_goes_into_postgres_urls_only() -> None:
    pg = "postgresql+psycopg://u:p%40ss@db.example:5432/cortex"
    got = with_connect_timeout(pg, 10)
    assert got == "postgresql+psycopg://u:p%40ss@db.example:5432/cortex?connect_timeout=10"
    assert shown(got) == "postgresql+psycopg://u:***@db.example:5432/cortex"
    given = pg + "?connect_timeout=3"  # the URL's own wins
    assert with_connect_timeout(given, 10) == given
    lite = "sqlite:////tmp/x.db"
    assert with_connect_timeout(lite, 10) == lite


def test_the_setting_is_bounded_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().db_connect_timeout_s == 10
    for bad in ("1", "3601", "inf", "x"):
        monkeypatch.setenv("CORTEX_DB_CONNECT_TIMEOUT_S", bad)
        with pytest.raises(InputError) as e:
            Settings.from_env()
        assert e.value.source == "CORTEX_DB_CONNECT_TIMEOUT_S"
    monkeypatch.setenv("CORTEX_DB_CONNECT_TIMEOUT_S", "30")
    assert Settings.from_env().db_connect_timeout_s == 30
