"""The REST API under /v1 (FastAPI, one router per resource), plus /healthz, /readyz,
/metrics and the docs.

Request handlers only read the store, insert submissions and record cancel requests; the
scheduler loop makes every other change. Most handlers are sync functions, so FastAPI runs them
in its thread pool and a slow store never blocks the event loop."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from cortex.control.api import (
    admin,
    cluster,
    dryrun,
    goodput,
    holds,
    job_power,
    jobs,
    logs,
    node_health,
    ops,
    power,
    progress,
    share,
    submit,
    why,
)
from cortex.control.api.fastpath import SubmitFastPath
from cortex.control.api.guard import RequestGuard
from cortex.control.schemas import SubmitRequest
from cortex.control.service import Service

_SUBMIT_SCHEMA = SubmitRequest.model_json_schema(ref_template="#/components/schemas/{model}")
_SUBMIT_DEFS = _SUBMIT_SCHEMA.pop("$defs", {})


def build_app(svc: Service) -> FastAPI:
    app = FastAPI(
        title="Cortex control plane",
        version="1",
        description="Submit, watch and cancel jobs; manage queues, quotas, tokens and nodes.",
        lifespan=svc.lifespan,
        docs_url=None,  # served by `ops` behind the ops-access setting, with local assets
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = svc
    why.register_metrics(svc)
    for module in (
        submit,
        jobs,
        logs,
        admin,
        cluster,
        ops,
        power,
        why,
        progress,
        share,
        goodput,
        node_health,
        dryrun,
        holds,
        job_power,
    ):
        app.include_router(module.router)
    assets = ops.swagger_assets_dir()
    if assets is not None:
        app.mount(ops.ASSETS_PATH, StaticFiles(directory=assets), name="docs-assets")
    from cortex.control import ui  # the web dashboard at /ui (docs/dashboard.md)

    ui.mount(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    settings = svc.settings
    app.add_middleware(SubmitFastPath)  # inside the guard: its limits apply first
    app.add_middleware(
        RequestGuard,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
        max_depth=settings.max_depth,
    )
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps["SubmitRequest"] = _SUBMIT_SCHEMA
        comps.update(_SUBMIT_DEFS)
        _bearer(schema)
        app.openapi_schema = schema
    return app.openapi_schema


PUBLIC_PATHS = ("/healthz", "/readyz")  # probes: no token (ops.py)


def _bearer(schema: dict[str, Any]) -> None:
    """Declare the bearer scheme every route but the probes needs, so Swagger's Authorize
    button and generated clients send `Authorization: Bearer <token>`."""
    schema["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "a team token (`cortex token create --team T`) or the admin token",
        }
    }
    schema["security"] = [{"bearer": []}]
    for path in PUBLIC_PATHS:
        for op in schema.get("paths", {}).get(path, {}).values():
            op["security"] = []


async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, without echoing the input: a hostile value (deep, huge, NaN) is not
    encoded back into the answer."""
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": detail})
