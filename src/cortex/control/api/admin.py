"""Queues and tokens: GET /v1/queues, PUT /v1/queues/{name} (admin), tokens (admin)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from cortex.control import models as m
from cortex.control import store
from cortex.control.api.deps import MAX_ID, NO_NUL, Admin, Svc, Who, err
from cortex.control.fleet import queues_spec
from cortex.control.schemas import (
    FlavorQuotas,
    QueueOut,
    QueueUpdate,
    TokenCreate,
    TokenInfo,
    TokenOut,
    TokenRevoked,
)
from cortex.control.service import Service, repair_rows
from cortex.errors import InputError
from cortex.fleet.spec import check_flavor_shares

router = APIRouter(prefix="/v1")
TokenId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/queues", response_model=list[QueueOut], summary="Queues, quotas and their usage")
def list_queues(who: Who, svc: Svc) -> list[QueueOut]:
    usage = svc.loop.usage()
    with svc.sessions() as s:
        return [
            _out(q, usage.get(q.name, (0, 0)))
            for q in store.queues(s)
            if who.admin or q.name == who.team
        ]


def _out(q: m.Queue, usage: tuple[int, int] = (0, 0)) -> QueueOut:
    return QueueOut(
        name=q.name,
        nominal_share=q.nominal_share,
        borrowing_limit_share=q.borrowing_limit_share,
        weight=q.weight,
        flavor_quotas=q.flavor_quotas or {},
        min_runtime_s=q.min_runtime_s,
        preemption_budget=q.preemption_budget,
        running_gpus=usage[0],
        pending_jobs=usage[1],
    )


@router.put("/queues/{name}", response_model=QueueOut, summary="Set a queue's quota (admin)")
def put_queue(
    name: Annotated[str, Path(max_length=64, pattern=NO_NUL)],
    body: QueueUpdate,
    who: Admin,
    svc: Svc,
) -> QueueOut:
    usage = svc.loop.usage().get(name, (0, 0))  # the loop's published view, as GET reads it
    with svc.sessions.begin() as s:
        rows = store.lock_queues(s)
        # A value no tick can use, left in a row by hand (a NaN share made the sum NaN, which
        # no bound refuses), is reset first, as the loop's repair_queues would (a share: 0).
        repair_rows(s, rows, svc.clock.time())
        q = next((x for x in rows if x.name == name), None)
        if q is None:
            raise HTTPException(404, f"queue {name} not found")
        share = body.nominal_share if body.nominal_share is not None else q.nominal_share
        others = sum(x.nominal_share for x in rows if x.name != name)
        if share + others > 1.0 + 1e-9:
            raise err(
                422,
                ["body", "nominal_share"],
                f"shares would sum to {share + others:.3f}, more than 1",
            )
        q.nominal_share = share
        if "borrowing_limit_share" in body.model_fields_set:
            q.borrowing_limit_share = body.borrowing_limit_share
        if body.weight is not None:
            q.weight = body.weight
        for field in ("min_runtime_s", "preemption_budget"):
            if field in body.model_fields_set:
                setattr(q, field, getattr(body, field))
        if "flavor_quotas" in body.model_fields_set:
            q.flavor_quotas = _flavor_quotas(svc, body.flavor_quotas or {})
        _check_flavors_hold(svc, rows, name)
        store.event(
            s, "queue", f"queue {name} quota set: share {share}", team=name, at=svc.clock.time()
        )
        out = _out(q, usage)
    svc.loop.queues_dirty = True
    svc.loop.wake()
    return out


def _flavor_quotas(svc: Service, quotas: FlavorQuotas) -> dict[str, dict[str, Any]] | None:
    """The stored form of a queue's per-flavor quotas; a flavor the fleet does not have now is
    refused by name (a quota for it would silently do nothing)."""
    flavors = svc.loop.topo.flavors
    for fl in quotas:
        if fl not in flavors:
            raise err(
                422,
                ["body", "flavor_quotas", fl],
                f"flavor {fl!r} is not in this fleet ({', '.join(flavors)})",
            )
    return {fl: fq.model_dump(exclude_none=True) for fl, fq in quotas.items()} or None


def _check_flavors_hold(svc: Service, rows: Iterable[m.Queue], name: str) -> None:
    """Every flavor's nominal quotas, with this edit, fit in the flavor: the fleet files'
    rule (`check_flavor_shares`), on the fleet in service now."""
    topo = svc.loop.topo
    queues = queues_spec(rows, svc.settings.min_runtime_s).cluster_queues
    try:
        check_flavor_shares(queues, dict(zip(topo.flavors, topo.flavor_gpus(), strict=True)), name)
    except InputError as e:
        raise err(422, ["body", "flavor_quotas"], f"queue {name}'s edit: {e.reason}") from None


@router.post(
    "/tokens",
    response_model=TokenOut,
    status_code=201,
    summary="Create a team token (admin); the secret is shown only in this response",
)
def create_token(body: TokenCreate, who: Admin, svc: Svc) -> TokenOut:
    ttl = body.expires_in_s if body.expires_in_s is not None else svc.settings.max_token_ttl_s
    ttl = min(ttl, svc.settings.max_token_ttl_s)
    expires_at = svc.clock.time() + ttl
    with svc.sessions.begin() as s:
        secret, row = store.create_token(
            s, body.team, at=svc.clock.time(), label=body.label, expires_at=expires_at
        )
        token_id = row.id
    svc.loop.queues_dirty = True
    svc.loop.wake()
    return TokenOut(
        id=token_id, team=body.team, token=secret, expires_at=expires_at, expires_in_s=ttl
    )


@router.get("/tokens", response_model=list[TokenInfo], summary="Every token, no secrets (admin)")
def list_tokens(who: Admin, svc: Svc) -> list[TokenInfo]:
    with svc.sessions() as s:
        return [
            TokenInfo(
                id=t.id,
                team=team,
                admin=t.admin,
                label=t.label,
                created_at=t.created_at,
                expires_at=t.expires_at,
                revoked_at=t.revoked_at,
            )
            for t, team in store.tokens(s)
        ]


@router.delete(
    "/tokens/{token_id}",
    response_model=TokenRevoked,
    summary="Revoke a token (admin); it stops working at once",
    description="Idempotent: a token revoked already answers 200 with `already_revoked: true` "
    "and the first revocation's `revoked_at`.",
)
def revoke_token(token_id: TokenId, who: Admin, svc: Svc) -> TokenRevoked:
    if token_id == who.token_id:
        raise err(422, ["path", "token_id"], "the token making the request cannot revoke itself")
    with svc.sessions.begin() as s:
        got = store.revoke_token(s, token_id, svc.clock.time())
        if got is None:
            raise HTTPException(404, f"token {token_id} not found")
        t, already = got
        team = store.team_name(s, t.team_id)
        out = TokenRevoked(
            id=t.id,
            team=team,
            admin=t.admin,
            label=t.label,
            created_at=t.created_at,
            expires_at=t.expires_at,
            revoked_at=t.revoked_at,
            already_revoked=already,
        )
    svc.token_cache.forget_token(token_id)
    return out
