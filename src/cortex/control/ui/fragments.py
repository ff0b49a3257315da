"""Parts of pages that htmx loads and refreshes (HTML fragments), the heatmap's binary
snapshot, and cancelling a job from the page. Every parameter is bounded; a bad one is a 422
naming the field (the API's error shape)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from cortex.control.api import jobs as api_jobs
from cortex.control.api import why as api_why
from cortex.control.api.deps import JobId, Svc, err
from cortex.control.ui import filters, views
from cortex.control.ui.blocking import blast, blocking
from cortex.control.ui.filters import WAITING
from cortex.control.ui.heat_view import node_cooling, node_temp
from cortex.control.ui.pages import jobs_context
from cortex.control.ui.power_view import node_power
from cortex.control.ui.render import SECURITY_HEADERS, render
from cortex.control.ui.session import SameOrigin, Viewer

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/fragments/overview")
def overview_fragment(
    request: Request, q: Annotated[filters.EmptyQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    with svc.sessions() as s:
        ov = views.overview(svc, who, s)
    return render(request, "_overview.html", {"who": who, "ov": ov})


@router.get("/fragments/jobs")
def jobs_fragment(
    request: Request, f: Annotated[filters.JobFilter, Query()], who: Viewer, svc: Svc
) -> Response:
    ctx = {"who": who, **jobs_context(svc, who, f)}
    return render(request, "_jobs.html", ctx)


@router.get("/fragments/why/{job_id}")
def why_fragment(
    request: Request,
    job_id: JobId,
    q: Annotated[filters.WhyQuery, Query()],
    who: Viewer,
    svc: Svc,
) -> Response:
    """The job's ranked blockers, its place, and with ?start=true the start estimate: the
    API's own answer (GET /v1/jobs/{id}/why), rendered."""
    out = api_why.why(job_id, who, svc, start=q.start)
    rows = blocking(svc.loop.why.current, job_id, who) if out.state in WAITING else []
    return render(request, "_why.html", {"why": out, "job_id": job_id, "blocking": rows})


@router.post("/jobs/{job_id}/cancel", dependencies=[SameOrigin])
def cancel(request: Request, job_id: JobId, who: Viewer, svc: Svc) -> Response:
    """The API's cancel (same rules: another team's job is a 404), then the row again."""
    api_jobs.cancel(job_id, who, svc)
    with svc.sessions() as s:
        job = api_jobs.visible(s, who, job_id)
        row = api_jobs.job_out(svc, s, job)
    ctx = {"j": row, "who": who, "waiting": api_jobs.WAITING, "now": svc.clock.time()}
    return render(request, "_job_row.html", ctx)


@router.get("/fragments/quotas")
def quotas_fragment(
    request: Request, q: Annotated[filters.EmptyQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    with svc.sessions() as s:
        rows, rest = views.quotas(svc, who, s)
    return render(request, "_quotas.html", {"who": who, "rows": rows, "rest": rest})


@router.get("/quotas/history")
def quotas_history(q: Annotated[filters.HistoryQuery, Query()], who: Viewer, svc: Svc) -> Response:
    """GPUs held per team over time (the quota page's chart): JSON for uPlot."""
    with svc.sessions() as s:
        body = views.quota_history(svc, who, s, q.hours, q.points)
    return JSONResponse(body, headers=SECURITY_HEADERS)


@router.get("/timeline.json")
def timeline_data(q: Annotated[filters.TimelineQuery, Query()], who: Viewer, svc: Svc) -> Response:
    """The job timeline's runs and marks (the caller's jobs only; the admin's: all)."""
    with svc.sessions() as s:
        body = views.timeline(svc, who, s, q.hours, q.limit, q.by)
    return JSONResponse(body, headers=SECURITY_HEADERS)


# ---- the heatmap ----------------------------------------------------------------------------
@router.get("/heatmap/meta")
def heatmap_meta(q: Annotated[filters.EmptyQuery, Query()], who: Viewer, svc: Svc) -> Response:
    """The fleet's shape, fetched once per page: node count, where each pod, hall and rack
    starts (the page finds a node's pod and hall by bisection), and the state names of the
    snapshot's bytes."""
    topo = svc.loop.topo
    order = views.display_order(topo)
    pods, halls, racks = topo.node_pod, topo.node_hall, topo.node_rack
    if order is not None:  # cells in `order`: the starts are positions in it
        pods, halls, racks = ([a[n] for n in order.tolist()] for a in (pods, halls, racks))
    hall_start = _starts(halls)
    body = {
        "nodes": topo.n_nodes,
        "pod_start": _starts(pods),
        "hall_start": hall_start,
        "rack_start": _starts(racks),
        "halls": [topo.hall_names[halls[n]] for n in hall_start],
        "states": list(views.STATE_NAMES),
        "power": svc.loop.power is not None,
        # Position -> node index, only when the cells are not in node order (heatmap.bin's
        # bytes are sent in this order; the page maps back for the tooltip and the click).
        "order": None if order is None else order.tolist(),
    }
    return JSONResponse(body, headers=SECURITY_HEADERS)


def _starts(a: list[int]) -> list[int]:
    return [0] + [n for n in range(1, len(a)) if a[n] != a[n - 1]]


@router.get("/heatmap.bin")
def heatmap_bin(q: Annotated[filters.HeatmapQuery, Query()], who: Viewer, svc: Svc) -> Response:
    """One byte per node in topology order (its state, or the share of its GPUs in use):
    12,500 bytes for a 100k-GPU fleet, never a JSON dump of nodes. The order is the meta's
    (`views.display_order`)."""
    loop = svc.loop
    # Taken before the states (a node joining meanwhile cannot lengthen it); a join sets the
    # topology before the tick rebuilds the states, so it can still name nodes past them:
    # those are left out (the fleet only grows, so the rest keep their order).
    order = views.display_order(loop.topo)
    extra: dict[str, str] = {}
    if q.color == "power":
        if loop.power is None:
            raise err(422, ["query", "color"], "power: the service runs no power policy")
        got = node_power(loop, views.node_states(loop) == views.DOWN)
    elif q.color == "cooling":
        if loop.power is None:
            raise err(422, ["query", "color"], "cooling: the service runs no power policy")
        got, temp = node_cooling(loop, views.node_states(loop) == views.DOWN)
        extra["X-Cortex-Outdoor-C"] = f"{temp:.1f}"
    elif q.color == "temp":
        if loop.power is None:
            raise err(422, ["query", "color"], "temp: the service runs no power policy")
        got, measured = node_temp(loop, views.node_states(loop) == views.DOWN)
        # The first `measured` node indices are measured; the rest modelled.
        extra["X-Cortex-Temp-Measured"] = str(measured)
    else:
        got = (views.node_states if q.color == "state" else views.node_used)(loop)
    if order is not None and len(order) > len(got):
        order = order[order < len(got)]
    data = (got if order is None else got[order]).tobytes()
    headers = {**SECURITY_HEADERS, "X-Cortex-Nodes": str(len(data)), **extra}
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.get("/fragments/node")
def node_fragment(
    request: Request, q: Annotated[filters.NodeQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    """One node, found by the index the page computed from the mouse position: its place, state
    and the caller's jobs on it (other teams' jobs are counted in GPUs, never named)."""
    loop = svc.loop
    topo = loop.topo
    if q.index >= topo.n_nodes:
        raise err(422, ["query", "index"], f"no node {q.index}: the fleet has {topo.n_nodes}")
    n = q.index
    st = loop.mirror.state
    state = views.STATE_NAMES[int(views.node_states(loop)[n])]
    mine: list[dict[str, Any]] = []
    others = 0
    for jid, gpus in list(st.node_jobs[n].items()):
        job = loop.mirror.jobs.get(jid)
        if job is None:
            continue
        if who.admin or job.team == who.team:
            mine.append({"id": jid, "name": job.name, "team": job.team, "gpus": gpus})
        else:
            others += gpus
    f = topo.node_flavor[n]
    node = {
        "index": n,
        "name": loop.node_names[n] if n < len(loop.node_names) else f"node-{n}",
        "flavor": topo.flavors[f],
        "hall": topo.hall_names[topo.node_hall[n]],
        "pod": topo.node_pod[n],
        "rack": topo.node_rack[n],
        "gpus": st.gpn[f],
        "free": st.node_free[n] if st.node_up[n] else 0,
        "state": state,
    }
    hits = blast(loop, n, who, svc.clock.time(), svc.settings.grace_s)
    ctx = {"node": node, "mine": mine, "others": others, "hits": hits}
    return render(request, "_node.html", ctx)
