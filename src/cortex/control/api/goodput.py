"""GET /v1/goodput and GET /v1/jobs/{id}/goodput: where the GPU-time went (control/goodput.py).
A team sees its own jobs and books; another team's job or team is a 404, as a missing one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from cortex.control import goodput, store
from cortex.control import store_health as sh
from cortex.control.api.deps import JobId, Svc, TeamName, Who

router = APIRouter(prefix="/v1")

DEFAULT_WINDOW_S = 7 * 86400.0  # `since` when not given: the last week
MAX_TIME_S = 1e11  # Unix seconds bound (year 5138): past it a value is a mistake
Since = Annotated[float | None, Query(ge=0, le=MAX_TIME_S, allow_inf_nan=False)]
LargeGpus = Annotated[int | None, Query(ge=1, le=10_000_000)]


@router.get("/goodput", summary="Goodput and its losses, for the fleet or one team")
def fleet(
    who: Who,
    svc: Svc,
    team: TeamName | None = None,
    since: Since = None,
    large_gpus: LargeGpus = None,
) -> dict[str, Any]:
    if not who.admin:
        if team is not None and team != who.team:
            raise HTTPException(404, f"team {team} not found")
        team = who.team
    now = svc.clock.time()
    gbps = svc.loop.topo.spec.storage_write_gbps  # prices a declared checkpoint size
    start = now - DEFAULT_WINDOW_S if since is None else since
    large = large_gpus or goodput.large_job_gpus()
    with svc.sessions() as s:
        if team is not None and not sh.team_exists(s, team):
            raise HTTPException(404, f"team {team} not found")
        return goodput.fleet_goodput(s, team, start, svc.loop.progress, now, large, gbps)


@router.get("/jobs/{job_id}/goodput", summary="One job's goodput, attempt by attempt")
def job(job_id: JobId, who: Who, svc: Svc, large_gpus: LargeGpus = None) -> dict[str, Any]:
    now = svc.clock.time()
    gbps = svc.loop.topo.spec.storage_write_gbps  # prices a declared checkpoint size
    large = large_gpus or goodput.large_job_gpus()
    with svc.sessions() as s:
        row = store.visible_job(s, who, job_id)
        if row is None:  # another team's job reads as a missing one
            raise HTTPException(404, f"job {job_id} not found")
        return goodput.job_goodput(s, row, svc.loop.progress, now, large, gbps)
