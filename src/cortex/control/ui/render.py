"""Jinja2 rendering for the dashboard, with the headers every dashboard response carries."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))

# Scripts and styles from this origin only (the vendored files): an injected <script> or
# inline handler does not run. Nothing may frame the dashboard (clickjacking a cancel button).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _age(at: float | None, now: float | None = None) -> str:
    """Seconds ago as a short human figure ("42 s", "3.5 h")."""
    if at is None:
        return ""
    d = max(0.0, (now if now is not None else time.time()) - at)
    if d < 120:
        return f"{d:.0f} s"
    if d < 7200:
        return f"{d / 60:.0f} min"
    if d < 172800:
        return f"{d / 3600:.1f} h"
    return f"{d / 86400:.1f} d"


def _num(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def _watts(w: float) -> str:
    """Facility power in the unit that suits it: MW at site scale, kW below a megawatt."""
    return f"{w / 1e6:,.2f} MW" if w >= 1e6 else f"{w / 1e3:,.1f} kW"


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


TEMPLATES.env.filters["age"] = _age
TEMPLATES.env.filters["utc"] = _utc
TEMPLATES.env.filters["watts"] = _watts
TEMPLATES.env.filters["num"] = _num


def render(
    request: Request, name: str, ctx: dict[str, Any], status: int = 200, **headers: str
) -> HTMLResponse:
    resp = TEMPLATES.TemplateResponse(request, name, ctx, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    for k, v in headers.items():
        resp.headers[k.replace("_", "-")] = v
    return resp
