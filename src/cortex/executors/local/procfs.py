"""Process identity from Linux's /proc: the only record of another process's start time, which is
what tells a live job apart from an unrelated process that was handed the same pid later.

psutil would do this too, but it is one more compiled dependency for four fields of one file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, T, Z (zombie), X (dead), ...
    ppid: int
    pgrp: int
    session: int
    start_ticks: int  # clock ticks after boot: with the pid and the boot id, unique to a process

    @property
    def finished(self) -> bool:
        """A zombie has exited; only its parent's wait() is missing."""
        return self.state in ("Z", "X")


def parse_stat(pid: int, text: str) -> ProcStat:
    # The command name (field 2) is in parentheses and may itself contain spaces and ")", so split
    # after the last ")". Fields after it, from field 3: state ppid pgrp session ... starttime (22).
    rest = text[text.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=rest[0],
        ppid=int(rest[1]),
        pgrp=int(rest[2]),
        session=int(rest[3]),
        start_ticks=int(rest[19]),
    )


def proc_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None when there is no such process (any more)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    try:
        return parse_stat(pid, text)
    except (ValueError, IndexError):
        return None


@cache
def boot_id() -> str:
    """Changes at every boot; start ticks are only comparable within one boot."""
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def same_process(pid: int, start_ticks: int) -> ProcStat | None:
    """The stat of `pid` if it is still the process that started at `start_ticks` (zombie or not),
    else None: gone, or the pid now belongs to another process."""
    st = proc_stat(pid)
    if st is None or st.start_ticks != start_ticks:
        return None
    return st


def all_stats() -> list[ProcStat]:
    """Every process visible to us. A scan of /proc costs a few ms; it is only done when a job
    is being stopped or cleaned up, never per poll."""
    out: list[ProcStat] = []
    for name in os.listdir(_PROC):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                out.append(st)
    return out


def job_running(runner_pid: int, pgid: int) -> bool:
    """Whether a run's job has a process still running: one below its runner or in its process
    group, the runner itself apart. Asked just before a stop is signalled, so that a job which
    exits because of the signal is never taken for one that had finished before it."""
    return any(
        not s.finished and s.pid != runner_pid and (s.ppid == runner_pid or s.pgrp == pgid)
        for s in all_stats()
    )
