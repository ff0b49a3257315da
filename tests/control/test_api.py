"""The API on a service whose executor is an in-test fake: auth, isolation between teams, bad
input (422/413 naming the field, nothing written), queues, tokens, nodes, events, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, job_body
from sqlalchemy import func, select

from cortex.control import models as m
from cortex.control.service import Service

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


def team_headers(client: TestClient, team: str) -> dict[str, str]:
    r = client.post("/v1/tokens", json={"team": team}, headers=ADMIN_H)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def counts(svc: Service) -> dict[str, int]:
    with svc.sessions() as s:
        return {
            t.__tablename__: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in (m.Job, m.JobTransition, m.Allocation, m.Event, m.Team, m.Token, m.Queue)
        }


def test_missing_wrong_and_malformed_tokens_get_401(client: TestClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ):
        for method, path in (
            ("GET", "/v1/jobs"),
            ("POST", "/v1/jobs"),
            ("GET", "/v1/jobs/1"),
            ("GET", "/v1/queues"),
            ("GET", "/v1/nodes"),
            ("GET", "/v1/events"),
        ):
            r = client.request(method, path, headers=headers, json=job_body())
            assert r.status_code == 401, (headers, method, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"


def test_teams_see_and_cancel_only_their_own_jobs(client: TestClient, svc: Service) -> None:
    fsd = team_headers(client, "fsd")
    opt = team_headers(client, "optimus")
    svc.loop.tick()
    r = client.post("/v1/jobs", json=job_body(name="secret-fsd"), headers=fsd)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert r.json()["team"] == "fsd"
    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("GET", f"/v1/jobs/{job_id}/logs"),
    ):
        other = client.request(method, path, headers=opt)
        missing = client.request(
            method, path.replace(f"/jobs/{job_id}", "/jobs/99999"), headers=opt
        )
        assert other.status_code == missing.status_code == 404
        assert "secret" not in other.text
        assert other.json()["detail"].replace(str(job_id), "N") == missing.json()["detail"].replace(
            "99999", "N"
        )
    assert client.get("/v1/jobs", headers=opt).json()["jobs"] == []
    # Another team's list is a 404 as /v1/queue's and /v1/goodput's (it was an empty list),
    # and so is an admin's unknown team (a typo listed nothing).
    for r in (
        client.get("/v1/jobs?team=fsd", headers=opt),
        client.get("/v1/jobs?team=fsdd", headers=ADMIN_H),
    ):
        assert r.status_code == 404 and r.json()["detail"].startswith("team fsd")
    assert [j["id"] for j in client.get("/v1/jobs?team=fsd", headers=ADMIN_H).json()["jobs"]] == [
        job_id
    ]
    # A known team whose filter matches nothing lists nothing (not a 404).
    for q in ("team=fsd&state=completed", "team=optimus"):
        r = client.get(f"/v1/jobs?{q}", headers=ADMIN_H)
        assert (r.status_code, r.json()["jobs"]) == (200, []), q
    assert [j["id"] for j in client.get("/v1/jobs", headers=fsd).json()["jobs"]] == [job_id]
    assert client.get(f"/v1/jobs/{job_id}", headers=ADMIN_H).status_code == 200
    with svc.sessions() as s:
        assert s.get(m.Job, job_id).cancel_requested is False  # type: ignore[union-attr]
    # A team may not submit for another team.
    r = client.post("/v1/jobs", json=job_body(team="fsd"), headers=opt)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "team"]
    # Admin endpoints refuse team tokens.
    assert client.post("/v1/tokens", json={"team": "x"}, headers=fsd).status_code == 403
    assert client.put("/v1/queues/fsd", json={"nominal_share": 0.5}, headers=fsd).status_code == 403
    assert [q["name"] for q in client.get("/v1/queues", headers=opt).json()] == ["optimus"]


def test_tokens_are_stored_hashed(client: TestClient, svc: Service) -> None:
    secret = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    with svc.sessions() as s:
        hashes = s.scalars(select(m.Token.token_hash)).all()
    assert secret not in hashes and ADMIN not in hashes
    assert all(len(h) == 64 for h in hashes)


BAD = [
    # (body, content type, field, words in the message)
    (b'{"name": "x", "gpus": 1,', "application/json", "body", "malformed JSON"),
    (b"name: [unclosed", "application/yaml", "body", "malformed YAML"),
    (b"[1, 2]", "application/json", "body", "expected a job object"),
    (json.dumps(job_body(colour="red")).encode(), "application/json", "colour", "Extra inputs"),
    (json.dumps(job_body(gpus="two")).encode(), "application/json", "gpus", "integer"),
    (json.dumps(job_body(gpus=-1)).encode(), "application/json", "gpus", "greater than 0"),
    (json.dumps(job_body(gpus=True)).encode(), "application/json", "gpus", "integer"),
    (
        json.dumps(job_body(flavors=["H100-SXM5"])).encode(),
        "application/json",
        "flavors",
        "NoEligibleFlavor",
    ),
    (json.dumps(job_body(gpus=64)).encode(), "application/json", "gpus", "NeverFits: needs 64"),
    (json.dumps(job_body(command="python3 x.py")).encode(), "application/json", "command", "list"),
    (
        json.dumps(job_body(command=["python3", 7])).encode(),
        "application/json",
        "command.1",
        "string",
    ),
    (json.dumps(job_body(command=[])).encode(), "application/json", "command", "at least 1"),
    (json.dumps(job_body(env={"A": 1})).encode(), "application/json", "env.A", "string"),
    (
        json.dumps(job_body(priority_class="urgent")).encode(),
        "application/json",
        "priority_class",
        "UnknownPriorityClass",
    ),
    (
        json.dumps(job_body(working_dir="/no/such/dir")).encode(),
        "application/json",
        "working_dir",
        "must lie under",
    ),
    (
        # Neither is now given a default (the queue's default_duration_s): both is refused.
        json.dumps(job_body(work_gpu_hours=1.0)).encode(),
        "application/json",
        "body",
        "exactly one of work_gpu_hours or duration_s",
    ),
    (json.dumps(job_body(nprocs=2)).encode(), "application/json", "body", "nprocs"),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("body", "ctype", "field", "words"), BAD)
def test_bad_submissions_get_422_naming_the_field_and_write_nothing(
    client: TestClient, svc: Service, body: bytes, ctype: str, field: str, words: str
) -> None:
    fsd = team_headers(client, "fsd")
    svc.loop.tick()
    before = counts(svc)
    r = client.post("/v1/jobs", content=body, headers={**fsd, "Content-Type": ctype})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    loc = ".".join(str(x) for x in detail[0]["loc"][1:]) or "body"
    assert loc == field, detail
    assert words.lower() in detail[0]["msg"].lower(), detail
    assert counts(svc) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_oversized_body_gets_413_and_writes_nothing(client: TestClient, svc: Service) -> None:
    fsd = team_headers(client, "fsd")
    svc.loop.tick()
    before = counts(svc)
    big = job_body(env={"BIG": "x" * 16000, **{f"V{i}": "y" * 16000 for i in range(20)}})
    r = client.post("/v1/jobs", json=big, headers=fsd)
    assert r.status_code == 413
    assert "limit" in r.json()["detail"][0]["msg"]
    assert counts(svc) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_yaml_submission_and_team_default(client: TestClient, svc: Service) -> None:
    fsd = team_headers(client, "fsd")
    svc.loop.tick()
    body = b"name: y\ngpus: 2\nduration_s: 5\ncommand: [python3, -c, 'pass']\nenv: {A: b}\n"
    r = client.post("/v1/jobs", content=body, headers={**fsd, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert (r.json()["team"], r.json()["gpus"], r.json()["state"]) == ("fsd", 2, "queued")


def test_queue_quota_admin(client: TestClient, svc: Service) -> None:
    team_headers(client, "fsd")
    team_headers(client, "optimus")
    r = client.put("/v1/queues/fsd", json={"nominal_share": 0.75, "weight": 2}, headers=ADMIN_H)
    assert r.status_code == 200 and r.json()["nominal_share"] == 0.75
    r = client.put("/v1/queues/optimus", json={"nominal_share": 0.5}, headers=ADMIN_H)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "nominal_share"]
    assert client.put("/v1/queues/nope", json={}, headers=ADMIN_H).status_code == 404
    svc.loop.tick()
    names = {q.name for q in svc.loop.mirror.queues.queues}
    assert names == {"fsd", "optimus"}
    assert svc.loop.mirror.queues.queues[0].nominal == (3,)  # 0.75 of 4 slots


def test_queue_protection_reaches_the_scheduler_and_bad_values_name_the_field(
    client: TestClient, svc: Service
) -> None:
    team_headers(client, "fsd")
    body = {"min_runtime_s": 7200, "preemption_budget": 3}
    r = client.put("/v1/queues/fsd", json=body, headers=ADMIN_H)
    assert r.status_code == 200 and (r.json()["min_runtime_s"], r.json()["preemption_budget"]) == (
        7200,
        3,
    )
    for bad, field in (
        ({"min_runtime_s": -1}, "min_runtime_s"),
        ({"min_runtime_s": 1e12}, "min_runtime_s"),
        ({"preemption_budget": -1}, "preemption_budget"),
        ({"preemption_budget": 2.5}, "preemption_budget"),
        ({"preemption_budget": "3"}, "preemption_budget"),
    ):
        r = client.put("/v1/queues/fsd", json=bad, headers=ADMIN_H)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], bad
    svc.loop.tick()
    q = svc.loop.mirror.queues.queues[0]
    assert (q.name, q.min_runtime_s, q.preemption_budget) == ("fsd", 7200, 3)
    listed = client.get("/v1/queues", headers=ADMIN_H).json()
    assert (listed[0]["min_runtime_s"], listed[0]["preemption_budget"]) == (7200, 3)
    # null resets to the service's default runtime and no budget.
    body = {"min_runtime_s": None, "preemption_budget": None}
    assert client.put("/v1/queues/fsd", json=body, headers=ADMIN_H).status_code == 200
    svc.loop.tick()
    q = svc.loop.mirror.queues.queues[0]
    assert (q.min_runtime_s, q.preemption_budget) == (svc.settings.min_runtime_s, None)


def test_nodes_events_health_metrics(client: TestClient, svc: Service) -> None:
    fsd = team_headers(client, "fsd")
    svc.loop.tick()
    nodes = client.get("/v1/nodes", headers=fsd).json()
    assert [(n["name"], n["flavor"], n["gpus"], n["healthy"]) for n in nodes] == [
        ("node-test", "CPU-SLOT", 4, True)
    ]
    job_id = client.post("/v1/jobs", json=job_body(gpus=3), headers=fsd).json()["id"]
    svc.loop.tick()
    assert client.get(f"/v1/jobs/{job_id}", headers=fsd).json()["devices"] == [0, 1, 2]
    assert client.get("/v1/nodes", headers=fsd).json()[0]["allocated_gpus"] == 3
    kinds = [e["kind"] for e in client.get(f"/v1/events?job_id={job_id}", headers=fsd).json()]
    assert "start" in kinds
    # Another team's job's events are a 404 worded as a missing job's (they were `[]`).
    research = team_headers(client, "research")
    for jid in (job_id, job_id + 1000):
        r = client.get(f"/v1/events?job_id={jid}", headers=research)
        assert (r.status_code, r.json()["detail"]) == (404, f"job {jid} not found")
    assert client.get("/healthz").json()["status"] == "ok"
    text = client.get("/metrics").text
    assert 'cortex_jobs{state="running",team="fsd"} 1.0' in text
    assert 'cortex_gpus_allocated{flavor="CPU-SLOT"} 3.0' in text
    assert 'cortex_node_healthy{node="node-test"} 1.0' in text
    assert "cortex_queue_wait_seconds_count 1.0" in text
    # The histogram is exported with a zero count before any cycle: check that cycles landed.
    [cycles] = [
        ln for ln in text.splitlines() if ln.startswith("cortex_schedule_cycle_seconds_count")
    ]
    assert float(cycles.split()[-1]) >= 1
    # cordon: nothing new starts
    r = client.patch("/v1/nodes/node-test?schedulable=false", headers=ADMIN_H)
    assert r.status_code == 200 and r.json()["schedulable"] is False
    second = client.post("/v1/jobs", json=job_body(), headers=fsd).json()["id"]
    svc.loop.tick()
    assert client.get(f"/v1/jobs/{second}", headers=fsd).json()["state"] == "queued"
    client.patch("/v1/nodes/node-test?schedulable=true", headers=ADMIN_H)
    svc.loop.tick()
    assert client.get(f"/v1/jobs/{second}", headers=fsd).json()["state"] == "running"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_admin_token_is_made_once_at_first_start(db_url: str, tmp_path: Path) -> None:
    from fakeexec import FakeExecutor, Spec, inventory

    from cortex.control.config import Settings

    def start() -> Service:
        return Service(
            Settings(home=tmp_path, database_url=db_url),
            executor=FakeExecutor(tmp_path / "runs"),
            inventory=inventory(2),
            node_name="n",
            launch_spec=Spec,
            handle_from_dict=lambda d: d,
        )

    first = start()
    secret = first.new_admin_token
    assert secret is not None and secret.startswith("ctx_")
    r = TestClient(first.app).post(
        "/v1/tokens", json={"team": "fsd"}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert r.status_code == 201
    first.close()
    second = start()
    assert second.new_admin_token is None  # printed once, never again
    second.close()


def test_job_env_values_are_encrypted_at_rest(svc: Service, client: TestClient) -> None:
    """Issue 9: job env secrets sat in the store in plaintext. They are stored sealed with a key
    only the service's user can read, and opened only to launch."""
    import stat

    from sqlalchemy import text

    h = team_headers(client, "fsd")
    svc.loop.tick()
    r = client.post("/v1/jobs", json=job_body(env={"API_KEY": "s3cr3t-value"}), headers=h)
    assert r.status_code == 201, r.text
    with svc.sessions() as s:
        raw = str(s.execute(text("SELECT env FROM jobs")).scalar_one())
    assert "API_KEY" in raw and "s3cr3t-value" not in raw
    key = svc.settings.home / "env.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    svc.loop.tick()
    assert svc.executor.launched[-1].env == {"API_KEY": "s3cr3t-value"}  # type: ignore[attr-defined]
