"""Builders shared by the control-plane unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakeexec import FakeExecutor, Spec, inventory

from cortex.control.clock import SYSTEM, Clock
from cortex.control.config import Settings
from cortex.control.service import Service

ADMIN = "ctx_admin-secret-for-tests"


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
