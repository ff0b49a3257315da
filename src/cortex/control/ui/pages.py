"""The dashboard's pages: login, overview with the fleet heatmap, jobs (the queue with why
pending), quotas, incidents. Each page renders its first content on the server (the first
paint needs no second request); htmx then refreshes the parts through ui/fragments.py."""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from cortex.control import store, store_ui
from cortex.control.api.deps import JobId, Svc
from cortex.control.ui import filters, goodput_view, incident_blast, views
from cortex.control.ui.job_efficiency import efficiency
from cortex.control.ui.render import render
from cortex.control.ui.session import (
    LoginNeededError,
    SameOrigin,
    Viewer,
    check_token,
    clear_login,
    set_login,
)

router = APIRouter(prefix="/ui", include_in_schema=False)
LOGIN_WHY = {
    "new": "",
    "expired": "Your session ended: the token is invalid, expired or revoked. Sign in again.",
    "out": "Signed out.",
}
MAX_LOGIN_BODY = 4096
FEED_FIRST = 50  # incidents rendered with the page; newer ones arrive over the stream


def _secure(svc: Svc) -> bool:
    return bool(getattr(svc.settings, "ui_cookie_secure", True))


@router.get("/login")
def login_page(request: Request, why: Literal["new", "expired", "out"] = "new") -> Response:
    return render(request, "login.html", {"message": LOGIN_WHY[why], "error": None})


@router.post("/login", dependencies=[SameOrigin])
async def login(request: Request, svc: Svc) -> Response:
    """A form post of the token: checked by the API's auth, then kept in the cookie."""
    body = await request.body()
    try:
        fields = parse_qs(body[:MAX_LOGIN_BODY].decode("utf-8", "replace"), max_num_fields=4)
    except ValueError:  # more fields than a login form has
        fields = {}
    token = (fields.get("token") or [""])[0]
    try:
        await run_in_threadpool(check_token, svc, token)
    except LoginNeededError as e:
        ctx = {"message": "", "error": f"token: {e.reason}"}
        return render(request, "login.html", ctx, status=401)
    resp = RedirectResponse("/ui/", status_code=303)
    set_login(resp, token.strip(), _secure(svc))
    return resp


@router.post("/logout", dependencies=[SameOrigin])
def logout(svc: Svc) -> Response:
    resp = RedirectResponse("/ui/login?why=out", status_code=303)
    clear_login(resp, _secure(svc))
    return resp


@router.get("")
def root_redirect() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/")
def overview_page(request: Request, who: Viewer, svc: Svc) -> Response:
    with svc.sessions() as s:
        ov = views.overview(svc, who, s)
    ctx = {"who": who, "ov": ov, "page": "overview", "legend": _legend()}
    return render(request, "overview.html", ctx)


def _legend() -> list[tuple[int, str]]:
    return list(enumerate(views.STATE_NAMES))


@router.get("/jobs")
def jobs_page(request: Request, who: Viewer, svc: Svc) -> Response:
    try:
        f = filters.JobFilter.model_validate(dict(request.query_params))
        errors: list[str] = []
    except ValidationError as e:
        f, errors = filters.JobFilter(), filters.messages(e)
    ctx = {"who": who, "page": "jobs", "errors": errors, **jobs_context(svc, who, f)}
    return render(request, "jobs.html", ctx, status=422 if errors else 200)


def jobs_context(svc: Svc, who: Viewer, f: filters.JobFilter) -> dict[str, object]:
    """A page of jobs under the caller's team rule (the API's: a team asking for another
    team's jobs gets none, and is told so)."""
    from cortex.control.api.jobs import WAITING, job_out

    team, note = f.team, ""
    if not who.admin:
        if team is not None and team != who.team:
            note = f"team {team}: you can see only your own team's jobs ({who.team})"
        team = who.team
    rows = []
    total = 0
    if not note:
        with svc.sessions() as s:
            got, total = store_ui.jobs_page(
                s, team, f.states(), (f.page - 1) * f.per_page, f.per_page
            )
            rows = [job_out(svc, s, j) for j in got]
    pages = max(1, -(-total // f.per_page))
    return {
        "f": f,
        "rows": rows,
        "total": total,
        "pages": pages,
        "note": note,
        "waiting": WAITING,
        "states": filters.STATE_CHOICES,
        "now": svc.clock.time(),
    }


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: JobId, who: Viewer, svc: Svc) -> Response:
    """One job: the API's own answer (GET /v1/jobs/{id}: state history, preemptions,
    progress), its place on the heatmap, and its why while it waits."""
    from cortex.control.api.jobs import WAITING, get_job

    try:
        job = get_job(job_id, who, svc)
    except HTTPException as e:
        ctx = {"who": who, "page": "jobs", "message": str(e.detail)}
        return render(request, "missing.html", ctx, status=e.status_code)
    placed = svc.loop.mirror.placement.get(job_id) if job.state == "running" else None
    nodes = [(n, k, svc.loop.node_names[n]) for n, k in placed or ()]
    with svc.sessions() as s:
        row = store.visible_job(s, who, job_id)
        books = goodput_view.job_split(svc, s, row) if row is not None else None
    power = _job_power(svc, job_id)
    ctx = {
        "who": who,
        "page": "jobs",
        "j": job,
        "nodes": nodes,
        "highlight": ",".join(str(n) for n, _, _ in nodes),
        "waiting": WAITING,
        "legend": _legend(),
        "now": svc.clock.time(),
        "books": books,
        "power": power,
        "power_chart": svc.loop.power is not None and job.attempt >= 1,
        "eff": efficiency(svc, job_id, job.progress, power) if placed else None,
        **goodput_view.LOOK,
    }
    return render(request, "job.html", ctx)


def _job_power(svc: Svc, job_id: int) -> dict[str, float] | None:
    """A running job's cap level and modelled draw (the loop's published power report)."""
    if svc.loop.power is None:
        return None
    got = svc.loop.power.report().jobs.get(job_id)
    if got is None:
        return None
    level, watts, devices = got
    share = (
        svc.loop.power.books.levels[level] if 0 <= level < len(svc.loop.power.books.levels) else 1.0
    )
    return {"level": level, "watts": watts, "devices": len(devices), "share": share}


@router.get("/quotas")
def quotas_page(request: Request, who: Viewer, svc: Svc) -> Response:
    with svc.sessions() as s:
        rows, rest = views.quotas(svc, who, s)
    return render(
        request, "quotas.html", {"who": who, "page": "quotas", "rows": rows, "rest": rest}
    )


@router.get("/timeline")
def timeline_page(request: Request, who: Viewer) -> Response:
    return render(request, "timeline.html", {"who": who, "page": "timeline"})


@router.get("/incidents")
def incidents_page(request: Request, who: Viewer, svc: Svc) -> Response:
    team = None if who.admin else who.team
    with svc.sessions() as s:
        rows = store_ui.latest_incidents(s, team, FEED_FIRST)
        blasts = incident_blast.blast(s, rows)
    after = rows[0].id if rows else 0
    ctx = {"who": who, "page": "incidents", "rows": rows, "after": after, "blasts": blasts}
    return render(request, "incidents.html", ctx)
