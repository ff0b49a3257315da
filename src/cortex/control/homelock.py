"""One `cortex serve` per home: an exclusive lock on `$CORTEX_HOME/serve.lock`, held for the
service's life. The loop's mirror assumes it is the only writer of job states, and the local
executor's run dirs live in the home, so a second service on the same home (a unit started
twice, a manual start beside it) must stop before it migrates, recovers or ticks. A `flock` is
released by the kernel when its holder dies, even by `kill -9`, so a crash never leaves a stale
lock; the descriptor is not inherited (Python opens files non-inheritable), so job runners that
outlive the service never hold it."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Any

from cortex.errors import InputError

log = logging.getLogger("cortex.control")


def hold_home(home: Path) -> int:
    """Take the home's lock (creating the home 0700 and the file 0600); the returned
    descriptor holds it until closed or the process ends. InputError names the holder."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(home / "serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = b""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 32, 0)
        os.close(fd)
        pid = holder.decode("ascii", "replace").strip() or "?"
        raise InputError(
            "serve", "home", f"another cortex serve (pid {pid}) holds {home}; one service per home"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# PostgreSQL: two services with different homes on one database pass the home lock. A session
# advisory lock on a fixed key (per database: the key space is each database's own) is held
# by a connection of its own for the service's life; the server releases it when that
# connection ends, with the service or by its death (the kernel closes the socket).
DB_LOCK_KEY = 0x636F7274  # "cort": below 2**31, so pg_locks shows it as objid, classid 0
_HOLDER = (
    "SELECT a.application_name, host(a.client_addr) FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = :key "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


_TRY = "SELECT pg_try_advisory_lock(:key)"
# Whether this connection still holds it (a bigint key: classid its high half, objsubid 1).
_MINE = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() "
    "AND locktype = 'advisory' AND granted AND classid = 0 AND objid = :key AND objsubid = 1)"
)


class DatabaseLock:
    """The held lock: `release()` ends its connection (and the lock with it); `check()` says
    whether it is still held, taking it again if its connection was lost."""

    def __init__(self, engine: Any, conn: Any) -> None:
        self._engine, self._conn = engine, conn
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a connection already lost holds nothing
                self._conn.close()
            self._conn = None
        self._engine.dispose()

    def check(self) -> bool:
        """True while this service holds the database. Its connection can end under it (the
        server restarted, `idle_session_timeout`, an administrator's pg_terminate_backend):
        the server frees the lock, and a second service could then take the database. Lost,
        it is taken again if free; False while another holds it (or the server is away)."""
        from sqlalchemy import text

        if self._released:
            return False
        if self._conn is not None:
            try:
                if self._conn.execute(text(_MINE), {"key": DB_LOCK_KEY}).scalar():
                    self._conn.commit()
                    return True
            except Exception:  # the connection is gone: taken again below
                pass
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        conn = None
        try:
            conn = self._engine.connect()
            if conn.execute(text(_TRY), {"key": DB_LOCK_KEY}).scalar():
                conn.commit()
                self._conn = conn
                log.warning("the database lock was lost with its connection; taken again")
                return True
        except Exception:
            log.exception("the database's service lock was lost and cannot be taken again")
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        return False


def hold_database(url: str) -> DatabaseLock | None:
    """Take the database's service lock (PostgreSQL only; None for SQLite, whose file lies in
    the home and is covered by its lock). InputError names the database and the holder."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    me = f"cortex serve pid {os.getpid()} on {socket.gethostname()}"[:63]
    # Not the store's pool: a pooled connection is recycled, and the lock would go with it.
    engine = create_engine(url, poolclass=NullPool, connect_args={"application_name": me})
    conn = engine.connect()
    try:
        got = conn.execute(text(_TRY), {"key": DB_LOCK_KEY})
        if got.scalar():
            conn.commit()  # out of the implicit transaction; the session lock stays
            return DatabaseLock(engine, conn)
        holder = conn.execute(text(_HOLDER), {"key": DB_LOCK_KEY}).first()
    except BaseException:
        conn.close()
        engine.dispose()
        raise
    conn.close()
    engine.dispose()
    who = "another cortex serve"
    if holder is not None and holder[0]:
        who += f" ({holder[0]}" + (f", from {holder[1]}" if holder[1] else "") + ")"
    from cortex.control.db import shown

    where = shown(url)
    raise InputError(
        "serve", "database", f"{who} holds {where}; one service per database"
    ) from None
