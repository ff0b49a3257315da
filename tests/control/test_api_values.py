"""Values that pass JSON parsing but that a store or a process cannot take (NUL characters,
non-finite numbers): 422 naming the field on both databases, nothing written, and a batch
of other submissions committed with them is not lost."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, job_body
from sqlalchemy import func, select

from cortex.control import models as m
from cortex.control.service import Service

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


def _jobs(svc: Service) -> int:
    with svc.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(m.Job)) or 0)


RAW = [
    ('{"name": "a\\u0000b", "gpus": 1, "duration_s": 5, "command": ["x"]}', "name"),
    ('{"name": "a", "gpus": 1, "duration_s": 5, "command": ["x", "a\\u0000"]}', "command.1"),
    (
        '{"name": "a", "gpus": 1, "duration_s": 5, "command": ["x"], "env": {"A": "\\u0000"}}',
        "env.A",
    ),
    ('{"name": "a", "gpus": 1, "duration_s": Infinity, "command": ["x"]}', "duration_s"),
    ('{"name": "a", "gpus": 1, "duration_s": NaN, "command": ["x"]}', "duration_s"),
    ('{"name": "a", "gpus": 1, "work_gpu_hours": Infinity, "command": ["x"]}', "work_gpu_hours"),
]


@pytest.mark.parametrize(("raw", "field"), RAW)
def test_unstorable_values_get_422_and_write_nothing(svc: Service, raw: str, field: str) -> None:
    client = TestClient(svc.app)
    token = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    svc.loop.tick()
    before = _jobs(svc)
    r = client.post("/v1/jobs", content=raw, headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    loc = ".".join(str(x) for x in r.json()["detail"][0]["loc"][1:])
    assert loc == field, r.text
    assert _jobs(svc) == before
    # The service still takes good submissions.
    assert client.post("/v1/jobs", json=job_body(), headers=h).status_code == 201


PARAMS = [
    ("GET", "/v1/jobs?team=a%00", None, "team"),
    ("PUT", "/v1/queues/a%00b", {}, "name"),
    ("PATCH", "/v1/nodes/a%00b?schedulable=true", None, "name"),
    ("POST", "/v1/tokens", {"team": "x", "label": "a\x00"}, "label"),
    ("GET", f"/v1/jobs/{2**31}", None, "job_id"),
    ("GET", f"/v1/jobs/{2**63}", None, "job_id"),
    ("POST", f"/v1/jobs/{2**63}/cancel", None, "job_id"),
    ("GET", f"/v1/jobs/{2**63}/logs", None, "job_id"),
    ("GET", f"/v1/events?job_id={2**63}", None, "job_id"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), PARAMS)
def test_parameters_the_store_cannot_take_get_422(
    svc: Service, method: str, path: str, body: object, field: str
) -> None:
    client = TestClient(svc.app)  # raises the server's exception on a 500
    r = client.request(method, path, headers=ADMIN_H, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == field, r.text
