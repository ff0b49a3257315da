"""POST /v1/jobs/dry-run: a submission checked as POST /v1/jobs checks it (the same 4xx), then
answered with where and when it would start; nothing is stored (control/dryrun.py)."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from cortex.control.api.deps import err, principal
from cortex.control.api.submit import parse_submission
from cortex.control.dryrun import dry_run
from cortex.control.service import Service

router = APIRouter(prefix="/v1")
# One dry run at a time per service: each may run the scheduler forward for seconds (the
# estimator's budget), so a burst of them must not take every CPU from the loop.
_ONE = threading.Lock()


@router.post(
    "/jobs/dry-run",
    summary="Where and when a job would start (nothing is stored)",
    description="The body of POST /v1/jobs for one job; one dry run at a time (429 with "
    "Retry-After while another runs). Answers `start_s` (null: not within "
    "the estimate's horizon), `low_s`/`high_s` (the band), `flavor`, `gpus` and `nodes` (the "
    "point estimate's placement), or `never: true` with the reason.",
)
async def submit_dry_run(request: Request) -> dict[str, Any]:
    svc: Service = request.app.state.service
    who = await principal(request, svc)
    body = await request.body()
    if len(body) > svc.settings.max_body_bytes:
        raise err(413, ["body"], "body is over the size limit", "too_large")
    is_yaml = "yaml" in request.headers.get("content-type", "")
    reqs, many = await run_in_threadpool(parse_submission, svc, body, is_yaml, who)
    arrays = {(getattr(r, "_array_member", None) or (None,))[0] for r in reqs}
    if many and len(arrays) == 1 and None not in arrays:  # one job's array (gates.expand)
        msg = f"a dry run takes one job; this array makes {len(reqs)}: dry-run one member"
        raise err(422, ["body", "array"], msg, "type_error")
    if many:
        raise err(422, ["body", "jobs"], "a dry run takes one job", "type_error")
    if not _ONE.acquire(blocking=False):
        raise HTTPException(429, "another dry run is running; retry", {"Retry-After": "1"})
    try:
        # The estimate runs the scheduler for up to its time budget: off the event loop.
        return await run_in_threadpool(dry_run, svc.loop, reqs[0].job_spec(), svc.clock.time())
    finally:
        _ONE.release()
