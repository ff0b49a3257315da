"""One service per PostgreSQL database: two services with different homes (so the home lock,
test_operator_review.py, does not see them) on one database. The second stops with one line
naming the database; the lock goes with the holder, when it stops or when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import fake_service

from cortex.control.homelock import hold_database
from cortex.errors import InputError

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def pg_url(db_url: str) -> str:
    return db_url


# Each test its own throwaway database on the session's server (conftest.py).
pytestmark = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


def test_a_second_service_on_the_database_stops_naming_it(pg_url: str, tmp_path: Path) -> None:
    first = fake_service(pg_url, tmp_path / "a")
    try:
        with pytest.raises(InputError) as e:
            fake_service(pg_url, tmp_path / "b")
        msg = str(e.value)
        assert msg.startswith("serve: database: another cortex serve (cortex serve pid ")
        assert pg_url.rsplit("/", 1)[1] in msg and msg.endswith("; one service per database")
        assert "cortex serve pid" in msg and f"pid {os.getpid()} " in msg
    finally:
        first.close()
    # Released when the holder stops: the next service starts.
    fake_service(pg_url, tmp_path / "c").close()


def test_the_serve_command_says_it_in_one_line(pg_url: str, tmp_path: Path) -> None:
    held = hold_database(pg_url)
    assert held is not None
    try:
        # A process of its own: main() prints an InputError as one line, exit 2 (on the old
        # code the service would start: the timeout ends it, failing the test).
        r = subprocess.run(
            [sys.executable, "-m", "cortex", "serve", "--home", str(tmp_path / "h"),
             "--database-url", pg_url, "--port", "0"],
            check=False, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": SRC},
        )  # fmt: skip
    finally:
        held.release()
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.splitlines()
    assert line.startswith("error: serve: database: another cortex serve (cortex serve pid ")
    assert line.endswith("; one service per database")


def test_the_lock_dies_with_its_holder(pg_url: str) -> None:
    code = (
        "import sys, time\n"
        "from cortex.control.homelock import hold_database\n"
        "lock = hold_database(sys.argv[1])\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, pg_url],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": SRC},
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        with pytest.raises(InputError, match=f"pid {proc.pid} "):
            hold_database(pg_url)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    # The server sees the socket close and ends that session: no timeout to wait out, only the
    # backend's exit, which is asynchronous (bounded retries, not a timed assert).
    for _ in range(200):
        try:
            again = hold_database(pg_url)
            break
        except InputError:
            time.sleep(0.05)
    else:
        pytest.fail("the killed holder's lock was never released")
    assert again is not None
    again.release()


def test_sqlite_takes_no_database_lock(db_url: str, tmp_path: Path) -> None:
    assert hold_database(f"sqlite:///{tmp_path / 'x.db'}") is None


def _end_lock_session(pg_url: str) -> None:
    """What a server restart, `idle_session_timeout` or an administrator does to the lock's
    connection: its backend ends, and the server frees the lock."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    eng = create_engine(pg_url, poolclass=NullPool)
    try:
        with eng.begin() as c:
            ended = c.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name LIKE 'cortex serve pid %' AND pid <> pg_backend_pid()"
                )
            ).all()
        assert ended, "no lock session to end"
        for _ in range(200):  # the backend's exit is asynchronous (bounded retries)
            with eng.connect() as c:
                if not c.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
                ).scalar():
                    return
            time.sleep(0.05)
        pytest.fail("the ended session's lock stayed")
    finally:
        eng.dispose()


def test_a_lock_lost_with_its_connection_is_taken_again(pg_url: str, tmp_path: Path) -> None:
    """review15: the lock's connection ended (the service went on) and a second service on the
    database started; each heartbeat now checks it and takes it again while free."""
    first = fake_service(pg_url, tmp_path / "a")
    try:
        _end_lock_session(pg_url)
        first.loop._heartbeat(first.clock.time())  # takes it again (the old code did not)
        assert first.loop.schedulable is True
        with pytest.raises(InputError, match="one service per database"):
            fake_service(pg_url, tmp_path / "b")
        assert first.db_lock is not None and first.db_lock.check()  # its own, a new connection
    finally:
        first.close()
    assert not first.db_lock.check()  # released: not taken again


def test_a_service_whose_lock_another_took_starts_no_job(pg_url: str, tmp_path: Path) -> None:
    first = fake_service(pg_url, tmp_path / "a")
    try:
        _end_lock_session(pg_url)
        other = hold_database(pg_url)  # another service took the database meanwhile
        assert other is not None
        try:
            assert first.db_lock is not None and not first.db_lock.check()
            first.loop._heartbeat(first.clock.time())
            assert first.loop.schedulable is False
        finally:
            other.release()
        first.loop._heartbeat(first.clock.time())  # free again: its own once more
        assert first.loop.schedulable is True
    finally:
        first.close()
