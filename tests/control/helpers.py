"""Builders shared by the control-plane unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakeexec import FakeExecutor, Spec, inventory
from fastapi.testclient import TestClient

from cortex.control.clock import SYSTEM, Clock
from cortex.control.config import Settings
from cortex.control.service import Service

ADMIN = "ctx_admin-secret-for-tests"
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


def fake_service(
    url: str,
    home: Path,
    *,
    slots: int = 4,
    executor: FakeExecutor | None = None,
    clock: Clock = SYSTEM,
    **kw: Any,
) -> Service:
    base: dict[str, Any] = {
        "home": home,
        "database_url": url,
        "admin_token": ADMIN,
        "min_runtime_s": 0.0,
        "max_retries": 1,
    }
    settings = Settings(**{**base, **kw})
    ex = executor or FakeExecutor(home / "runs")
    svc = Service(
        settings,
        executor=ex,
        inventory=inventory(slots),
        node_name="node-test",
        launch_spec=Spec,
        handle_from_dict=lambda d: d,
        clock=clock,
    )
    # Retries at once unless a test asks for a delay (the backoff has its own tests).
    svc.loop.retry_backoff_base_s = 0.0
    return svc


def job_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "train",
        "gpus": 1,
        "duration_s": 60,
        "command": ["python3", "-c", "print('hi')"],
    }
    body.update(kw)
    return body


class TeamService:
    """A fake-executor service with one team's token (fsd), ticked once: the loop tests'
    common start. `submit` posts a job as that team and returns its id."""

    def __init__(self, url: str, home: Path, **kw: Any) -> None:
        self.ex = FakeExecutor(home / "runs")
        self.svc = fake_service(url, home, executor=self.ex, **kw)
        self.client = TestClient(self.svc.app)
        token = self.client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()
        self.h = {"Authorization": f"Bearer {token['token']}"}
        self.svc.loop.tick()

    def submit(self, **kw: object) -> int:
        r = self.client.post("/v1/jobs", json=job_body(**kw), headers=self.h)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def state(self, job_id: int) -> str:
        return str(self.client.get(f"/v1/jobs/{job_id}", headers=self.h).json()["state"])
