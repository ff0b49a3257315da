"""Per-team priority classes (`CORTEX_TEAM_PRIORITY_CLASSES`, Slurm's QOS allowed per
association): a team submits only with the classes it is allowed; with no setting, any team
may use any class (the first run of the README needs no entry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clienv import CliEnv
from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

from cortex.control.service import Service
from cortex.control.settings import Settings
from cortex.errors import InputError

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
CLASSES = {"*": ["normal", "preemptible"], "infra": ["production", "normal"]}


def _token(client: TestClient, team: str) -> dict[str, str]:
    r = client.post("/v1/tokens", json={"team": team}, headers=ADMIN_H)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    svc = fake_service(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, team_priority_classes=CLASSES)
    try:
        yield TestClient(svc.app)
    finally:
        svc.close()


def test_a_class_the_team_may_not_use_is_refused_naming_the_field(client: TestClient) -> None:
    fsd, infra = _token(client, "fsd"), _token(client, "infra")
    for path in ("/v1/jobs", "/v1/jobs/dry-run"):
        r = client.post(path, json=job_body(priority_class="production"), headers=fsd)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["detail"] == [
            {
                "loc": ["body", "priority_class"],
                "msg": "team fsd may not use class 'production'; allowed: normal, preemptible",
                "type": "not_allowed",
            }
        ]
    # One job of a list refused: the whole submission is, naming the job.
    two = {"jobs": [job_body(), job_body(priority_class="production")]}
    r = client.post("/v1/jobs", json=two, headers=fsd)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:4] == [
        "body",
        "jobs",
        1,
        "priority_class",
    ]
    assert client.get("/v1/jobs", headers=fsd).json()["jobs"] == []  # nothing stored
    # Its own entry wins over "*"; an allowed class passes; the admin submitting for a team is
    # held to that team's classes (the job's team is what the setting is about).
    assert client.post("/v1/jobs", json=job_body(priority_class="production"), headers=infra)
    r = client.post("/v1/jobs", json=job_body(priority_class="preemptible"), headers=infra)
    assert r.status_code == 422 and "allowed: production, normal" in r.text
    assert client.post("/v1/jobs", json=job_body(), headers=fsd).status_code == 201
    r = client.post(
        "/v1/jobs", json=job_body(team="fsd", priority_class="production"), headers=ADMIN_H
    )
    assert r.status_code == 422 and "team fsd may not use" in r.text
    # An unknown class is still named as unknown, not as forbidden.
    r = client.post("/v1/jobs", json=job_body(priority_class="urgent"), headers=fsd)
    assert r.status_code == 422 and "UnknownPriorityClass" in r.text


def test_without_the_setting_every_team_may_use_every_class(tmp_path: Path) -> None:
    svc = fake_service(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    try:
        client = TestClient(svc.app)
        fsd = _token(client, "fsd")
        r = client.post("/v1/jobs", json=job_body(priority_class="production"), headers=fsd)
        assert r.status_code == 201, r.text
    finally:
        svc.close()


def test_cli_dry_run_and_submit_say_the_allowed_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = CliEnv(
        f"sqlite:///{tmp_path / 'cli.db'}", tmp_path, monkeypatch, team_priority_classes=CLASSES
    )
    try:
        for extra in (["--dry-run"], []):
            code, _, err = env.run(
                "submit", *extra, "--priority-class", "production", "--duration-s", "5",
                "--", "python3", "-V",
            )  # fmt: skip
            assert code == 2, err
            assert "priority_class" in err and "allowed: normal, preemptible" in err
    finally:
        env.close()


def test_the_setting_is_bounded_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORTEX_TEAM_PRIORITY_CLASSES", json.dumps({"fsd": []}))
    with pytest.raises(InputError) as e:
        Settings.from_env()
    assert e.value.source == "CORTEX_TEAM_PRIORITY_CLASSES"
    monkeypatch.setenv("CORTEX_TEAM_PRIORITY_CLASSES", json.dumps({"Bad Team": ["normal"]}))
    with pytest.raises(InputError):
        Settings.from_env()
    monkeypatch.setenv("CORTEX_TEAM_PRIORITY_CLASSES", json.dumps(CLASSES))
    got = Settings.from_env()
    assert got.priority_classes_for("infra") == ["production", "normal"]
    assert got.priority_classes_for("fsd") == ["normal", "preemptible"]
    monkeypatch.delenv("CORTEX_TEAM_PRIORITY_CLASSES")
    assert Settings().priority_classes_for("fsd") is None


def test_an_unknown_class_in_the_setting_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A misspelt class ('preemtible') took the class away from the team at every submit, and
    nothing said so at start (review15)."""
    monkeypatch.setenv("CORTEX_TEAM_PRIORITY_CLASSES", json.dumps({"fsd": ["preemtible"]}))
    with pytest.raises(InputError) as e:
        Settings.from_env()
    assert e.value.source == "CORTEX_TEAM_PRIORITY_CLASSES"
    assert "unknown priority class 'preemtible'" in str(e.value)
    assert "known: production, normal, preemptible" in str(e.value)
    # The classes checked are the control plane's own (its queues take the fleet's defaults).
    monkeypatch.delenv("CORTEX_TEAM_PRIORITY_CLASSES")
    svc = fake_service(f"sqlite:///{tmp_path / 'c.db'}", tmp_path)
    try:
        assert set(svc.loop.mirror.queues.priority_classes) == {
            "production",
            "normal",
            "preemptible",
        }
    finally:
        svc.close()


def _svc(url: str, home: Path, ex: FakeExecutor, **kw: object) -> Service:
    svc = fake_service(url, home, executor=ex, slots=1, **kw)
    svc.loop.tick()
    return svc


def test_a_class_taken_away_across_a_restart_keeps_its_jobs_waiting_with_the_reason(
    tmp_path: Path,
) -> None:
    """Jobs stored at a class the team could use, then a restart with a setting that no longer
    allows it: they ran at the old class (nothing looked at them again). As Slurm keeps a job
    whose QOS left its association pending with reason InvalidQOS, they wait, parked, with the
    reason in REASON and in `why`; running jobs run on (Slurm's too), but one that comes back
    to the queue waits with the rest; the setting given back, they run."""
    url, ex = f"sqlite:///{tmp_path / 'r.db'}", FakeExecutor(tmp_path / "runs")
    svc = _svc(url, tmp_path, ex)
    client = TestClient(svc.app)
    fsd = _token(client, "fsd")
    ids = [
        client.post("/v1/jobs", json=job_body(priority_class=c), headers=fsd).json()["id"]
        for c in ("production", "production", "normal", "production")
    ]
    svc.loop.tick()
    running = client.get(f"/v1/jobs/{ids[0]}", headers=fsd).json()
    assert running["state"] == "running"  # one slot: the first runs, the others wait
    ex.adoptable = {(ids[0], 1)}  # alive across the restart
    svc.close()

    svc = _svc(url, tmp_path, ex, team_priority_classes=CLASSES)
    try:
        client = TestClient(svc.app)
        fsd = _token(client, "fsd")
        why = "priority class 'production' not allowed for team fsd " + (
            "(CORTEX_TEAM_PRIORITY_CLASSES allows normal, preemptible)"
        )
        for jid in ids[1], ids[3]:
            got = client.get(f"/v1/jobs/{jid}", headers=fsd).json()
            assert (got["state"], got["reason"]) == ("queued", why), got
            w = client.get(f"/v1/jobs/{jid}/why", headers=fsd).json()
            assert w["summary"] == f"InvalidPriorityClass: {why}", w
            assert "CORTEX_TEAM_PRIORITY_CLASSES" in w["blockers"][0]["hint"]
        assert svc.recovered["invalid_class"] == 2
        # The running job runs on; when it ends the slot goes to the allowed class's job, not
        # to a production one ahead of it in priority.
        assert client.get(f"/v1/jobs/{ids[0]}", headers=fsd).json()["state"] == "running"
        ex.finish(ids[0], "failed", 1)  # a failure: requeued (max_retries 1), then parked
        for _ in range(3):
            svc.loop.tick()
        states = [client.get(f"/v1/jobs/{j}", headers=fsd).json() for j in ids]
        assert [s["state"] for s in states] == ["requeued", "queued", "running", "queued"]
        assert states[0]["reason"] == why
        # A request that judges every parked job (a release naming none) keeps them parked.
        svc.loop.request_gates()
        svc.loop.tick()
        assert client.get(f"/v1/jobs/{ids[1]}", headers=fsd).json()["reason"] == why
        # Cancelling one is how its team lets it go.
        assert client.post(f"/v1/jobs/{ids[3]}/cancel", headers=fsd).status_code == 202
        ex.finish(ids[2])
        for _ in range(3):
            svc.loop.tick()
        assert client.get(f"/v1/jobs/{ids[1]}", headers=fsd).json()["state"] == "queued"
        assert client.get(f"/v1/jobs/{ids[3]}", headers=fsd).json()["state"] == "cancelled"
    finally:
        svc.close()

    svc = _svc(url, tmp_path, ex)  # the class allowed again: they run, first to last
    try:
        assert svc.recovered["invalid_class"] == 0
        client = TestClient(svc.app)
        fsd = _token(client, "fsd")
        got = [client.get(f"/v1/jobs/{j}", headers=fsd).json()["state"] for j in ids[:2]]
        assert "running" in got, got
    finally:
        svc.close()
