"""POST /v1/jobs straight to its handler, past FastAPI's routing.

Why: at a thousand submissions a second the route machinery between the guard and the handler
(exception middleware, exit-stack middleware, the router's match, the route's request
handling) cost about as much CPU as the handler itself. The handler takes only the request
and answers with a finished Response, so none of it is needed; the route stays registered
with FastAPI for the OpenAPI schema and as the path for everything this does not take.
Errors keep FastAPI's shape: an HTTPException becomes FastAPI's own answer for it, anything
else propagates to the server-error middleware outside (a 500), as through the router."""

from __future__ import annotations

from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from cortex.control.api import submit

PATH = "/v1/jobs"


class SubmitFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await submit.submit(request)
        except HTTPException as exc:
            response = await http_exception_handler(request, exc)
        await response(scope, receive, send)
