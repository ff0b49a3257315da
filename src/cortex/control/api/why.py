"""Why a job waits and where it stands: GET /v1/jobs/{id}/why and GET /v1/queue.

Both read the loop's last scheduling record (`cortex.control.why`) and the store; neither waits
for a tick. Team isolation is the job routes': another team's job or queue is a 404, worded as
a missing one, and another team's jobs ahead are counted, never named."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from cortex.control import estimate, store, store_health
from cortex.control.api.deps import JobId, Svc, TeamName, Who
from cortex.control.api.jobs import visible
from cortex.control.why import WAITING_FOR_DEVICES, never_reason
from cortex.control.why_metrics import WhyCollector
from cortex.drive.runs import is_final

router = APIRouter(prefix="/v1")

Scalar = int | float | str | bool


class BlockerOut(BaseModel):
    rank: int
    code: str
    message: str
    hint: str
    requested_gpus: int | None = None
    flavor: str | None = None
    free_gpus: int | None = None
    free_in_quota: int | None = None
    largest_block_gpus: int | None = None
    power_headroom_mw: float | None = None
    jobs_ahead: int | None = None
    # A capacity blocker of a job whose victims are still protected (min_runtime_s): when
    # enough of their protection has ended to hold it and it searches again (retry_by_s).
    preempt_at_s: float | None = None
    detail: dict[str, Scalar] = {}


CORDONED = BlockerOut(
    rank=1,
    code="NodeCordoned",
    message="the node is cordoned (schedulable=false): nothing starts on it",
    hint="an admin uncordons it: PATCH /v1/nodes/{name}?schedulable=true",
)


def out_of_service(svc: Any) -> BlockerOut | None:
    """The first blocker when no node is in service (each drained out or down): no pass can
    start anything, whatever the capacity figures say. None while one node still serves."""
    loop = svc.loop
    names = list(loop.node_names)
    view = loop.health_view
    if not names or any(n not in view.out and n not in view.down for n in names):
        return None
    with svc.sessions() as s:
        drains = store_health.drains(s)
    parts = []
    for n in names[:3]:
        d = drains.get(n)
        parts.append(
            f"{n}: drained: {d.reason}" if d is not None and n in view.out else f"{n}: down"
        )
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return BlockerOut(
        rank=1,
        code="NodesOutOfService",
        message=f"no node is in service ({'; '.join(parts)}{more})",
        hint="an admin returns a drained node: cortex undrain NODE",
    )


GATE_HINTS = {
    "JobHeldUser": "cortex release JOB",
    "Dependency": "nothing: it joins its queue when its dependencies complete",
    "JobArrayTaskLimit": "nothing: it starts as other members of its array end",
    "InvalidPriorityClass": "cancel it and submit it again at an allowed class, or an admin "
    "allows the class again (CORTEX_TEAM_PRIORITY_CLASSES) and restarts the service",
}


def gate_blocker(reason: str) -> BlockerOut:
    """A parked job's one blocker: its gate, as the loop last judged it (the row's reason)."""
    from cortex.control.queue_metrics import parked_reason

    code = parked_reason(reason)
    hint = GATE_HINTS.get(code, "nothing: its gates are judged again when a job ends")
    return BlockerOut(rank=1, code=code, message=reason, hint=hint)


class PlaceOut(BaseModel):
    queue: str
    position: int
    ahead_in_queue: int
    ahead_total: int


class PriorityOut(BaseModel):
    """What orders a waiting job (like sprio), for the profile's ordering policy `ordering`.
    Under `priority`: the class's value first (higher first), then its queue's weighted
    dominant share (lower first), then submission (earlier first)."""

    ordering: str
    priority_class: str
    priority: int | None
    queue_dominant_share: float
    submitted_at: float


class WhyOut(BaseModel):
    job_id: int
    state: str
    never: bool  # it can never run under the fleet and quotas it was judged against
    as_of: float | None  # when the scheduling pass this answer reads ran
    place: PlaceOut | None
    blockers: list[BlockerOut]
    summary: str
    start_estimate: dict[str, float | int | None] | None = None  # with ?start=true
    priority: PriorityOut | None = None  # a waiting job's ordering factors


@router.get(
    "/jobs/{job_id}/why",
    response_model=WhyOut,
    summary="Why a job is not running: its blockers ranked, with numbers and hints",
)
def why(
    job_id: JobId,
    who: Who,
    svc: Svc,
    start: bool = Query(False, description="add its start estimate (slower)"),
) -> WhyOut:
    with svc.sessions() as s:
        job = visible(s, who, job_id)
        state, reason, team = job.state, job.reason, job.team
        pclass, submitted = job.priority_class, job.submitted_at
        used = store.used_by_team(s) if state in ("queued", "requeued") else {}
    out = explain(svc, job_id, state, reason, team)
    if state in ("queued", "requeued"):
        out.priority = _priority(svc, team, pclass, submitted, used)
    if start and state in ("queued", "requeued"):
        got = svc.loop.why.current.estimates(estimate.for_loop(svc.loop), {job_id})
        out.start_estimate = estimate.to_dict(got.get(job_id))
    return out


def _priority(
    svc: Any, team: str, pclass: str, submitted: float, used: dict[tuple[str, str], int]
) -> PriorityOut:
    queues = svc.loop.mirror.queues  # replaced whole by the loop, never mutated
    topo = svc.loop.topo
    weight = next((q.weight for q in queues.queues if q.name == team), 1.0)
    share = max(
        (
            used.get((team, f), 0) / max(t, 1)
            for f, t in zip(topo.flavors, topo.flavor_gpus(), strict=True)
        ),
        default=0.0,
    )
    return PriorityOut(
        ordering=svc.loop.pol.ordering.name,
        priority_class=pclass,
        priority=queues.priority_classes.get(pclass),
        queue_dominant_share=share / weight,
        submitted_at=submitted,
    )


def explain(svc: Any, job_id: int, state: str, reason: str, team: str) -> WhyOut:
    book = svc.loop.why
    if state in ("queued", "requeued"):
        # One dict read of the loop's retry delays (atomic; no lock, no waiting for a tick).
        got = book.explain(job_id, team, svc.loop.mirror.backoff.get(job_id))
        blockers = [BlockerOut(**b) for b in got["blockers"]]
        # A cordon, or no node in service: no pass starts anything, whatever else holds.
        first = CORDONED if not svc.loop.schedulable else out_of_service(svc)
        if first is not None:
            blockers.insert(0, first)
            for i, b in enumerate(blockers, 1):
                b.rank = i
        if job_id in svc.loop.parked:  # a gate keeps it out of the queues (loop_gates.py)
            blockers = [gate_blocker(reason)]
        top = blockers[0]
        return WhyOut(
            job_id=job_id,
            state=state,
            never=False,
            as_of=got["as_of"] or None,
            place=got["place"],
            blockers=blockers,
            summary=f"{top.code}: {top.message}",
        )
    if state == "rejected":
        never = never_reason(reason)
        blockers = [BlockerOut(**never)] if never else []
        return WhyOut(
            job_id=job_id,
            state=state,
            never=True,
            as_of=None,
            place=None,
            blockers=blockers,
            summary=f"can never run: {reason}",
        )
    if state == "admitted":
        wait = BlockerOut(
            rank=1,
            code=WAITING_FOR_DEVICES,
            message="capacity reserved; waiting for the devices of a preempted job to free up",
            hint="nothing: it starts as soon as they do",
        )
        return WhyOut(
            job_id=job_id,
            state=state,
            never=False,
            as_of=None,
            place=None,
            blockers=[wait],
            summary=f"{wait.code}: {wait.message}",
        )
    summary = "finished" if is_final(state) else state
    return WhyOut(
        job_id=job_id,
        state=state,
        never=False,
        as_of=None,
        place=None,
        blockers=[],
        summary=f"{summary}: {reason}",
    )


class QueuedJob(BaseModel):
    id: int
    name: str
    gpus: int
    position: int
    ahead_in_queue: int
    ahead_other_queues: int  # counted, never named
    top_reason: str | None


class QueueEntry(BaseModel):
    queue: str
    pending: int
    jobs: list[QueuedJob]


class QueueOut(BaseModel):
    as_of: float | None
    queues: list[QueueEntry]


@router.get(
    "/queue",
    response_model=QueueOut,
    summary="Waiting jobs in queue order per cluster queue, with the jobs ahead of each",
)
def queue(
    who: Who,
    svc: Svc,
    team: TeamName | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> QueueOut:
    book = svc.loop.why
    rec = book.current
    names = rec.queue_names
    if not who.admin:
        if team is not None and team != who.team:
            raise HTTPException(404, f"team {team} not found")
        team = who.team
    if team is not None and team not in names:
        with svc.sessions() as s:
            known = store.has_queue(s, team)
        if not known:
            raise HTTPException(404, f"team {team} not found")
    shown = [team] if team is not None else list(names)
    entries = []
    for qname in shown:
        qi = names.index(qname) if qname in names else None
        ids = [j.id for _, j in rec.queues[qi] if j.id not in rec.started] if qi is not None else []
        entries.append((qname, len(ids), ids[:limit]))
    wanted = [jid for _, _, ids in entries for jid in ids]
    with svc.sessions() as s:
        rows = store.job_briefs(s, wanted)
    out = []
    for qname, n, ids in entries:
        jobs = []
        for jid in ids:
            p = rec.place(jid)
            assert p is not None  # every job of rec.queues has a place
            name, gpus = rows.get(jid, ("", 0))
            jobs.append(
                QueuedJob(
                    id=jid,
                    name=name,
                    gpus=gpus,
                    position=p.position,
                    ahead_in_queue=p.ahead_in_queue,
                    ahead_other_queues=p.ahead_total - p.ahead_in_queue,
                    top_reason=book.top(jid),
                )
            )
        out.append(QueueEntry(queue=qname, pending=n, jobs=jobs))
    return QueueOut(as_of=rec.at or None, queues=out)


def register_metrics(svc: Any) -> None:
    """`cortex_pending_jobs{queue,reason}` and `cortex_preemptions_total{rule}` on /metrics."""

    def preemptions() -> dict[str, int]:
        with svc.sessions() as s:
            return store.preemptions_by_rule(s)

    from cortex.control import dcgm_metrics, queue_metrics

    loop = svc.loop
    reg = svc.metrics.registry
    reg.register(WhyCollector(loop.why, preemptions, lambda: queue_metrics.parked_counts(loop)))
    reg.register(queue_metrics.QuotaCollector(loop))
    # Tests give it a reader of their own.
    svc.dcgm = dcgm_metrics.DcgmCollector(loop, job_label=svc.settings.metrics_job_label)
    reg.register(svc.dcgm)
