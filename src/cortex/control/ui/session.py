"""Who is looking at the dashboard: the team token, kept in a cookie, checked by the API's own
auth (`deps.resolve`: the same token table, cache, expiry and revocation).

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page can make
the browser send it) and Secure unless the operator turns that off for plain HTTP off
loopback (browsers accept Secure cookies from http://127.0.0.1 and http://localhost). State
changes (login, logout, cancel) also check that the request comes from this origin, so a
browser too old for SameSite is covered as well."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from cortex.control.api.deps import Svc, resolve
from cortex.control.auth import Principal

COOKIE = "cortex_ui_token"
COOKIE_PATH = "/ui"
COOKIE_MAX_AGE_S = 12 * 3600  # a browser session; the token's own expiry still applies
MAX_TOKEN_CHARS = 512  # the longest admin token the settings accept


class LoginNeededError(Exception):
    """No usable token: a page goes to the login page, a fragment tells htmx to go there."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CrossSiteError(Exception):
    """A state-changing request that did not come from this origin."""


def check_token(svc: Svc, token: str) -> Principal:
    """The principal for a token; LoginNeededError for a missing, malformed, unknown, revoked or
    expired one (the API's 401, never a stack trace)."""
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isprintable() or " " in token:
        raise LoginNeededError("invalid token")
    try:
        return resolve(svc, f"Bearer {token}")
    except HTTPException as e:
        raise LoginNeededError("invalid, expired or revoked token") from e


def ui_principal(request: Request, svc: Svc) -> Principal:
    """The dashboard's caller (a sync dependency: a cache miss reads the store on FastAPI's
    thread pool, not the event loop)."""
    token = request.cookies.get(COOKIE)
    if token is None:
        raise LoginNeededError("sign in")
    return check_token(svc, token)


Viewer = Annotated[Principal, Depends(ui_principal)]


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from a page of this origin: the browser's
    Sec-Fetch-Site and Origin headers say so (a script cannot forge either). A client that
    sends neither is no browser, so it cannot be tricked into carrying the cookie."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is not None:
        return urlsplit(origin).netloc == request.headers.get("host", "")
    return True


def require_same_origin(request: Request) -> None:
    if not same_origin(request):
        raise CrossSiteError()


SameOrigin = Depends(require_same_origin)


def set_login(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def clear_login(response: Response, secure: bool) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure
    )


def to_login(request: Request, exc: LoginNeededError, secure: bool) -> Response:
    """Where a request without a usable token goes: htmx is told to load the login page (a
    fragment swapped into a page would show the login form in a table cell); a page is
    redirected; a data endpoint (binary snapshot, event stream) answers 401."""
    if request.headers.get("hx-request"):
        resp: Response = Response(status_code=200, headers={"HX-Redirect": "/ui/login"})
    elif request.url.path.endswith((".bin", "/stream")):
        resp = Response(exc.reason, status_code=401, media_type="text/plain")
    else:
        why = "expired" if COOKIE in request.cookies else "new"
        resp = RedirectResponse(f"/ui/login?why={why}", 303)
    if COOKIE in request.cookies:
        clear_login(resp, secure)
    return resp
