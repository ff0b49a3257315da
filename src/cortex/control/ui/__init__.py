"""The web dashboard served by `cortex serve` at /ui (docs/dashboard.md): Jinja2 templates,
htmx 2 with its SSE extension, and one canvas for the fleet heatmap. The JavaScript is
vendored under static/vendor by tools/ui-vendor/fetch.sh (npm, with a lockfile)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from cortex.control.ui import fragments, ops, pages, stream
from cortex.control.ui.render import HERE
from cortex.control.ui.session import CrossSiteError, LoginNeededError, to_login


def mount(app: FastAPI) -> None:
    """Add the dashboard to the API's app (called by control/api/build_app)."""
    for module in (pages, fragments, ops, stream):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    async def login_needed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginNeededError)
        secure = bool(getattr(request.app.state.service.settings, "ui_cookie_secure", True))
        return to_login(request, exc, secure)

    async def cross_site(_request: Request, _exc: Exception) -> Response:
        return PlainTextResponse("refused: this request did not come from the dashboard", 403)

    app.add_exception_handler(LoginNeededError, login_needed)
    app.add_exception_handler(CrossSiteError, cross_site)
