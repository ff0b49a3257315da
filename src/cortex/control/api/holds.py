"""POST /v1/jobs/{id}/hold and /release (Slurm's `scontrol hold|release`): a held job stays
queued but the scheduler never sees it (control/loop_gates.py) until it is released."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from cortex.control import models as m
from cortex.control import store_gates
from cortex.control.api.deps import JobId, Svc, Who
from cortex.control.api.jobs import WAITING, job_out, visible
from cortex.control.schemas import JobOut

router = APIRouter(prefix="/v1")


@router.post("/jobs/{job_id}/hold", response_model=JobOut, summary="Hold a waiting job")
def hold(job_id: JobId, who: Who, svc: Svc) -> JobOut:
    with svc.sessions.begin() as s:
        job = visible(s, who, job_id)
        if job.state not in WAITING or job.cancel_requested:
            raise HTTPException(409, f"job {job_id} is {job.state}: only a waiting job is held")
        gate = store_gates.gate(s, job_id)
        if gate is None:
            s.add(m.JobGate(job_id=job_id, held=True, after_ok=[]))
        else:
            gate.held = True
        job.reason = f"held (cortex release {job_id})"
        # Asked before the commit as well: the loop may have read the job as ungated a moment
        # ago, and must park it in the tick that follows, not wait for the ask below.
        svc.loop.request_gates(hold_job=job_id)
    svc.loop.request_gates(hold_job=job_id)
    with svc.sessions() as s:
        out = job_out(svc, s, visible(s, who, job_id))
        out.gates = store_gates.to_dict(store_gates.gate(s, job_id))
        return out


@router.post("/jobs/{job_id}/release", response_model=JobOut, summary="Release a held job")
def release(job_id: JobId, who: Who, svc: Svc) -> JobOut:
    with svc.sessions.begin() as s:
        job = visible(s, who, job_id)
        gate = store_gates.gate(s, job_id)
        if gate is None or not gate.held:
            raise HTTPException(409, f"job {job_id} is not held")
        gate.held = False
        if job.state in WAITING:
            job.reason = "released"
    svc.loop.request_gates(job=job_id)
    with svc.sessions() as s:
        out = job_out(svc, s, visible(s, who, job_id))
        out.gates = store_gates.to_dict(store_gates.gate(s, job_id))
        return out
