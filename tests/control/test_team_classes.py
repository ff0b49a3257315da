"""Per-team priority classes (`CORTEX_TEAM_PRIORITY_CLASSES`, Slurm's QOS allowed per
association): a team submits only with the classes it is allowed; with no setting, any team
may use any class (the first run of the README needs no entry)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clienv import CliEnv
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

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
