"""GET /v1/jobs/{id}/power: a job's GPU draw over time (control/power_history.py), to its own
team or the admin; another team's job reads as a missing one (api/jobs.py's rule)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from cortex.control import store
from cortex.control.api.deps import JobId, Svc, Who

router = APIRouter(prefix="/v1")

Points = Annotated[int, Query(ge=2, le=2000, description="at most this many points")]


class JobPowerOut(BaseModel):
    job_id: int
    step_s: float  # the points' resolution: finer while the run is short
    running: bool  # drawing at the last sample
    t: list[float]  # each point's start (Unix seconds)
    watts: list[float | None]  # mean GPU draw over the point; None: a gap (not drawing)
    measured: list[bool | None]  # NVML read every GPU of it at every sample; else modelled


def job_power(svc: Any, who: Any, job_id: int, points: int) -> dict[str, Any]:
    """The series as a dict; 404 for a job the caller may not see or a service without a
    power policy (nothing books watts then). A job never seen drawing has empty lists."""
    with svc.sessions() as s:
        if store.visible_job(s, who, job_id) is None:
            raise HTTPException(404, f"job {job_id} not found")
    power = svc.loop.power
    if power is None:
        raise HTTPException(404, "no power policy: start the service with --power-policy")
    got = power.history.series(job_id, points)
    if got is None:
        return JobPowerOut(
            job_id=job_id, step_s=0.0, running=False, t=[], watts=[], measured=[]
        ).model_dump()
    return got.to_dict()


@router.get(
    "/jobs/{job_id}/power",
    response_model=JobPowerOut,
    summary="A job's GPU draw over time (measured where NVML reads every GPU, else modelled)",
)
def get_job_power(job_id: JobId, who: Who, svc: Svc, points: Points = 500) -> dict[str, Any]:
    return job_power(svc, who, job_id, points)
