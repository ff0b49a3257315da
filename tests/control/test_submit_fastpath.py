"""POST /v1/jobs skips FastAPI's routing (api/fastpath.py). Whatever a client sends, the
answer must be the one the FastAPI route gives: same status, same body, same headers that
matter. Each request below goes once through the fast path and once through the route (the
fast path switched off), against services with the same tokens and the same stored jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

from cortex.control import store
from cortex.control.api import fastpath
from cortex.control.service import Service

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
TEAM_TOKEN = "ctx_fastpath-team-token-0123456789"


def _cases() -> list[tuple[str, dict[str, str], Any]]:
    team = {"Authorization": f"Bearer {TEAM_TOKEN}"}
    yaml_h = {**team, "Content-Type": "application/yaml"}
    return [
        ("ok", team, job_body()),
        ("many", team, {"jobs": [job_body(), job_body(name="b")]}),
        ("no token", {}, job_body()),
        ("bad token", {"Authorization": "Bearer ctx_nope-0123456789"}, job_body()),
        ("nan", {**team, "Content-Type": "application/json"}, b'{"name":"x","gpus":NaN}'),
        ("bad json", {**team, "Content-Type": "application/json"}, b'{"name": '),
        ("gpus too big", team, job_body(gpus=2**40)),
        ("other team", team, job_body(team="victim")),
        ("admin names no team", ADMIN_H, job_body()),
        ("unknown class", team, job_body(priority_class="nope")),
        ("workdir", team, job_body(working_dir="/etc")),
        ("yaml alias", yaml_h, b"a: &x [1]\nb: *x\n"),
        ("idem key bad", {**team, "Idempotency-Key": "has space"}, job_body()),
        ("idem first", {**team, "Idempotency-Key": "k1"}, job_body(name="idem")),
        ("idem replay", {**team, "Idempotency-Key": "k1"}, job_body(name="idem")),
        ("idem conflict", {**team, "Idempotency-Key": "k1"}, job_body(name="other")),
    ]


def _answers(svc: Service, monkeypatch: pytest.MonkeyPatch, fast: bool) -> list[Any]:
    home = str(svc.settings.home)
    if not fast:

        async def route_only(self: fastpath.SubmitFastPath, scope: Any, rcv: Any, snd: Any) -> None:
            await self.app(scope, rcv, snd)

        monkeypatch.setattr(fastpath.SubmitFastPath, "__call__", route_only)
    c = TestClient(svc.app)
    svc.loop.tick()  # the team's queue in the loop's view
    out = []
    for name, headers, body in _cases():
        if isinstance(body, bytes):
            r = c.post("/v1/jobs", content=body, headers=headers)
        else:
            r = c.post("/v1/jobs", json=body, headers=headers)
        data = json.loads(r.text.replace(home, "HOME"))  # paths differ between the two
        for job in data.get("jobs", [data]) if isinstance(data, dict) else []:
            if isinstance(job, dict):
                job.pop("submitted_at", None)  # a time: differs between the two services
        keep = ("content-type", "www-authenticate", "idempotent-replayed")
        out.append((name, r.status_code, data, {k: r.headers.get(k) for k in keep}))
    monkeypatch.undo()
    return out


def test_the_fast_path_answers_as_the_fastapi_route_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = []
    for fast in (True, False):
        home = tmp_path / ("fast" if fast else "route")
        home.mkdir()
        service = fake_service(f"sqlite:///{home / 'fp.db'}", home)
        try:
            with service.sessions.begin() as s:  # the same team token in both services
                store.create_token(s, "fsd", at=time.time(), secret=TEAM_TOKEN)
            answers.append(_answers(service, monkeypatch, fast))
        finally:
            service.close()
    fast_answers, route_answers = answers
    for f, r in zip(fast_answers, route_answers, strict=True):
        assert f == r, f[0]
    statuses = {name: status for name, status, _, _ in fast_answers}
    # The cases do what they say (hand-checked against the API table in docs/control-plane.md).
    assert statuses == {
        "ok": 201,
        "many": 201,
        "no token": 401,
        "bad token": 401,
        "nan": 422,
        "bad json": 422,
        "gpus too big": 422,
        "other team": 422,
        "admin names no team": 422,
        "unknown class": 422,
        "workdir": 422,
        "yaml alias": 422,
        "idem key bad": 422,
        "idem first": 201,
        "idem replay": 200,
        "idem conflict": 409,
    }
