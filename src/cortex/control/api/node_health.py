"""GET /v1/nodes/health (`cortex nodes --unhealthy`, like `sinfo -R`): each node's state,
health score, failures in the strike window and why it is out; POST /v1/nodes/{name}/drain and
/undrain (admin). Reasons are composed by the service (failure kinds and counts), never a job's
own text, so any team may read them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from cortex.control import node_health as nh
from cortex.control import store
from cortex.control import store_health as sh
from cortex.control.api.deps import NO_NUL, Admin, Svc, Who

router = APIRouter(prefix="/v1")
NodeName = Annotated[str, Path(max_length=200, pattern=NO_NUL)]
MAX_BURN_IN_S = 30 * 86400.0


class NodeHealthOut(BaseModel):
    name: str
    state: str  # up, spare, down (lost), draining (drained, jobs still on it), drained
    score: float
    node_failures: int  # node failures (lost, or named by the executor) within the window
    strikes: int  # of those, the ones counting toward a drain (not spent on one yet)
    job_failures: int  # failed runs on it that named no node, within the window
    reason: str
    since: float | None
    return_at: float | None


class DrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    reason: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    burn_in_s: float | None = Field(
        default=None, ge=0, le=MAX_BURN_IN_S, description="back after this long; none: undrain"
    )


@router.get("/nodes/health", response_model=list[NodeHealthOut], summary="Node health")
def health(who: Who, svc: Svc, unhealthy: bool = False) -> list[NodeHealthOut]:
    loop = svc.loop
    rules = loop.health.rules
    view = loop.health_view
    now = svc.clock.time()
    with svc.sessions() as s:
        fails = sh.node_failures_since(s, now - rules.window_s)
        drains = sh.drains(s)
    nodef: dict[str, int] = {}
    strikes: dict[str, int] = {}
    jobs: dict[str, int] = {}
    for f in fails:
        for book, yes in (
            (nodef, f.strike),
            (strikes, f.strike and not f.spent),
            (jobs, not f.strike),
        ):
            if yes:
                book[f.node] = book.get(f.node, 0) + 1
    out = []
    for name in loop.node_names:
        d = drains.get(name)
        k, j, live = nodef.get(name, 0), jobs.get(name, 0), strikes.get(name, 0)
        if d is not None:
            state = "drained" if name in view.out else "draining"
            reason = d.reason
        elif name in view.down:
            state, reason = "down", "lost: the executor reports it down"
        elif name in view.spares:
            state, reason = "spare", "held as a hot spare (--hot-spares)"
        else:
            state = "up"
            reason = f"{k} node failures, {j} job failures within {rules.window_s / 86400:g} d"
        if unhealthy and state in ("up", "spare") and not (k or j):
            continue
        out.append(
            NodeHealthOut(
                name=name,
                state=state,
                score=nh.score(live, d is not None, rules),
                node_failures=k,
                strikes=live,
                job_failures=j,
                reason=reason,
                since=d.drained_at if d is not None else None,
                return_at=d.return_at if d is not None else None,
            )
        )
    return out


def _known(svc: Svc, name: str) -> None:
    if name not in svc.loop.node_names:
        raise HTTPException(404, f"node {name} not found")


@router.post("/nodes/{name}/drain", summary="Drain a node (admin): out of service, with reason")
def drain(name: NodeName, body: DrainIn, who: Admin, svc: Svc) -> dict[str, object]:
    _known(svc, name)
    now = svc.clock.time()
    back = None if body.burn_in_s is None else now + body.burn_in_s
    with svc.sessions.begin() as s:
        sh.put_drain(s, name, body.reason, "admin", now, back)
        store.event(s, "node", f"node {name} drained (admin): {body.reason}", at=now)
    svc.loop.health.dirty = True  # the loop reloads the drains at its next tick
    svc.loop.wake()
    return {"node": name, "drained_at": now, "return_at": back}


@router.post("/nodes/{name}/undrain", summary="Return a drained node to service (admin)")
def undrain(name: NodeName, who: Admin, svc: Svc) -> dict[str, object]:
    _known(svc, name)
    now = svc.clock.time()
    with svc.sessions.begin() as s:
        if not sh.remove_drain(s, name):
            raise HTTPException(409, f"node {name} is not drained")
        store.event(s, "node", f"node {name} undrained (admin)", at=now)
    svc.loop.health.dirty = True
    svc.loop.wake()
    return {"node": name, "undrained_at": now}
