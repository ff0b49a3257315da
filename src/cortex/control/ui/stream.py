"""The incident feed over server-sent events: GET /ui/incidents/stream.

Incidents are rows of the events table (store_ui.INCIDENT_KINDS), so the feed needs no
second bus: the stream polls the store once a second for rows newer than the last it sent,
under the caller's team rule, and sends each as a rendered list item (the htmx SSE extension
swaps it into the page). A stream lasts at most STREAM_MAX_S: the browser's EventSource
reconnects with Last-Event-ID, so a revoked token stops within that, nothing is lost, and a
shutting-down server waits at most that long for open dashboards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from cortex.control import store_ui
from cortex.control.api.deps import MAX_ID, Svc
from cortex.control.auth import Principal
from cortex.control.ui import filters, incident_blast
from cortex.control.ui.render import SECURITY_HEADERS, TEMPLATES
from cortex.control.ui.session import LoginNeededError, Viewer, ui_principal

router = APIRouter(prefix="/ui", include_in_schema=False)
POLL_S = 1.0
STREAM_MAX_S = 25.0
BATCH = 100  # rows per poll at most; a burst drains over a few polls
RECHECK_EVERY = 5  # polls between checks that the token still works
RETRY_MS = 1000


def _last_id(request: Request, after: int) -> int:
    raw = request.headers.get("last-event-id", "")
    if raw.isdigit() and len(raw) <= 10:
        return max(after, min(int(raw), MAX_ID))
    return after


def sse_message(event_id: int, name: str, html: str) -> str:
    """One SSE message; a data line cannot hold a newline, so each line of the HTML is its
    own data line (the client joins them with newlines)."""
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"id: {event_id}\nevent: {name}\n{data}\n"


def _fetch(svc: Any, who: Principal, last: int) -> list[tuple[int, str]]:
    team = None if who.admin else who.team
    with svc.sessions() as s:
        rows = store_ui.incidents(s, team, last, BATCH)
        tpl = TEMPLATES.get_template("_incident.html")
        return incident_blast.rendered(s, rows, tpl)


@router.get("/incidents/stream")
async def incident_stream(
    request: Request, q: Annotated[filters.StreamQuery, Query()], who: Viewer, svc: Svc
) -> StreamingResponse:
    start = _last_id(request, q.after)

    async def events() -> AsyncIterator[str]:
        last = start
        yield f"retry: {RETRY_MS}\n\n"
        end = time.monotonic() + STREAM_MAX_S
        polls = 0
        while time.monotonic() < end and not await request.is_disconnected():
            polls += 1
            if polls % RECHECK_EVERY == 0:
                try:
                    await run_in_threadpool(ui_principal, request, svc)
                except LoginNeededError:
                    return
            for eid, html in await run_in_threadpool(_fetch, svc, who, last):
                last = eid
                yield sse_message(eid, "incident", html)
            await asyncio.sleep(POLL_S)

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
