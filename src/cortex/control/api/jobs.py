"""Reading and cancelling jobs: GET /v1/jobs, GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select

from cortex.control import estimate, preemptions, store, store_gates, store_health
from cortex.control import models as m
from cortex.control.api.deps import JobId, Svc, TeamName, Who
from cortex.control.api.progress import progress_of
from cortex.control.auth import Principal
from cortex.control.schemas import JobList, JobOut
from cortex.control.service import Service
from cortex.drive.runs import is_final  # logs.py imports it from here
from cortex.workload.states import JobState

router = APIRouter(prefix="/v1")
WAITING = (JobState.QUEUED.value, JobState.REQUEUED.value)


def job_out(svc: Service, s: Any, job: m.Job, with_history: bool = False) -> JobOut:
    devices = svc.loop.devices_of(job.id) if job.state == "running" else None
    out = store.job_out(
        job, devices=devices, hist=store.history(s, job.id) if with_history else None
    )
    if job.state in WAITING:
        out.pending_reason = svc.loop.why.top(job.id)
    return out


def visible(s: Any, who: Principal, job_id: int) -> m.Job:
    """The job if the caller may see it; 404 alike for another team's job and a missing one."""
    job = store.visible_job(s, who, job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return job


@router.get("/jobs", response_model=JobList, summary="List jobs (newest first)")
def list_jobs(
    who: Who,
    svc: Svc,
    team: TeamName | None = None,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    start: bool = Query(False, description="add waiting jobs' start estimates (slower)"),
) -> JobList:
    if not who.admin:
        if team is not None and team != who.team:  # as /v1/queue, /v1/share, /v1/goodput
            raise HTTPException(404, f"team {team} not found")
        team = who.team
    st = state.value if state is not None else None
    with svc.sessions() as s:
        out = [job_out(svc, s, j) for j in store.recent_jobs(s, team, st, limit)]
        if not out and team is not None and not _known_team(s, team):
            # An admin's typo (`cortex jobs --team fsdd`) listed nothing, as if fsdd had no jobs.
            raise HTTPException(404, f"team {team} not found")
    waiting = {j.id for j in out if j.state in WAITING}
    if start and waiting:
        got = svc.loop.why.current.estimates(estimate.for_loop(svc.loop), waiting)
        for j in out:
            if j.state in WAITING:
                j.start_estimate = estimate.to_dict(got.get(j.id))
    return JobList(jobs=out)


def _known_team(s: Any, team: str) -> bool:
    """A team with a token, or with jobs (an admin may submit for a team that has no token)."""
    if store_health.team_exists(s, team):
        return True
    return s.scalar(select(m.Job.id).where(m.Job.team == team).limit(1)) is not None


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job with its state history")
def get_job(job_id: JobId, who: Who, svc: Svc) -> JobOut:
    with svc.sessions() as s:
        out = job_out(svc, s, visible(s, who, job_id), with_history=True)
        out.preemption_records = [preemptions.to_dict(p) for p in store.preemptions_of(s, job_id)]
        out.gates = store_gates.to_dict(store_gates.gate(s, job_id))
    out.progress = progress_of(svc, job_id, out.attempt)
    return out


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    status_code=202,
    summary="Ask for a job to be cancelled (SIGTERM, grace period, SIGKILL)",
)
def cancel(job_id: JobId, who: Who, svc: Svc) -> JobOut:
    with svc.sessions.begin() as s:
        job = visible(s, who, job_id)
        if not is_final(job.state) and not job.cancel_requested:
            store.request_cancel(s, job, svc.clock.time())
    # Outside the write transaction: the loop's lock (taken for the devices) is never waited
    # for while holding the store's write lock, which the tick takes under the loop's lock.
    svc.loop.request_cancel(job_id)
    with svc.sessions() as s:
        return job_out(svc, s, job)
