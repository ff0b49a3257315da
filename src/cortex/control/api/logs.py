"""GET /v1/jobs/{id}/logs: the current attempt's output (a tail, saying when it cut), or a
follow that crosses attempts and ends only when the job is final."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from cortex.control import models as m
from cortex.control.api.deps import JobId, Svc, Who
from cortex.control.api.jobs import is_final, visible
from cortex.control.service import Service

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
) -> Response:
    with svc.sessions() as s:
        attempt = visible(s, who, job_id).attempt
    if not follow:
        text, skipped = read_tail(_path(svc, job_id, attempt, stream), tail)
        headers = {TRUNCATED_HEADER: str(skipped), ATTEMPT_HEADER: str(attempt)}
        return PlainTextResponse(text, headers=headers)
    return StreamingResponse(follow_job(svc, job_id, stream, tail), media_type="text/plain")


def _path(svc: Service, job_id: int, attempt: int, stream: str) -> Path | None:
    if attempt == 0:
        return None
    paths = svc.executor.log_paths(job_id, attempt)
    return Path(paths[0] if stream == "stdout" else paths[1])


def read_tail(path: Path | None, lines: int) -> tuple[str, int]:
    """The end of a log (at most TAIL_MAX_BYTES, then the last `lines` lines if asked) and how
    many bytes before it were left out."""
    if path is None or not path.exists():
        return "", 0
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        start = max(0, size - TAIL_MAX_BYTES)
        fh.seek(start)
        data = fh.read().decode(errors="replace")
    if lines <= 0:
        return data, start
    kept = data.splitlines(keepends=True)
    if len(kept) <= lines:
        return data, start
    return "".join(kept[-lines:]), start + len("".join(kept[:-lines]).encode())


def _job_state(svc: Service, job_id: int) -> tuple[str, int]:
    with svc.sessions() as s:
        job = s.get(m.Job, job_id)
        return (job.state, job.attempt) if job is not None else ("completed", 0)


async def follow_job(svc: Service, job_id: int, stream: str, tail: int) -> AsyncIterator[bytes]:
    """Yield each attempt's output as it grows, attempt after attempt, until the job is final
    and the last file is drained. Async, so that a client that hangs up cancels it at the next
    wait (a sync generator would keep a thread polling a queued job's log)."""
    deadline = time.monotonic() + FOLLOW_MAX_S
    attempt, pos, first = 0, 0, True
    while time.monotonic() < deadline:
        state, current = await asyncio.to_thread(_job_state, svc, job_id)
        if current != attempt:
            if attempt:  # drain the attempt that ended before moving on
                path = _path(svc, job_id, attempt, stream)
                while data := await asyncio.to_thread(_read_from, path, pos):
                    pos += len(data)
                    yield data
            attempt, pos = current, 0
        path = _path(svc, job_id, attempt, stream)
        if path is not None and path.exists():
            if first and tail > 0:
                chunk, _ = await asyncio.to_thread(read_tail, path, tail)
                pos = path.stat().st_size
                if chunk:
                    yield chunk.encode()
            first = False
            if path.stat().st_size < pos:
                pos = 0  # rotated or truncated under us: start the new file from its beginning
            data = await asyncio.to_thread(_read_from, path, pos)
            if data:
                pos += len(data)
                yield data
                continue
        if is_final(state):
            return
        await asyncio.sleep(FOLLOW_POLL_S)


def _read_from(path: Path | None, pos: int) -> bytes:
    if path is None or not path.exists():
        return b""
    with path.open("rb") as fh:
        fh.seek(pos)
        return fh.read(TAIL_MAX_BYTES)
