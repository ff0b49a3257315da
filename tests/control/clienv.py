"""The CLI against an in-process service (fake executor, real store and API): the commands'
HTTP client is the service's TestClient, so a test drives the loop tick by tick."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service
from typer.testing import CliRunner

from cortex.cli import client as client_mod
from cortex.cli.main import app

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class CliEnv:
    def __init__(self, url: str, home: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> None:
        self.ex = FakeExecutor(home / "runs")
        self.svc = fake_service(url, home, executor=self.ex, **kw)
        self.admin = TestClient(self.svc.app, headers=ADMIN_H)
        token = self.admin.post("/v1/tokens", json={"team": "fsd"}).json()["token"]
        self.client = TestClient(self.svc.app, headers={"Authorization": f"Bearer {token}"})
        self.svc.loop.tick()
        monkeypatch.setattr(
            client_mod, "_client", lambda timeout=30.0: contextlib.nullcontext(self.client)
        )

    def run(self, *args: str) -> tuple[int, str, str]:
        r = CliRunner().invoke(app, list(args), env={"COLUMNS": "250", "NO_COLOR": "1"})
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return r.exit_code, r.stdout, r.stderr

    def state(self, job_id: int) -> str:
        return str(self.admin.get(f"/v1/jobs/{job_id}").json()["state"])

    def close(self) -> None:
        self.svc.close()
