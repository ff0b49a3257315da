"""POST /v1/jobs: decode, validate and check a submission against the fleet, then hand it to
the group-commit writer. Every refusal is a 4xx naming the field, decided here, before the
submission can reach a batch shared with other teams' submissions."""

from __future__ import annotations

import hashlib
import posixpath
import re
from pathlib import PurePosixPath
from typing import Any, NoReturn

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError

from cortex import jobproto
from cortex.control import gates, store
from cortex.control.api.deps import err, principal, pydantic_detail
from cortex.control.auth import Principal
from cortex.control.batcher import IdemKey, IdempotencyConflictError, Submitted
from cortex.control.bodies import BodyError, load_json, load_yaml, nul_path
from cortex.control.schemas import JobList, SubmitRequest
from cortex.control.service import Service
from cortex.drive import intake
from cortex.executors.spec import RESERVED_ENV
from cortex.scheduler.reasons import Reason

router = APIRouter(prefix="/v1")
IDEM_HEADER = "idempotency-key"
IDEM_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
RESERVED_WHY = {
    "CUDA_VISIBLE_DEVICES": "the executor sets it to the devices the job is allocated "
    "(ask for them with gpus and flavors)",
    "CUDA_DEVICE_ORDER": "the executor sets PCI_BUS_ID, so CUDA's indices are NVML's",
}

_SUBMIT_SCHEMA = {
    "oneOf": [
        {"$ref": "#/components/schemas/SubmitRequest"},
        {
            "type": "object",
            "properties": {
                "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/SubmitRequest"}}
            },
            "required": ["jobs"],
            "additionalProperties": False,
        },
    ]
}


@router.post(
    "/jobs",
    status_code=201,
    summary="Submit a job, or several at once (`{jobs: [...]}`: all are stored or none)",
    description=(
        "JSON or YAML (application/yaml). One job answers with the job; a `jobs` list answers "
        "with `{jobs: [...]}`. With an `Idempotency-Key` header a retry of the same body gets "
        "the jobs first created (200, header `Idempotent-Replayed: true`); the same key with "
        "another body is a 409."
    ),
    responses={200: {"description": "replayed by Idempotency-Key"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _SUBMIT_SCHEMA},
                "application/yaml": {"schema": _SUBMIT_SCHEMA},
            },
        }
    },
)
async def submit(request: Request) -> Response:
    # The service and the caller are resolved here, not as `Depends`: FastAPI's dependency
    # solver cost about a quarter of this route's CPU at a thousand submissions a second.
    svc: Service = request.app.state.service
    who = await principal(request, svc)
    body = await request.body()
    limit = svc.settings.max_body_bytes
    if len(body) > limit:
        raise err(413, ["body"], f"body is over the {limit}-byte limit", "too_large")
    key = request.headers.get(IDEM_HEADER)
    if key is not None and not IDEM_KEY.match(key):
        raise err(
            422, ["header", "Idempotency-Key"], "1 to 200 printable ASCII characters, no spaces"
        )
    ctype = request.headers.get("content-type", "")
    if "yaml" in ctype:
        # PyYAML is pure Python: even a capped document takes long enough to stall every
        # other request if parsed on the event loop.
        reqs, many = await run_in_threadpool(parse_submission, svc, body, True, who)
    else:
        reqs, many = parse_submission(svc, body, False, who)
    idem = None
    if key is not None:
        digest = hashlib.sha256(
            b"\n".join(r.model_dump_json().encode() for r in reqs) + (b"M" if many else b"1")
        ).hexdigest()
        idem = IdemKey(team=reqs[0].team, key=key, request_hash=digest)
    try:
        done: Submitted = await svc.batcher.submit_async(reqs, idem)
    except IdempotencyConflictError:
        raise err(
            409,
            ["header", "Idempotency-Key"],
            "this key was used with a different submission",
            "conflict",
        ) from None
    except RuntimeError:
        raise HTTPException(503, "the store did not take the submission; retry") from None
    payload = JobList(jobs=done.jobs).model_dump_json() if many else done.jobs[0].model_dump_json()
    headers = {"Idempotent-Replayed": "true"} if done.replayed else None
    return Response(
        payload,
        status_code=200 if done.replayed else 201,
        media_type="application/json",
        headers=headers,
    )


def parse_submission(
    svc: Service, body: bytes, is_yaml: bool, who: Principal
) -> tuple[list[SubmitRequest], bool]:
    """The submitted jobs, validated and checked against the fleet, and whether the body was a
    list of jobs; HTTP 4xx naming the field otherwise."""
    depth = svc.settings.max_depth
    try:
        data = load_yaml(body, depth) if is_yaml else load_json(body, depth)
    except BodyError as e:
        raise err(422, ["body"], str(e), e.kind) from None
    many = isinstance(data, dict) and "jobs" in data
    if many:
        if set(data) != {"jobs"}:
            extra = sorted(str(k) for k in data if k != "jobs")[0]
            raise err(422, ["body", extra], "a job list takes no other field", "extra_forbidden")
        items = data["jobs"]
        if not isinstance(items, list) or not items:
            raise err(422, ["body", "jobs"], "must be a non-empty list of jobs", "type_error")
        cap = svc.settings.max_jobs_per_submit
        if len(items) > cap:
            raise err(422, ["body", "jobs"], f"at most {cap} jobs per submission", "too_long")
    else:
        items = [data]
    reqs = []
    for i, item in enumerate(items):
        prefix: list[str | int] = ["body", "jobs", i] if many else ["body"]
        reqs.append(_one(svc, item, prefix, who))
    teams = {r.team for r in reqs}
    if len(teams) > 1:
        # One key, one team: a replay is looked up under the submission's team.
        raise err(422, ["body", "jobs"], "all jobs of one submission must be one team's")
    return check_gates(svc, reqs, many, who)


def check_gates(
    svc: Service, reqs: list[SubmitRequest], many: bool, who: Principal
) -> tuple[list[SubmitRequest], bool]:
    """Dependencies checked, arrays expanded (control/gates.py); 422 naming the field."""

    def refuse(n: int, field: str, msg: str) -> NoReturn:
        raise err(422, ["body", "jobs", n, field] if many else ["body", field], msg)

    if any(r.after_ok for r in reqs):
        with svc.sessions() as s:
            gates.check_dependencies(s, reqs, lambda a, b: who.admin or a == b, refuse)
    if not any(r.array for r in reqs):
        return reqs, many
    try:
        out, _ = gates.expand(reqs, svc.settings.max_jobs_per_submit)
    except gates.GateError as e:
        refuse(e.index, e.field, str(e))
    return out, True


def _one(svc: Service, data: Any, prefix: list[str | int], who: Principal) -> SubmitRequest:
    if not isinstance(data, dict):
        raise err(422, prefix, "expected a job object", "type_error")
    nul = nul_path(data)
    if nul is not None:
        raise err(422, [*prefix, *nul], "must not contain a NUL character")
    if not who.admin:
        team = data.setdefault("team", who.team)
        if team != who.team:
            raise err(422, [*prefix, "team"], f"must be your token's team ({who.team})")
    elif "team" not in data:
        raise err(422, [*prefix, "team"], "the admin token must name the team")
    _default_estimate(svc, data)
    try:
        req = SubmitRequest.model_validate(data)
    except ValidationError as e:
        detail = pydantic_detail(e.errors(include_url=False, include_input=False), prefix)
        raise HTTPException(422, detail=detail) from None
    _check_env(req, prefix)
    _check_fleet(svc, req, prefix)
    _check_workdir(svc, req, prefix)
    return req


def _check_env(req: SubmitRequest, prefix: list[str | int]) -> None:
    """A variable the executor sets for every run (its allocation and the job protocol:
    executors.spec.RESERVED_ENV) would be overridden without a word: refused, naming it. So
    are those the control plane sets from a field the request gives (array, the checkpoint
    interval): over the user's value too (control/gates.py, progress.protocol_env)."""
    given: dict[str, str] = {}
    if req.array is not None:
        given[gates.ARRAY_ENV] = "the API sets it to each array member's index (array)"
    if req.checkpoint_interval_s is not None:
        given[jobproto.ENV_CHECKPOINT_INTERVAL_S] = "it is set from checkpoint_interval_s"
    for name in sorted(req.env):
        if name in RESERVED_ENV or name in given:
            why = given.get(name) or RESERVED_WHY.get(name, "the executor sets it for every run")
            raise err(
                422,
                [*prefix, "env", name],
                f"reserved: {why}, so a value here would be overridden",
                "reserved",
            )


def _default_estimate(svc: Service, data: dict[str, Any]) -> None:
    """A job with no runtime estimate gets one: its time limit (an upper bound, as Slurm's
    backfill uses it), else its queue's default (`default_duration_s`)."""
    if data.get("duration_s") is not None or data.get("work_gpu_hours") is not None:
        return
    limit = data.get("time_limit_s")
    if isinstance(limit, int | float) and not isinstance(limit, bool) and 0 < limit <= 1e9:
        data["duration_s"] = limit
        return
    defaults = svc.settings.default_duration_s
    team = data.get("team")
    got = defaults.get(team, defaults.get("*")) if isinstance(team, str) else defaults.get("*")
    if got is not None:
        data["duration_s"] = got


def _check_fleet(svc: Service, req: SubmitRequest, prefix: list[str | int]) -> None:
    """Intake's checks (drive/intake.py, the twin's and the loop's own), before anything is
    stored: each refusal a 422 naming the field it is about."""
    # No lock: the loop replaces `queues` and `state` whole (never mutates what is read here),
    # and a handler on the event loop must not wait out a tick.
    loop = svc.loop
    queues, topo, state = loop.mirror.queues, loop.topo, loop.mirror.state
    queue = None
    if req.team in queues.names:
        queue = queues.queues[queues.index(req.team)]
    elif not _queue_stored(svc, req.team):
        _refuse(intake.unknown_queue(req.team), prefix, hint=" (create a token for it)")
    # A queue created since the last tick has the default priority classes, and no quota yet
    # (unlimited borrowing): the fleet alone bounds its gangs.
    prio = intake.priority_of(queues, req.priority_class)
    if isinstance(prio, Reason):
        _refuse(prio, prefix)
    allowed = svc.settings.priority_classes_for(req.team)
    if allowed is not None and req.priority_class not in allowed:
        # A permission, refused as the other field checks are (422 naming the field, exit 2
        # in the CLI): the class exists, but not for this team (CORTEX_TEAM_PRIORITY_CLASSES).
        raise err(
            422,
            [*prefix, "priority_class"],
            f"team {req.team} may not use class {req.priority_class!r}; "
            f"allowed: {', '.join(allowed)}",
            "not_allowed",
        )
    if loop.fleet_pending:  # no fleet yet: the loop judges the job when one comes
        return
    ids = intake.flavor_ids(topo.flavors, req.flavors or ())
    if isinstance(ids, Reason):
        _refuse(ids, prefix, hint=f" (it has {', '.join(topo.flavors)})")
    # Both the smallest gang the job accepts and the gang it asks for must fit: a request that
    # can never run as asked is refused now, with the reason, rather than left queued forever.
    for name, gang in (
        ("elastic.min_gpus", req.elastic.min_gpus if req.elastic else 0),
        ("gpus", req.gpus),
    ):
        reason = intake.never_fits(gang, ids, state.gpn, state.total_gpus, queue) if gang else None
        if reason is not None:
            _refuse(reason, prefix, field=name)


def _refuse(
    reason: Reason, prefix: list[str | int], *, field: str = "", hint: str = ""
) -> NoReturn:
    loc = [*prefix, *(field or intake.FIELD[reason.code]).split(".")]
    raise err(422, loc, intake.describe(reason) + hint)


def _queue_stored(svc: Service, team: str) -> bool:
    """A team whose token was just created has its queue in the store before the loop's next
    tick rebuilds its view; the tick that takes the job in rebuilds first."""
    with svc.sessions() as s:
        return store.has_queue(s, team)


def _check_workdir(svc: Service, req: SubmitRequest, prefix: list[str | int]) -> None:
    """`working_dir` must lie under one of the team's roots. Judged on the path alone, never
    the filesystem: the answer must not tell whether a directory exists."""
    if req.working_dir is None:
        return
    loc = [*prefix, "working_dir"]
    raw = req.working_dir
    if not raw.startswith("/") or ".." in raw.split("/"):
        raise err(422, loc, "must be an absolute path without '..'")
    path = PurePosixPath(posixpath.normpath(raw))
    roots = svc.settings.workdir_roots_for(req.team)
    if not any(path == r or r in path.parents for r in roots):
        shown = ", ".join(str(r) for r in roots) or "none configured"
        raise err(422, loc, f"must lie under one of the team's roots ({shown})")
