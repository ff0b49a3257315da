"""Engine, sessions and migrations. SQLite runs in WAL mode so that API reads never wait for
the scheduler's writes; PostgreSQL needs nothing special."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def secure_dir(path: Path, *, traversable: bool = False) -> None:
    """The service's state directory: 0700, or 0711 when jobs of other users must pass through
    it to their own directories (they can open a path they know, never list it)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o711 if traversable else 0o700)


def _private_file(path: Path) -> None:
    """Create the file 0600 if missing; make an existing one 0600 (an older store may be 0644)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _sqlite_path(url: str) -> str:
    path = url.split("///", 1)[1] if "///" in url else ""
    return path.split("?", 1)[0] if path != ":memory:" else ""


def make_engine(url: str) -> Engine:
    """An engine for `url`; creates the SQLite file's directory, and the file itself 0600 (it
    holds token hashes and job env); SQLite gives its -wal and -shm the file's mode."""
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _private_file(Path(path))
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power loss may drop the last commits but never corrupts;
            # a killed process (kill -9) loses nothing.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            for suffix in ("-wal", "-shm"):  # made before this fix with the umask's mode
                side = Path(path + suffix) if path else None
                if side is not None and side.exists() and side.stat().st_mode & 0o077:
                    os.chmod(side, 0o600)

        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def with_connect_timeout(url: str, timeout_s: int) -> str:
    """A PostgreSQL URL with libpq's `connect_timeout` (one the URL gives already wins); any
    other URL as it is. psycopg takes the URL's query as connection parameters."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or "connect_timeout" in parsed.query:
        return url
    with_timeout = parsed.update_query_dict({"connect_timeout": str(int(timeout_s))})
    return with_timeout.render_as_string(hide_password=False)


def shown(url: str) -> str:
    """The database a message names: its URL with the password hidden, without the timeout."""
    parsed = make_url(url).difference_update_query(["connect_timeout"])
    return parsed.render_as_string(hide_password=True)


class Sessions(sessionmaker[Session]):
    """A sessionmaker whose write transactions (`begin()`) take a process-wide lock on SQLite.
    SQLite admits one writer at a time anyway; without the lock, concurrent writers meet
    SQLITE_BUSY and the driver's busy handler sleeps in steps of up to 100 ms, which turns a
    0.3 ms insert into a 100 ms one under load. Reads (`Sessions()`) take no lock."""

    def __init__(self, engine: Engine, *, serialize_writes: bool) -> None:
        super().__init__(engine, expire_on_commit=False)
        self.write_lock = threading.RLock() if serialize_writes else None

    @contextmanager
    def begin(self) -> Iterator[Session]:
        if self.write_lock is None:
            with super().begin() as s:
                yield s
            return
        with self.write_lock, super().begin() as s:
            yield s


def sessions(engine: Engine) -> Sessions:
    return Sessions(engine, serialize_writes=engine.dialect.name == "sqlite")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
