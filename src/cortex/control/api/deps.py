"""What route handlers are given (FastAPI dependencies): the service, the caller, bounds."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from cortex.control import store
from cortex.control.auth import Principal, hash_token, parse_bearer
from cortex.control.service import Service

# Bounds the store can take: ids are 32-bit INTEGER columns (PostgreSQL raises, and SQLite
# overflows past 64 bits, on a larger one), and PostgreSQL text cannot hold a NUL character.
MAX_ID = 2**31 - 1
NO_NUL = r"^[^\x00]*$"
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
TeamName = Annotated[str, Query(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


def err(status: int, loc: list[str | int], msg: str, kind: str = "value_error") -> HTTPException:
    """An error in FastAPI's validation shape: `loc` names the field."""
    return HTTPException(status, detail=[{"loc": loc, "msg": msg, "type": kind}])


# Dependencies are `async def`: FastAPI runs a sync dependency in its thread pool, a thread hop
# per dependency per request (a third of a submission's CPU once). Only a token cache miss
# touches the store, and that goes to the thread pool.
async def get_service(request: Request) -> Service:
    return request.app.state.service


Svc = Annotated[Service, Depends(get_service)]


def _cached(svc: Service, header: str | None) -> tuple[Principal | None, str, str]:
    secret = parse_bearer(header)
    if secret is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    key = hash_token(secret)
    return svc.token_cache.get(key, svc.clock.monotonic(), svc.clock.time()), key, secret


def _lookup(svc: Service, key: str, secret: str) -> Principal:
    now_s, now_mono = svc.clock.time(), svc.clock.monotonic()
    with svc.sessions() as s:
        found = store.principal_for(s, secret, now_s)
    if found is None:
        raise HTTPException(
            401, "invalid, expired or revoked token", headers={"WWW-Authenticate": "Bearer"}
        )
    who, expires_at = found
    svc.token_cache.put(key, who, expires_at, now_mono)
    return who


def resolve(svc: Service, header: str | None) -> Principal:
    """The caller a bearer header stands for; 401 for a missing, unknown, revoked or expired
    token."""
    who, key, secret = _cached(svc, header)
    return who if who is not None else _lookup(svc, key, secret)


# Store lookups in flight, by service and token hash: when a token's cache entry lapses
# (every second), the requests that arrive before the first lookup returns wait for it
# instead of each sending its own query through the thread pool. A task of its own, so a
# client that hangs up cancels only its wait. Only the event loop's thread touches this.
_inflight: dict[tuple[int, str], asyncio.Future[Principal]] = {}


async def principal(request: Request, svc: Svc) -> Principal:
    who, key, secret = _cached(svc, request.headers.get("authorization"))
    if who is not None:
        return who
    k = (id(svc), key)
    task = _inflight.get(k)
    if task is None:
        task = asyncio.ensure_future(run_in_threadpool(_lookup, svc, key, secret))
        _inflight[k] = task
        task.add_done_callback(lambda _t: _inflight.pop(k, None))
    return await asyncio.shield(task)  # a 401 for one is a 401 for all: the same token


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.admin:
        raise HTTPException(403, "this needs the admin token")
    return who


Who = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]


def pydantic_detail(errors: list[Any], prefix: list[str | int]) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]
