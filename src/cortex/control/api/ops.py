"""Operations endpoints: /healthz (liveness: the loop ticks), /readyz (the store and the
executor answer), /metrics, and the API docs, whose Swagger UI assets come from the installed
`swagger-ui-bundle` package (no CDN: the docs work on an air-gapped cluster).

/metrics and /docs name teams and routes: open when the service listens on loopback only (or
when told), otherwise they need a valid token, like the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cortex.control import store
from cortex.control.api.deps import Svc, resolve
from cortex.control.service import Service

router = APIRouter()
ASSETS_PATH = "/docs/assets"


def swagger_assets_dir() -> str | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return str(swagger_ui_bundle.swagger_ui_path)


def guard_ops(svc: Service, request: Request) -> None:
    """401 unless /metrics and /docs are open in this configuration or the caller has a
    token (any valid one: a team may see the docs and the counts)."""
    if _ops_open(svc):
        return
    resolve(svc, request.headers.get("authorization"))


@router.get("/healthz", summary="Liveness: the scheduler loop ticks (503 when stale or failing)")
def healthz(svc: Svc) -> JSONResponse:
    loop = svc.loop
    age = loop.clock.monotonic() - loop.last_tick_monotonic
    stale = age > svc.settings.health_stale_s
    failing = not loop.healthy  # several ticks in a row raised (the loop's own count)
    body = {
        "status": "stale" if stale else ("failing" if failing else "ok"),
        "ticks": loop.ticks,
        "last_tick_age_s": round(age, 3),
        "tick_failures": loop.tick_failures,
        "node": loop.node_name,
    }
    return JSONResponse(body, status_code=503 if stale or failing else 200)


@router.get("/readyz", summary="Readiness: the store and the executor answer")
def readyz(svc: Svc) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with svc.sessions() as s:
            store.ping(s)
        checks["store"] = "ok"
    except Exception as e:  # any driver error means not ready; the reason is the answer
        checks["store"] = f"error: {type(e).__name__}"
    try:
        svc.executor.live_handles()
        run_dir = svc.settings.run_dir
        checks["executor"] = "ok" if not run_dir.exists() or run_dir.is_dir() else "no run dir"
    except Exception as e:
        checks["executor"] = f"error: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(request: Request, svc: Svc) -> Response:
    guard_ops(svc, request)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, svc: Svc) -> JSONResponse:
    guard_ops(svc, request)
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


@router.get("/docs", include_in_schema=False)
def docs(request: Request, svc: Svc) -> HTMLResponse:
    if _ops_open(svc) or request.headers.get("authorization"):
        # Open, or the caller sent a token (a proxy that adds it to this page adds it to the
        # schema's request too): the stock page.
        guard_ops(svc, request)
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Cortex control plane",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )
    # Token-protected and a browser that cannot send a header on navigation: a page that asks
    # for the token and fetches the schema with it. Why this and not a cookie or a query
    # parameter: the token stays in the page's memory and goes only in an Authorization header
    # (never in a URL, an access log or the browser's history), and the service needs no second
    # way to authenticate (a cookie would need CSRF care). The page itself holds nothing: the
    # schema and every API answer still need the token.
    return HTMLResponse(TOKEN_DOCS_HTML)


def _ops_open(svc: Service) -> bool:
    mode = svc.settings.ops_access
    return mode == "open" or (mode == "auto" and svc.settings.loopback_only)


TOKEN_DOCS_HTML = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Cortex control plane</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="icon" href="{ASSETS_PATH}/favicon-32x32.png"></head>
<body>
<form id="cortex-login" style="font-family: sans-serif; margin: 2em">
  <label>Bearer token <input id="cortex-token" type="password" autocomplete="off" size="60">
  </label> <button type="submit">Show the API</button>
  <p id="cortex-msg"></p>
</form>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script>
async function cortexLoad(token) {{
  const auth = {{Authorization: "Bearer " + token}};
  const r = await fetch("/openapi.json", {{headers: auth}});
  if (!r.ok) {{
    document.getElementById("cortex-msg").textContent = "the service refused it (" + r.status + ")";
    return;
  }}
  document.getElementById("cortex-login").hidden = true;
  SwaggerUIBundle({{
    spec: await r.json(),
    dom_id: "#swagger-ui",
    requestInterceptor: (req) => {{ req.headers.Authorization = auth.Authorization; return req; }},
  }});
}}
document.getElementById("cortex-login").addEventListener("submit", (e) => {{
  e.preventDefault();
  cortexLoad(document.getElementById("cortex-token").value.trim());
}});
</script>
</body></html>
"""
