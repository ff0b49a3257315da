"""The REST API under /v1 (FastAPI), plus /healthz and /metrics.

Request handlers only read the store, insert submissions and record cancel requests; the
scheduler loop makes every other change. Handlers are sync functions, so FastAPI runs them in
its thread pool and a slow store never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from sqlalchemy import select, text

from cortex.control import models as m
from cortex.control import store
from cortex.control.auth import Principal, hash_token, parse_bearer
from cortex.control.schemas import (
    EventOut,
    JobList,
    JobOut,
    NodeOut,
    QueueOut,
    QueueUpdate,
    SubmitRequest,
    TokenCreate,
    TokenOut,
)
from cortex.scheduler.placement import alloc_size
from cortex.workload.states import TERMINAL, JobState

if TYPE_CHECKING:
    from cortex.control.service import Service

FOLLOW_POLL_S = 0.2
FOLLOW_MAX_S = 24 * 3600.0
TAIL_MAX_BYTES = 4 * 1024 * 1024


def _err(status: int, loc: list[str | int], msg: str, kind: str = "value_error") -> HTTPException:
    return HTTPException(status, detail=[{"loc": loc, "msg": msg, "type": kind}])


def _service(request: Request) -> Service:
    return request.app.state.service


def principal(request: Request) -> Principal:
    """Resolve the bearer token; 401 for a missing or unknown one. Hashes of known tokens are
    cached: tokens are only ever added, and a lookup per request would cost a query."""
    secret = parse_bearer(request.headers.get("authorization"))
    if secret is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    svc = _service(request)
    key = hash_token(secret)
    who = svc.principals.get(key)
    if who is None:
        with svc.sessions() as s:
            who = store.principal_for(s, secret)
        if who is None:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
        svc.principals[key] = who
    return who


def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.admin:
        raise HTTPException(403, "this needs the admin token")
    return who


Who = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]

# Bounds the store can take: ids are 32-bit INTEGER columns (PostgreSQL raises, and SQLite
# overflows past 64 bits, on a larger one), and PostgreSQL text cannot hold a NUL character.
MAX_ID = 2**31 - 1
NO_NUL = r"^[^\x00]*$"
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
TeamName = Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]

_SUBMIT_SCHEMA = SubmitRequest.model_json_schema(ref_template="#/components/schemas/{model}")
_SUBMIT_DEFS = _SUBMIT_SCHEMA.pop("$defs", {})


def build_app(svc: Service) -> FastAPI:
    app = FastAPI(
        title="Cortex control plane",
        version="1",
        description="Submit, watch and cancel jobs; manage queues, quotas, tokens and nodes.",
        lifespan=svc.lifespan,
    )
    app.state.service = svc
    v1 = APIRouter(prefix="/v1")

    def _job_out(s: Any, job: m.Job, with_history: bool = False) -> JobOut:
        devices = svc.loop.devices_of(job.id) if job.state == "running" else None
        return store.job_out(
            job, devices=devices, hist=store.history(s, job.id) if with_history else None
        )

    # ---- jobs ---------------------------------------------------------------------------------
    @v1.post(
        "/jobs",
        status_code=201,
        response_model=JobOut,
        summary="Submit a job",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/SubmitRequest"}},
                    "application/yaml": {"schema": {"$ref": "#/components/schemas/SubmitRequest"}},
                },
            }
        },
    )
    async def submit(request: Request, who: Who) -> Response:
        limit = svc.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _err(
                413,
                ["body"],
                f"body of {declared} bytes is over the {limit}-byte limit",
                "too_large",
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _err(413, ["body"], f"body is over the {limit}-byte limit", "too_large")
        req = _parse_submit(svc, bytes(body), request.headers.get("content-type", ""), who)
        out = await asyncio.wrap_future(svc.batcher.submit(req))
        # Serialized here, once: the model was built from validated values.
        return Response(out.model_dump_json(), status_code=201, media_type="application/json")

    @v1.get("/jobs", response_model=JobList, summary="List jobs (newest first)")
    def list_jobs(
        who: Who,
        team: TeamName | None = None,
        state: JobState | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> JobList:
        q = select(m.Job).order_by(m.Job.id.desc()).limit(limit)
        if not who.admin:
            if team is not None and team != who.team:
                return JobList(jobs=[])
            team = who.team
        if team is not None:
            q = q.where(m.Job.team == team)
        if state is not None:
            q = q.where(m.Job.state == state.value)
        with svc.sessions() as s:
            return JobList(jobs=[_job_out(s, j) for j in s.scalars(q).all()])

    def _visible(s: Any, who: Principal, job_id: int) -> m.Job:
        job = store.visible_job(s, who, job_id)
        if job is None:
            raise HTTPException(404, f"job {job_id} not found")
        return job

    @v1.get("/jobs/{job_id}", response_model=JobOut, summary="One job with its state history")
    def get_job(job_id: JobId, who: Who) -> JobOut:
        with svc.sessions() as s:
            return _job_out(s, _visible(s, who, job_id), with_history=True)

    @v1.post(
        "/jobs/{job_id}/cancel",
        response_model=JobOut,
        status_code=202,
        summary="Ask for a job to be cancelled (SIGTERM, grace period, SIGKILL)",
    )
    def cancel(job_id: JobId, who: Who) -> JobOut:
        with svc.sessions.begin() as s:
            job = _visible(s, who, job_id)
            final = JobState(job.state) in TERMINAL or job.state == "failed"
            if not final and not job.cancel_requested:
                store.request_cancel(s, job)
            out = _job_out(s, job)
        svc.loop.request_cancel(job_id)
        return out

    @v1.get(
        "/jobs/{job_id}/logs",
        summary="A job's stdout or stderr: tail, or follow",
        response_class=PlainTextResponse,
    )
    def logs(
        job_id: JobId,
        who: Who,
        stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
        tail: Annotated[int, Query(ge=0, le=100000)] = 0,
        follow: bool = False,
    ) -> Response:
        with svc.sessions() as s:
            job = _visible(s, who, job_id)
            attempt = job.attempt
        if attempt == 0:
            path: FsPath | None = None
        else:
            paths = svc.executor.log_paths(job_id, attempt)
            path = FsPath(paths[0] if stream == "stdout" else paths[1])
        if not follow:
            return PlainTextResponse(_tail(path, tail))
        return StreamingResponse(
            _follow(svc, job_id, attempt, stream, tail), media_type="text/plain"
        )

    # ---- queues, tokens, nodes, events ---------------------------------------------------------
    @v1.get("/queues", response_model=list[QueueOut], summary="Queues, quotas and their usage")
    def list_queues(who: Who) -> list[QueueOut]:
        usage = svc.loop.usage()
        with svc.sessions() as s:
            return [
                QueueOut(
                    name=q.name,
                    nominal_share=q.nominal_share,
                    borrowing_limit_share=q.borrowing_limit_share,
                    weight=q.weight,
                    running_gpus=usage.get(q.name, (0, 0))[0],
                    pending_jobs=usage.get(q.name, (0, 0))[1],
                )
                for q in store.queues(s)
                if who.admin or q.name == who.team
            ]

    @v1.put("/queues/{name}", response_model=QueueOut, summary="Set a queue's quota (admin)")
    def put_queue(
        name: Annotated[str, Path(max_length=64, pattern=NO_NUL)], body: QueueUpdate, who: Admin
    ) -> QueueOut:
        with svc.sessions.begin() as s:
            q = s.scalar(select(m.Queue).where(m.Queue.name == name))
            if q is None:
                raise HTTPException(404, f"queue {name} not found")
            share = body.nominal_share if body.nominal_share is not None else q.nominal_share
            others = sum(x.nominal_share for x in store.queues(s) if x.name != name)
            if share + others > 1.0 + 1e-9:
                raise _err(
                    422,
                    ["body", "nominal_share"],
                    f"shares would sum to {share + others:.3f}, more than 1",
                )
            q.nominal_share = share
            if "borrowing_limit_share" in body.model_fields_set:
                q.borrowing_limit_share = body.borrowing_limit_share
            if body.weight is not None:
                q.weight = body.weight
            store.event(s, "queue", f"queue {name} quota set: share {share}", team=name)
            out = QueueOut(
                name=q.name,
                nominal_share=q.nominal_share,
                borrowing_limit_share=q.borrowing_limit_share,
                weight=q.weight,
            )
        svc.loop.queues_dirty = True
        svc.loop.wake()
        return out

    @v1.post(
        "/tokens",
        response_model=TokenOut,
        status_code=201,
        summary="Create a team token (admin); the secret is shown only in this response",
    )
    def create_token(body: TokenCreate, who: Admin) -> TokenOut:
        with svc.sessions.begin() as s:
            secret = store.create_token(s, body.team, label=body.label)
        svc.loop.queues_dirty = True
        svc.loop.wake()
        return TokenOut(team=body.team, token=secret)

    @v1.get("/nodes", response_model=list[NodeOut], summary="Nodes and their health")
    def list_nodes(who: Who) -> list[NodeOut]:
        used, _ = svc.loop.gpus_by_flavor().get(svc.loop.flavor, (0, 0))
        with svc.sessions() as s:
            rows = s.scalars(select(m.Node).order_by(m.Node.name)).all()
            return [
                NodeOut(
                    name=n.name,
                    flavor=n.flavor,
                    kind=n.kind,
                    gpus=n.gpus,
                    healthy=n.healthy,
                    schedulable=n.schedulable,
                    last_seen=n.last_seen,
                    allocated_gpus=used if n.id == svc.loop.node_id else 0,
                )
                for n in rows
            ]

    @v1.patch(
        "/nodes/{name}",
        response_model=NodeOut,
        summary="Cordon (schedulable=false) or uncordon a node (admin)",
    )
    def patch_node(
        name: Annotated[str, Path(max_length=200, pattern=NO_NUL)], schedulable: bool, who: Admin
    ) -> NodeOut:
        with svc.sessions.begin() as s:
            n = s.scalar(select(m.Node).where(m.Node.name == name))
            if n is None:
                raise HTTPException(404, f"node {name} not found")
            n.schedulable = schedulable
            store.event(s, "node", f"node {name} schedulable={schedulable}")
            out = NodeOut(
                name=n.name,
                flavor=n.flavor,
                kind=n.kind,
                gpus=n.gpus,
                healthy=n.healthy,
                schedulable=n.schedulable,
                last_seen=n.last_seen,
                allocated_gpus=0,
            )
        with svc.loop.lock:
            if n.id == svc.loop.node_id:
                svc.loop.schedulable = schedulable
        svc.loop.wake()
        return out

    @v1.get("/events", response_model=list[EventOut], summary="Recent events, newest first")
    def list_events(
        who: Who,
        job_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[EventOut]:
        q = select(m.Event).order_by(m.Event.id.desc()).limit(limit)
        if not who.admin:
            q = q.where(m.Event.team == who.team)
        if job_id is not None:
            q = q.where(m.Event.job_id == job_id)
        with svc.sessions() as s:
            return [
                EventOut(
                    id=e.id, at=e.at, kind=e.kind, job_id=e.job_id, team=e.team, message=e.message
                )
                for e in s.scalars(q).all()
            ]

    app.include_router(v1)

    @app.get("/healthz", summary="Liveness: the store answers and the scheduler ticks")
    def healthz() -> dict[str, Any]:
        with svc.sessions() as s:
            s.execute(text("SELECT 1"))
        return {"status": "ok", "ticks": svc.loop.ticks, "node": svc.loop.node_name}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def _openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            comps = schema.setdefault("components", {}).setdefault("schemas", {})
            comps["SubmitRequest"] = _SUBMIT_SCHEMA
            comps.update(_SUBMIT_DEFS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = _openapi  # type: ignore[method-assign]

    @app.exception_handler(ValidationError)
    async def _validation(_request: Request, err: ValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _pydantic_detail(err)})

    return app


def _pydantic_detail(err: ValidationError) -> list[dict[str, Any]]:
    out = []
    for e in err.errors(include_url=False, include_input=False, include_context=False):
        out.append({"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]})
    return out


def _parse_submit(svc: Service, body: bytes, content_type: str, who: Principal) -> SubmitRequest:
    """Decode, validate and check a submission against the fleet; HTTP 422 names the field."""
    is_yaml = "yaml" in content_type
    try:
        data = yaml.safe_load(body) if is_yaml else json.loads(body)
    except (ValueError, yaml.YAMLError) as err:
        kind = "YAML" if is_yaml else "JSON"
        first = str(err).splitlines()[0] if str(err) else kind
        raise _err(422, ["body"], f"malformed {kind}: {first}", "parse_error") from None
    if not isinstance(data, dict):
        raise _err(422, ["body"], "expected a job object", "type_error")
    nul = _nul_path(data)
    if nul is not None:
        # PostgreSQL text cannot hold NUL, and exec() cannot pass it: refused here, by name,
        # rather than failing the whole insert batch (a 500) or the launch later.
        raise _err(422, ["body", *nul], "must not contain a NUL character")
    if not who.admin:
        team = data.setdefault("team", who.team)
        if team != who.team:
            raise _err(422, ["body", "team"], f"must be your token's team ({who.team})")
    elif "team" not in data:
        raise _err(422, ["body", "team"], "the admin token must name the team")
    try:
        req = SubmitRequest.model_validate(data)
    except ValidationError as err:
        raise HTTPException(422, detail=_pydantic_detail(err)) from None
    # No lock: the loop replaces `queues` and `state` whole (never mutates what is read here),
    # and a handler on the event loop must not wait out a tick.
    loop = svc.loop
    queues = loop.queues
    topo = loop.topo
    total = list(loop.state.total_gpus)
    if req.team not in queues.names:
        raise _err(422, ["body", "team"], f"team {req.team} has no queue (create a token for it)")
    if req.priority_class not in queues.priority_classes:
        known = ", ".join(sorted(queues.priority_classes))
        raise _err(
            422,
            ["body", "priority_class"],
            f"unknown priority class {req.priority_class!r} (known: {known})",
        )
    flavors = [i for i, f in enumerate(topo.flavors) if not req.flavors or f in req.flavors]
    if not flavors:
        raise _err(
            422,
            ["body", "flavors"],
            f"the fleet has none of {', '.join(req.flavors)} (it has {', '.join(topo.flavors)})",
        )
    smallest = req.elastic.min_gpus if req.elastic else req.gpus
    most = max(total[f] for f in flavors)
    if all(alloc_size(smallest, topo.flavor_gpus_per_node[f]) > total[f] for f in flavors):
        raise _err(
            422,
            ["body", "gpus"],
            f"a gang of {smallest} is larger than the fleet ({most} of the flavors asked)",
        )
    if req.working_dir is not None and not FsPath(req.working_dir).is_dir():
        raise _err(422, ["body", "working_dir"], f"not a directory on the node: {req.working_dir}")
    return req


def _nul_path(value: Any, at: tuple[str | int, ...] = ()) -> list[str | int] | None:
    """Where the first string (value or key) holding a NUL character is, if any."""
    if isinstance(value, str):
        return list(at) if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "\x00" in k:
                return [*at, k]
            found = _nul_path(v, (*at, k))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _nul_path(v, (*at, i))
            if found is not None:
                return found
    return None


def _tail(path: FsPath | None, lines: int) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - TAIL_MAX_BYTES))
        data = fh.read().decode(errors="replace")
    if lines <= 0:
        return data
    return "".join(data.splitlines(keepends=True)[-lines:])


def _job_state(svc: Service, job_id: int) -> tuple[str, int]:
    with svc.sessions() as s:
        job = s.get(m.Job, job_id)
        return (job.state, job.attempt) if job is not None else ("completed", 0)


async def _follow(
    svc: Service, job_id: int, attempt: int, stream: str, tail: int
) -> AsyncIterator[bytes]:
    """Yield the log as it grows until the attempt is over and its file drained. Async, so that
    a client that hangs up cancels it at the next wait (a sync generator would keep a thread
    polling a queued job's log until the job ran)."""
    deadline = time.monotonic() + FOLLOW_MAX_S
    path: FsPath | None = None
    pos = 0
    first = True
    while time.monotonic() < deadline:
        state, current = await asyncio.to_thread(_job_state, svc, job_id)
        if path is None and current > 0:
            attempt = current
            p = svc.executor.log_paths(job_id, attempt)
            path = FsPath(p[0] if stream == "stdout" else p[1])
        if path is not None and path.exists():
            if first and tail > 0:
                chunk = await asyncio.to_thread(_tail, path, tail)
                pos = path.stat().st_size
                first = False
                if chunk:
                    yield chunk.encode()
            first = False
            data = await asyncio.to_thread(_read_from, path, pos)
            if data:
                pos += len(data)
                yield data
                continue
        done = (
            JobState(state) in TERMINAL
            or state == "failed"
            or (current != attempt and path is not None)
            or (state in ("queued", "requeued") and path is not None)
        )
        if done:
            return
        await asyncio.sleep(FOLLOW_POLL_S)


def _read_from(path: FsPath, pos: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(pos)
        return fh.read(TAIL_MAX_BYTES)
