"""Tokens (issue 9, defect 7): expiry, revocation through the API and behind its back, admin
token rotation, and a submission right after its team's token was created."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body
from sqlalchemy import func, select, update

from cortex.control import models as m
from cortex.control.service import Service

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_token(client: TestClient, team: str = "fsd", **kw: object) -> tuple[int, str]:
    r = client.post("/v1/tokens", json={"team": team, **kw}, headers=ADMIN_H)
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


def test_revoked_token_is_refused_at_once_and_listed(client: TestClient) -> None:
    tid, secret = new_token(client)
    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 200  # now cached
    r = client.delete(f"/v1/tokens/{tid}", headers=ADMIN_H)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None, r.text
    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 401
    listed = {t["id"]: t for t in client.get("/v1/tokens", headers=ADMIN_H).json()}
    assert listed[tid]["revoked_at"] is not None and listed[tid]["team"] == "fsd"
    assert all("token" not in t and "token_hash" not in t for t in listed.values())


def test_token_revoked_behind_the_services_back_stops_within_the_cache_ttl(
    client: TestClient, svc: Service
) -> None:
    tid, secret = new_token(client)
    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 200
    with svc.sessions.begin() as s:  # another service on the same store, or a hand edit
        s.execute(update(m.Token).where(m.Token.id == tid).values(revoked_at=time.time()))
    time.sleep(svc.settings.token_cache_s + 0.05)
    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 401


def test_expired_token_is_refused(client: TestClient, svc: Service) -> None:
    tid, secret = new_token(client, expires_in_s=3600)
    listed = {t["id"]: t for t in client.get("/v1/tokens", headers=ADMIN_H).json()}
    assert listed[tid]["expires_at"] > time.time() + 3500
    with svc.sessions.begin() as s:
        s.execute(update(m.Token).where(m.Token.id == tid).values(expires_at=time.time() - 1))
    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 401


def test_only_the_admin_lists_and_revokes_tokens(client: TestClient) -> None:
    tid, secret = new_token(client)
    assert client.get("/v1/tokens", headers=bearer(secret)).status_code == 403
    assert client.delete(f"/v1/tokens/{tid}", headers=bearer(secret)).status_code == 403
    assert client.delete("/v1/tokens/999999", headers=ADMIN_H).status_code == 404
    assert client.delete("/v1/tokens/0", headers=ADMIN_H).status_code == 422


def test_changing_the_admin_token_revokes_the_old_one(db_url: str, tmp_path: Path) -> None:
    first = fake_service(db_url, tmp_path)
    assert TestClient(first.app).get("/v1/tokens", headers=ADMIN_H).status_code == 200
    first.close()
    rotated = "ctx_rotated-admin-token-0123456789"
    again = fake_service(db_url, tmp_path, admin_token=rotated)
    try:
        c = TestClient(again.app)
        assert c.get("/v1/tokens", headers=ADMIN_H).status_code == 401  # once valid forever
        assert c.get("/v1/tokens", headers=bearer(rotated)).status_code == 200
    finally:
        again.close()


def test_submit_right_after_creating_the_token_is_accepted(
    client: TestClient, svc: Service
) -> None:
    svc.loop.tick()
    _, secret = new_token(client, "newteam")
    # No tick in between: the loop's view of the queues is older than the token.
    r = client.post("/v1/jobs", json=job_body(), headers=bearer(secret))
    assert r.status_code == 201, r.text
    svc.loop.tick()
    state = client.get(f"/v1/jobs/{r.json()['id']}", headers=bearer(secret)).json()["state"]
    assert state in ("admitted", "running"), state  # taken in by the queue, not failed


# ---- idempotency and all-or-nothing submissions ------------------------------------------------
def job_count(svc: Service) -> int:
    with svc.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(m.Job)) or 0)


def test_idempotency_key_makes_a_retry_return_the_first_jobs(
    client: TestClient, svc: Service
) -> None:
    _, secret = new_token(client)
    h = {**bearer(secret), "Idempotency-Key": "retry-1"}
    first = client.post("/v1/jobs", json=job_body(), headers=h)
    again = client.post("/v1/jobs", json=job_body(), headers=h)
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert job_count(svc) == 1
    other = client.post("/v1/jobs", json=job_body(name="other"), headers=h)
    assert other.status_code == 409 and other.json()["detail"][0]["loc"][1] == "Idempotency-Key"
    # Keys are per team: another team's same key is a new submission.
    _, opt = new_token(client, "optimus")
    r = client.post(
        "/v1/jobs", json=job_body(), headers={**bearer(opt), "Idempotency-Key": "retry-1"}
    )
    assert r.status_code == 201 and job_count(svc) == 2
    bad = client.post("/v1/jobs", json=job_body(), headers={**h, "Idempotency-Key": "a b"})
    assert bad.status_code == 422 and job_count(svc) == 2


def test_a_job_list_is_stored_all_or_nothing(client: TestClient, svc: Service) -> None:
    _, secret = new_token(client)
    h = bearer(secret)
    r = client.post("/v1/jobs", json={"jobs": [job_body(), job_body(gpus=2**40)]}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "jobs", 1, "gpus"]
    assert job_count(svc) == 0
    r = client.post("/v1/jobs", json={"jobs": [job_body(name="a"), job_body(name="b")]}, headers=h)
    assert r.status_code == 201, r.text
    assert [j["name"] for j in r.json()["jobs"]] == ["a", "b"]
    assert job_count(svc) == 2


def test_working_dir_is_judged_on_the_path_alone(
    client: TestClient, svc: Service, tmp_path: Path
) -> None:
    _, secret = new_token(client)
    h = bearer(secret)
    root = svc.settings.workdir_roots_for("fsd")[0]
    ok = client.post("/v1/jobs", json=job_body(working_dir=f"{root}/not-made-yet"), headers=h)
    assert ok.status_code == 201, ok.text
    answers = set()
    # An existing directory outside the roots and a missing one get the same answer.
    for outside in (str(tmp_path), str(tmp_path / "no" / "such"), f"{root}/../../etc"):
        r = client.post("/v1/jobs", json=job_body(working_dir=outside), headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "working_dir"]
        answers.add(r.json()["detail"][0]["msg"])
    assert len(answers) == 2  # "..": its own message; the two plain paths: one message


def test_idempotency_keys_older_than_a_week_are_pruned(client: TestClient, svc: Service) -> None:
    from cortex.control.batcher import IDEMPOTENCY_KEEP_S

    _, secret = new_token(client)
    with svc.sessions.begin() as s:
        s.add(
            m.IdempotencyKey(
                team="fsd",
                key="old",
                request_hash="0" * 64,
                job_ids=[],
                created_at=time.time() - IDEMPOTENCY_KEEP_S - 60,
            )
        )
    svc.batcher._next_prune = 0.0  # due now (it runs hourly)
    h = {**bearer(secret), "Idempotency-Key": "new"}
    assert client.post("/v1/jobs", json=job_body(), headers=h).status_code == 201
    with svc.sessions() as s:
        assert s.scalars(select(m.IdempotencyKey.key)).all() == ["new"]


def test_concurrent_requests_on_a_cold_cache_share_one_store_lookup(
    svc: Service, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a token's cache entry lapses, the requests that arrive while the first lookup is
    in flight wait for it instead of each querying the store (16 clients once made 16
    lookups per second per token). A refused token is refused for every waiter."""
    import asyncio
    import threading

    import httpx

    from cortex.control import store

    _, token = new_token(client)
    svc.token_cache.clear()
    calls = 0
    gate = threading.Event()
    real = store.principal_for

    def slow(*a: object, **kw: object) -> object:
        nonlocal calls
        calls += 1
        gate.wait(5)  # held in flight until every request has arrived
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "principal_for", slow)

    async def burst(tok: str) -> list[int]:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            reqs = [c.get("/v1/queues", headers=bearer(tok)) for _ in range(16)]
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, gate.set)
            return [r.status_code for r in await asyncio.gather(*reqs)]

    assert asyncio.run(burst(token)) == [200] * 16
    assert calls == 1
    gate.clear()
    calls = 0
    assert asyncio.run(burst("ctx_no-such-token-0123456789")) == [401] * 16
    assert calls == 1
