"""Hostile values at the API's edge (issue 9, defects 2, 5, 6): infinite, NaN and oversized
numbers, alias bombs, deep nesting, oversized bodies and headers. Each gets a 4xx naming the
field, nothing is stored, and the scheduler keeps ticking."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body
from sqlalchemy import func, select, update

from cortex.control import models as m
from cortex.control.service import Service

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
JSON_H = {"Content-Type": "application/json"}


def team(client: TestClient, name: str = "fsd") -> dict[str, str]:
    r = client.post("/v1/tokens", json={"team": name}, headers=ADMIN_H)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def snapshot(svc: Service) -> dict[str, Any]:
    with svc.sessions() as s:
        rows = s.execute(
            select(
                m.Queue.name, m.Queue.nominal_share, m.Queue.borrowing_limit_share, m.Queue.weight
            )
        ).all()
        jobs = s.scalar(select(func.count()).select_from(m.Job))
    return {"queues": sorted(tuple(r) for r in rows), "jobs": jobs}


def loc_of(r: Any) -> str:
    return ".".join(str(x) for x in r.json()["detail"][0]["loc"])


# ---- defect 2: a queue edit can never brick the service -----------------------------------
@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"borrowing_limit_share": Infinity}', "borrowing_limit_share"),
        (b'{"borrowing_limit_share": 1e400}', "borrowing_limit_share"),
        (b'{"borrowing_limit_share": NaN}', "borrowing_limit_share"),
        (b'{"weight": -Infinity}', "weight"),
        (b'{"weight": 1e400}', "weight"),
        (b'{"nominal_share": NaN}', "nominal_share"),
        (b'{"borrowing_limit_share": 5}', "borrowing_limit_share"),
    ],
)
def test_queue_edit_with_a_non_finite_or_huge_value_is_refused(
    client: TestClient, svc: Service, raw: bytes, field: str
) -> None:
    team(client)
    svc.loop.tick()
    before = snapshot(svc)
    r = client.put("/v1/queues/fsd", content=raw, headers={**ADMIN_H, **JSON_H})
    assert r.status_code == 422, r.text
    assert loc_of(r) == f"body.{field}"
    assert snapshot(svc) == before
    ticks = svc.loop.ticks
    svc.loop.tick()  # raised OverflowError in QueueConfig.build once Infinity was stored
    assert svc.loop.ticks == ticks + 1


def test_service_starts_and_ticks_with_an_unusable_queue_row_in_the_store(
    db_url: str, tmp_path: Path
) -> None:
    first = fake_service(db_url, tmp_path)
    TestClient(first.app).post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H)
    with first.sessions.begin() as s:
        # What the unbounded API once stored; PostgreSQL's float8 takes Infinity too.
        s.execute(update(m.Queue).values(borrowing_limit_share=float("inf"), weight=-1.0))
    first.close()
    again = fake_service(db_url, tmp_path)  # raised OverflowError before the repair
    try:
        again.loop.tick()
        with again.sessions() as s:
            q = s.scalar(select(m.Queue).where(m.Queue.name == "fsd"))
            assert q is not None
            assert (q.borrowing_limit_share, q.weight) == (None, 1.0)
            msgs = s.scalars(select(m.Event.message).where(m.Event.kind == "queue")).all()
        assert any("borrowing_limit_share, weight reset" in x for x in msgs), msgs
    finally:
        again.close()


# ---- defect 5: integers bounded, never-fitting submissions refused ----------------------------
@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"gpus": 2**31}, "gpus"),  # PostgreSQL int4 ends at 2^31-1
        ({"gpus": 2**63}, "gpus"),  # SQLite's INTEGER ends at 2^63-1
        ({"gpus": 1e400}, "gpus"),
        ({"elastic": {"min_gpus": 1, "max_gpus": 2**63}}, "elastic.max_gpus"),
        ({"duration_s": 1e400}, "duration_s"),
        ({"duration_s": 1e300}, "duration_s"),
        ({"submit_s": float("nan")}, "submit_s"),
        ({"checkpoint_write_s": float("inf")}, "checkpoint_write_s"),
        ({"nprocs": 2**40}, "nprocs"),
        # The smallest gang fits but the gang asked for never can (4 slots in this fleet).
        ({"gpus": 64, "elastic": {"min_gpus": 1, "max_gpus": 64}}, "gpus"),
    ],
)
def test_out_of_range_numbers_are_refused_naming_the_field(
    client: TestClient, svc: Service, extra: dict[str, Any], field: str
) -> None:
    h = team(client)
    svc.loop.tick()
    before = snapshot(svc)
    raw = json.dumps(job_body(**extra)).encode()  # json.dumps writes inf/nan as Infinity/NaN
    r = client.post("/v1/jobs", content=raw, headers={**h, **JSON_H})
    assert r.status_code == 422, r.text
    assert loc_of(r) == f"body.{field}"
    assert snapshot(svc) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failing_submission_in_a_shared_batch_fails_only_itself(svc: Service) -> None:
    from cortex.control.schemas import SubmitRequest

    good = SubmitRequest.model_validate(job_body(team="victim"))
    # Past validation only by construction: the store refuses it (SQLite INTEGER overflow).
    bad = good.model_copy(update={"gpus": 2**63, "team": "attacker"})
    lock = svc.sessions.write_lock
    assert lock is not None
    with lock:  # the writer waits here, so both submissions land in one batch
        f_bad = svc.batcher.submit([bad])
        f_good = svc.batcher.submit([good])
    assert f_good.result(timeout=30).jobs[0].team == "victim"
    with pytest.raises(RuntimeError):
        f_bad.result(timeout=30)


# ---- defect 6: parsers safe, off the event loop, depth and size capped -----------------------
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
)


@pytest.mark.parametrize(
    ("raw", "ctype", "words"),
    [
        (BOMB.encode(), "application/yaml", "aliases"),
        (b"[" * 5000 + b"]" * 5000, "application/json", "nested deeper"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "application/json", "nested deeper"),
        (
            b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 400)),
            "application/yaml",
            "deeper",
        ),
        (b"[" * 5000 + b"]" * 5000, "application/yaml", "deeper"),
        (b"\xff\xfe\x00name", "application/yaml", "UTF-8"),
        (b"\xff\xfe\x00name", "application/json", "UTF-8"),
    ],
)
def test_hostile_bodies_get_a_4xx_and_store_nothing(
    client: TestClient, svc: Service, raw: bytes, ctype: str, words: str
) -> None:
    h = team(client)
    svc.loop.tick()
    before = snapshot(svc)
    r = client.post("/v1/jobs", content=raw, headers={**h, "Content-Type": ctype})
    assert r.status_code == 422, r.text
    assert words.lower() in r.json()["detail"][0]["msg"].lower(), r.text
    assert snapshot(svc) == before


def test_deep_json_on_routes_fastapi_parses_is_a_422_not_a_500(client: TestClient) -> None:
    team(client)
    deep = b'{"weight":' + b"[" * 5000 + b"]" * 5000 + b"}"
    for method, path in (("PUT", "/v1/queues/fsd"), ("POST", "/v1/tokens")):
        r = client.request(method, path, content=deep, headers={**ADMIN_H, **JSON_H})
        assert r.status_code == 422, (path, r.text)


def test_body_and_header_sizes_are_capped(client: TestClient, svc: Service) -> None:
    h = team(client)
    big = json.dumps({"weight": 1, "pad": "x" * svc.settings.max_body_bytes}).encode()
    r = client.put("/v1/queues/fsd", content=big, headers={**ADMIN_H, **JSON_H})
    assert r.status_code == 413, r.text
    r = client.get("/v1/jobs", headers={**h, "X-Pad": "y" * svc.settings.max_header_bytes})
    assert r.status_code == 431, r.text


def test_yaml_is_parsed_off_the_event_loop(
    client: TestClient, svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cortex.control.api.submit as submit_mod

    seen: list[bool] = []
    real = submit_mod.load_yaml

    def spy(*a: Any) -> Any:
        try:
            asyncio.get_running_loop()
            seen.append(True)
        except RuntimeError:
            seen.append(False)  # no running loop: a worker thread
        return real(*a)

    monkeypatch.setattr(submit_mod, "load_yaml", spy)
    h = team(client)
    svc.loop.tick()
    body = "name: y\ngpus: 1\nduration_s: 5\ncommand: [echo]\n"
    r = client.post("/v1/jobs", content=body, headers={**h, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert seen == [False]


def test_yaml_dates_stay_strings_and_nan_is_refused(client: TestClient, svc: Service) -> None:
    h = team(client)
    svc.loop.tick()
    yh = {**h, "Content-Type": "application/yaml"}
    body = "name: 2024-01-01\ngpus: 1\nduration_s: 5\ncommand: [echo]\n"
    r = client.post("/v1/jobs", content=body, headers=yh)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "2024-01-01"
    r = client.post(
        "/v1/jobs", content="name: n\ngpus: 1\nduration_s: .nan\ncommand: [x]\n", headers=yh
    )
    assert r.status_code == 422 and loc_of(r) == "body.duration_s", r.text


def test_a_quota_broken_while_running_is_repaired_after_the_failed_tick(
    client: TestClient, svc: Service
) -> None:
    team(client)
    svc.loop.tick()
    with svc.sessions.begin() as s:  # a hand edit behind the API's back
        s.execute(update(m.Queue).values(borrowing_limit_share=float("inf")))
    svc.loop.queues_dirty = True
    # The fleet spec refuses a non-finite share (naming it) where inf once overflowed later on.
    with pytest.raises(ValueError, match="borrowing_limit_share"):
        svc.loop.tick()  # what the loop thread catches before calling on_error
    assert svc.loop.on_error is not None
    svc.loop.on_error()
    svc.loop.tick()
    assert snapshot(svc)["queues"][0][2] is None  # fsd's borrowing limit back to the default
