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
import os
from pathlib import Path

from cortex.errors import InputError


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
