"""POST /v1/jobs/{id}/progress: a progress report from tooling outside the job, with the team's
own token (the training workloads report through their metrics file instead: a job is never
given a credential; see cortex.control.progress)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from cortex.control import store
from cortex.control import store_health as sh
from cortex.control.api.deps import MAX_ID, JobId, Svc, Who, err
from cortex.control.progress import FUTURE_SLACK_S, MAX_LOSS, MAX_RATE, MAX_STEP, from_report

router = APIRouter(prefix="/v1")

Step = Annotated[int, Field(ge=0, le=MAX_STEP, strict=True)]


class ProgressIn(BaseModel):
    """One report. Every field is bounded; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    attempt: Annotated[int, Field(ge=1, le=MAX_ID, strict=True)] = Field(
        description="the job's current attempt (CORTEX_ATTEMPT); a report for another is a 409"
    )
    step: Step
    loss: Annotated[float, Field(ge=-MAX_LOSS, le=MAX_LOSS)] | None = None
    samples_per_s: Annotated[float, Field(ge=0, le=MAX_RATE)] | None = None
    checkpoint_step: Step | None = None
    checkpoint_at: Annotated[float, Field(ge=0, le=1e11)] | None = Field(
        default=None,
        description="Unix seconds of the last checkpoint; no later than the service's clock"
        f" plus {FUTURE_SLACK_S:g} s of skew (422 otherwise)",
    )


class ProgressOut(BaseModel):
    attempt: int | None
    step: int | None
    loss: float | None
    samples_per_s: float | None
    reported_at: float | None
    checkpoint_step: int | None
    checkpoint_at: float | None
    source: str


@router.post(
    "/jobs/{job_id}/progress",
    response_model=ProgressOut,
    status_code=202,
    summary="Report a running job's progress (team token; one report per job per second)",
)
def report(job_id: JobId, body: ProgressIn, who: Who, svc: Svc) -> ProgressOut:
    now = svc.loop.clock.time()
    if body.checkpoint_at is not None and body.checkpoint_at > now + FUTURE_SLACK_S:
        # Refused, not clamped: a checkpoint no clock has reached yet is a wrong clock or a
        # wrong unit (ms), and clamping would make it "now", a checkpoint the job may never
        # have written. Taken, it stayed the newest checkpoint known (here and on the job row)
        # and hid every real one after it from the retry rule. Nothing is stored before this.
        raise err(
            422,
            ["body", "checkpoint_at"],
            f"checkpoint_at {body.checkpoint_at:.0f} is {body.checkpoint_at - now:.0f} s after"
            f" the service's clock ({now:.0f}); at most {FUTURE_SLACK_S:g} s ahead is taken",
        )
    with svc.sessions() as s:
        job = store.visible_job(s, who, job_id)
        if job is None:  # another team's job reads as a missing one (api/jobs.py's rule)
            raise HTTPException(404, f"job {job_id} not found")
        state, attempt = job.state, job.attempt
    if state != "running" or body.attempt != attempt:
        # A report from an earlier attempt (or for a job not running) is ignored, and says so.
        raise err(
            409,
            ["body", "attempt"],
            f"job {job_id} is {state}, attempt {attempt}: not the attempt reported",
            "conflict",
        )
    wait_s = svc.loop.progress.post(
        job_id, from_report(body.model_dump(), now), svc.loop.clock.monotonic()
    )
    if wait_s > 0:
        raise HTTPException(
            429,
            f"at most one progress report per job per second; retry in {wait_s:.2f} s",
            headers={"Retry-After": str(max(1, round(wait_s)))},
        )
    if body.checkpoint_at is not None:
        # Kept on the job row too: the loop's book is memory, and a restart must not forget
        # that the running attempt kept work (drive/runs.py judge_exit reads it at its exit).
        with svc.sessions.begin() as s:
            sh.note_checkpoint(s, job_id, body.checkpoint_at, now)
    got = progress_of(svc, job_id, attempt, now)
    assert got is not None
    return ProgressOut(**got)


def progress_of(svc: Any, job_id: int, attempt: int, now: float | None = None) -> dict | None:
    """A job's progress in its current attempt, from its metrics file and API reports."""
    if attempt < 1:
        return None
    with svc.sessions() as s:
        start = store.attempt_started_at(s, job_id, attempt)
    p = svc.loop.progress.current(job_id, attempt, start or 0.0, now)
    return None if p is None else p.to_dict()
