"""The operator's pages: power (site and halls against their caps, the ramp, the caps in force,
what power holds back) and goodput (where the held GPU-time went, by team, the jobs that lost
the most). Each page renders its content on the server; htmx refreshes it through the
fragment of the same name. Parameters are bounded (ui/filters.py): a page shows a bad one in
the page (422), a fragment answers 422 naming the field."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from cortex.control import store
from cortex.control.api.deps import JobId, Svc, err
from cortex.control.api.job_power import job_power
from cortex.control.ui import filters
from cortex.control.ui.goodput_view import LOOK, cached_goodput, peek_goodput
from cortex.control.ui.power_forecast import forecast
from cortex.control.ui.power_view import power_page
from cortex.control.ui.progress_chart import series
from cortex.control.ui.render import SECURITY_HEADERS, render
from cortex.control.ui.session import Viewer

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/power")
def power(
    request: Request, q: Annotated[filters.EmptyQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    p = power_page(svc, who)
    ctx = {"who": who, "page": "power", "p": p, "battery": p is not None and p.battery is not None}
    return render(request, "power.html", ctx)


@router.get("/fragments/power")
def power_fragment(
    request: Request, q: Annotated[filters.EmptyQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    return render(request, "_power.html", {"who": who, "p": power_page(svc, who)})


@router.get("/power/forecast.json")
def power_forecast(q: Annotated[filters.ForecastQuery, Query()], who: Viewer, svc: Svc) -> Response:
    """Site-wide watts only (no job is named): every signed-in viewer sees the site's draw."""
    got = forecast(svc, q.hours, q.points)
    if got is None:
        raise err(404, ["path"], "the service runs no power policy", "not_found")
    return JSONResponse(got.to_dict(), headers=SECURITY_HEADERS)


@router.get("/power/battery.json")
def power_battery(q: Annotated[filters.EmptyQuery, Query()], who: Viewer, svc: Svc) -> Response:
    """The site battery's modelled charge over the last day (control/live_battery.py), one
    point a minute; site-wide, like the forecast. 404 without a battery."""
    power = svc.loop.power
    if power is None or power.battery is None:
        raise err(404, ["path"], "the site declares no battery", "not_found")
    rows = list(power.battery.history)
    body = {
        "t": [r[0] for r in rows],
        "soc": [r[1] for r in rows],
        "battery_mw": [r[2] for r in rows],
        "energy_mwh": power.battery.spec.energy_mwh,
    }
    return JSONResponse(body, headers=SECURITY_HEADERS)


def _goodput_ctx(
    svc: Any, who: Any, f: filters.GoodputQuery, *, wait: bool = True
) -> dict[str, Any]:
    """The team rule of the jobs page: a team asking for another team's books gets a note.
    `wait` False (the page): books not already cached are left to the fragment, which the
    page then loads after its first paint (`pending`)."""
    team, note = f.team, ""
    if not who.admin:
        if team is not None and team != who.team:
            note = f"team {team}: you can see only your own team's goodput ({who.team})"
        team = who.team
    g = None
    if not note:
        g = cached_goodput(svc, team, f.hours) if wait else peek_goodput(svc, team, f.hours)
    pending = g is None and not note
    return {"f": f, "g": g, "note": note, "team": team, "pending": pending, **LOOK}


@router.get("/goodput")
def goodput(request: Request, who: Viewer, svc: Svc, later: BackgroundTasks) -> Response:
    try:
        f = filters.GoodputQuery.model_validate(dict(request.query_params))
        errors: list[str] = []
    except ValidationError as e:
        f, errors = filters.GoodputQuery(), filters.messages(e)
    ctx = {
        "who": who,
        "page": "goodput",
        "errors": errors,
        **_goodput_ctx(svc, who, f, wait=False),
    }
    if ctx["pending"] and not errors:
        # Booked once the page is sent, while the browser paints it and loads its scripts:
        # the fragment it then asks for finds the books cached, or waits for this booking
        # (cached_goodput books one question at a time) instead of starting its own.
        later.add_task(cached_goodput, svc, ctx["team"], f.hours)
    return render(request, "goodput.html", ctx, status=422 if errors else 200)


@router.get("/fragments/goodput")
def goodput_fragment(
    request: Request, f: Annotated[filters.GoodputQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    return render(request, "_goodput.html", {"who": who, **_goodput_ctx(svc, who, f)})


@router.get("/jobs/{job_id}/progress.json")
def progress_data(
    job_id: JobId, q: Annotated[filters.ChartQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    """The job page's progress chart: step and loss over time in its current attempt. Another
    team's job is a 404, as a missing one."""
    with svc.sessions() as s:
        row = store.visible_job(s, who, job_id)
        if row is None:
            raise err(404, ["path", "job_id"], f"job {job_id} not found", "not_found")
        attempt = row.attempt
        start = store.attempt_started_at(s, job_id, attempt) if attempt >= 1 else None
    body: dict[str, Any] = {"t": [], "step": [], "loss": [], "samples_per_s": []}
    if start is not None:
        body = series(svc.loop.progress, job_id, attempt, start, svc.clock.time(), q.points)
    return JSONResponse({"job_id": job_id, "attempt": attempt, **body}, headers=SECURITY_HEADERS)


@router.get("/jobs/{job_id}/power.json")
def job_power_data(
    job_id: JobId, q: Annotated[filters.ChartQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    """The job page's power chart: GET /v1/jobs/{id}/power's series, with its team rule."""
    return JSONResponse(job_power(svc, who, job_id, q.points), headers=SECURITY_HEADERS)


CARD_HOURS = 24.0
CARD_MAX_AGE_S = 30.0  # the overview's card: the same books, kept longer (it refreshes every 30 s)


@router.get("/fragments/goodput-card")
def goodput_card(
    request: Request, q: Annotated[filters.EmptyQuery, Query()], who: Viewer, svc: Svc
) -> Response:
    """The overview's goodput card (the caller's jobs, every team's for the admin, last day).
    Loaded after the page, so booking the jobs never holds the overview's first paint."""
    team = None if who.admin else who.team
    g = cached_goodput(svc, team, CARD_HOURS, CARD_MAX_AGE_S)
    return render(request, "_goodput_card.html", {"who": who, "g": g, "hours": CARD_HOURS})
