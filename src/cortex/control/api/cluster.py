"""Nodes and events: GET /v1/nodes, PATCH /v1/nodes/{name} (admin), GET /v1/events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from cortex.control import models as m
from cortex.control import store, store_health
from cortex.control.api.deps import MAX_ID, NO_NUL, Admin, Svc, Who
from cortex.control.api.jobs import visible
from cortex.control.schemas import EventOut, NodeOut

router = APIRouter(prefix="/v1")


def _node_out(n: m.Node, allocated: int, drained: bool = False) -> NodeOut:
    return NodeOut(
        name=n.name,
        flavor=n.flavor,
        kind=n.kind,
        gpus=n.gpus,
        healthy=n.healthy,
        schedulable=n.schedulable and not drained,  # a drain (draining too) starts nothing
        last_seen=n.last_seen,
        allocated_gpus=allocated,
    )


@router.get("/nodes", response_model=list[NodeOut], summary="Nodes and their health")
def list_nodes(who: Who, svc: Svc) -> list[NodeOut]:
    if svc.loop.fleet_version is not None:  # an executor's fleet (Ray): a row per node
        return _fleet_nodes(svc)
    used, _ = svc.loop.gpus_by_flavor().get(svc.loop.flavor, (0, 0))
    with svc.sessions() as s:
        rows = store.nodes(s)
        drains = store_health.drains(s)
        return [
            _node_out(n, used if n.id == svc.loop.node_id else 0, n.name in drains) for n in rows
        ]


def _fleet_nodes(svc: Svc) -> list[NodeOut]:
    """One row per node of the executor's fleet, from the loop's last tick: healthy while the
    executor has it up; schedulable follows the service's own node row (a cordon is for the
    whole service: nodes of an executor's fleet are not cordoned one by one)."""
    loop = svc.loop
    with svc.sessions() as s:
        own = next((n for n in store.nodes(s) if n.id == loop.node_id), None)
        drains = store_health.drains(s)
    seen = own.last_seen if own is not None else 0.0
    schedulable = own.schedulable if own is not None else True
    return [
        NodeOut(
            name=name,
            flavor=flavor,
            kind="gpu",
            gpus=gpus,
            healthy=up,
            schedulable=schedulable and up and name not in drains,
            last_seen=seen,
            allocated_gpus=used,
        )
        for name, flavor, gpus, up, used in loop.fleet_view.rows(loop.view.devices)
    ]


@router.patch(
    "/nodes/{name}",
    response_model=NodeOut,
    summary="Cordon (schedulable=false) or uncordon a node (admin)",
)
def patch_node(
    name: Annotated[str, Path(max_length=200, pattern=NO_NUL)],
    schedulable: bool,
    who: Admin,
    svc: Svc,
) -> NodeOut:
    with svc.sessions.begin() as s:
        n = store.node_named(s, name)
        if n is None:
            raise HTTPException(404, f"node {name} not found")
        n.schedulable = schedulable
        store.event(s, "node", f"node {name} schedulable={schedulable}", at=svc.clock.time())
        used, _ = svc.loop.gpus_by_flavor().get(svc.loop.flavor, (0, 0))
        mine = n.id == svc.loop.node_id
        out = _node_out(n, used if mine else 0, n.name in store_health.drains(s))
        node_id = n.id
    with svc.loop.lock:
        if node_id == svc.loop.node_id:
            svc.loop.schedulable = schedulable
    svc.loop.wake()
    return out


@router.get("/events", response_model=list[EventOut], summary="Recent events, newest first")
def list_events(
    who: Who,
    svc: Svc,
    job_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    team = None if who.admin else who.team
    with svc.sessions() as s:
        if job_id is not None:
            # 404 alike for another team's job and a missing one, as the job routes answer:
            # an empty list read as "nothing happened to it" (user14).
            visible(s, who, job_id)
        return [
            EventOut(id=e.id, at=e.at, kind=e.kind, job_id=e.job_id, team=e.team, message=e.message)
            for e in store.recent_events(s, team, job_id, limit)
        ]
