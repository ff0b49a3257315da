"""GET /v1/jobs/{id}/logs: the current attempt's output (a tail, saying when it cut), or a
follow that crosses attempts and ends only when the job is final."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from cortex.control import models as m
from cortex.control.api.deps import JobId, Svc, Who
from cortex.control.api.jobs import is_final, visible
from cortex.control.service import Service
from cortex.executors.base import rank_log_paths

router = APIRouter(prefix="/v1")
FOLLOW_POLL_S = 0.2
FOLLOW_MAX_S = 24 * 3600.0
TAIL_MAX_BYTES = 4 * 1024 * 1024
TRUNCATED_HEADER = "X-Cortex-Log-Truncated-Bytes"  # bytes left out at the start; 0: none
ATTEMPT_HEADER = "X-Cortex-Log-Attempt"


@router.get(
    "/jobs/{job_id}/logs",
    summary="A job's stdout or stderr: tail, or follow until the job is final",
    response_class=PlainTextResponse,
    description=(
        f"Without `follow`, the last {TAIL_MAX_BYTES} bytes at most of the current attempt; "
        f"`{TRUNCATED_HEADER}` says how many bytes were left out before them. With `follow`, "
        "the output of every attempt as it is written, until the job is final."
    ),
)
def logs(
    job_id: JobId,
    who: Who,
    svc: Svc,
    stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
    tail: Annotated[int, Query(ge=0, le=100000)] = 0,
    follow: bool = False,
    rank: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    with svc.sessions() as s:
        job = visible(s, who, job_id)
        attempt, nprocs = job.attempt, job.nprocs
    if rank >= nprocs:
        # The local executor's ranks share one file: rank 99999 of a one-rank job answered
        # rank 0's output as if it were that rank's.
        raise RequestValidationError(
            [{"loc": ("query", "rank"), "msg": f"job {job_id} has {nprocs} ranks (0 to "
              f"{nprocs - 1})", "type": "value_error"}]
        )  # fmt: skip
    if not follow:
        text, skipped = read_tail(_path(svc, job_id, attempt, stream, rank), tail)
        headers = {TRUNCATED_HEADER: str(skipped), ATTEMPT_HEADER: str(attempt)}
        return PlainTextResponse(text, headers=headers)
    body = follow_job(svc, job_id, stream, tail, rank)
    return StreamingResponse(body, media_type="text/plain")


def _path(svc: Service, job_id: int, attempt: int, stream: str, rank: int = 0) -> Path | None:
    if attempt == 0:
        return None
    if rank:  # one rank's own files, where the executor keeps ranks apart (Ray)
        paths = rank_log_paths(svc.executor, job_id, attempt, rank)
    else:
        paths = svc.executor.log_paths(job_id, attempt)
    return Path(paths[0] if stream == "stdout" else paths[1])


def read_tail(path: Path | None, lines: int) -> tuple[str, int]:
    """The end of a log (at most TAIL_MAX_BYTES, then the last `lines` lines if asked) and how
    many bytes before it were left out."""
    if path is None or not path.exists():
        return "", 0
    with path.open("rb") as fh:
        return _tail_of(fh, lines)


def _tail_of(fh: BinaryIO, lines: int) -> tuple[str, int]:
    """read_tail on an open file; leaves it positioned at the end it read to."""
    size = fh.seek(0, 2)
    start = max(0, size - TAIL_MAX_BYTES)
    fh.seek(start)
    data = fh.read(size - start).decode(errors="replace")
    if lines <= 0:
        return data, start
    kept = data.splitlines(keepends=True)
    if len(kept) <= lines:
        return data, start
    return "".join(kept[-lines:]), start + len("".join(kept[:-lines]).encode())


class LogFollower:
    """Reads one attempt's log as it grows, across rotation (issue 9: the runner rotates a log
    at its cap). It holds the file open: when the path names a new file (a rename rotation),
    what is left in the old one is read through the open handle first, then the new file from
    its start; a file cut short in place (rotation keeping no parts) is read again from 0.
    The runner closes a part before it renames it, so once the path names a new file nothing
    more is written to the old one. Blocking; the route calls it in a thread."""

    def __init__(self, path: Path | None, tail_lines: int = 0) -> None:
        self.path = path
        self.tail_lines = tail_lines
        self.fh: BinaryIO | None = None
        self.ino = -1

    def read(self) -> bytes:
        """What was written since the last call (at most TAIL_MAX_BYTES); b"" if nothing."""
        if self.fh is None and not self._open():
            return b""
        assert self.fh is not None
        head = b""
        if self.tail_lines > 0:
            text, _ = _tail_of(self.fh, self.tail_lines)
            self.tail_lines = 0
            head = text.encode()
        data = self.fh.read(TAIL_MAX_BYTES)
        if data or head:
            return head + data
        try:
            st = self.path.stat() if self.path is not None else None
        except FileNotFoundError:
            return b""  # renamed away, the next part not made yet
        if st is None:
            return b""
        if st.st_ino != self.ino:
            rest = self.fh.read()  # the old part's last bytes, then the new part from 0
            self.close()
            return rest + self.read()
        if st.st_size < self.fh.tell():
            self.fh.seek(0)  # cut short in place: the new content starts at 0
            return self.fh.read(TAIL_MAX_BYTES)
        return b""

    def _open(self) -> bool:
        if self.path is None:
            return False
        try:
            self.fh = self.path.open("rb")
        except FileNotFoundError:
            return False
        self.ino = os.fstat(self.fh.fileno()).st_ino
        return True

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _job_state(svc: Service, job_id: int) -> tuple[str, int]:
    with svc.sessions() as s:
        job = s.get(m.Job, job_id)
        return (job.state, job.attempt) if job is not None else ("completed", 0)


async def follow_job(
    svc: Service, job_id: int, stream: str, tail: int, rank: int = 0
) -> AsyncIterator[bytes]:
    """Yield each attempt's output as it grows, attempt after attempt, until the job is final
    and the last file is drained. Async, so that a client that hangs up cancels it at the next
    wait (a sync generator would keep a thread polling a queued job's log)."""
    deadline = time.monotonic() + FOLLOW_MAX_S
    attempt = 0
    follower = LogFollower(None, tail)
    try:
        while time.monotonic() < deadline:
            state, current = await asyncio.to_thread(_job_state, svc, job_id)
            if current != attempt:
                while data := await asyncio.to_thread(follower.read):
                    yield data  # drain the attempt that ended before moving on
                follower.close()
                # The tail applies to the first attempt seen, not to later ones.
                follower = LogFollower(
                    _path(svc, job_id, current, stream, rank), tail if not attempt else 0
                )
                attempt = current
            data = await asyncio.to_thread(follower.read)
            if data:
                yield data
                continue
            if is_final(state):
                return
            await asyncio.sleep(FOLLOW_POLL_S)
    finally:
        follower.close()
