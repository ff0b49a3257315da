"""Liveness, readiness, /metrics and /docs access, local Swagger assets, and `logs` following
a job across attempts (issue 9)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

from cortex.control.service import Service

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


def sqlite_service(tmp_path: Path, **kw: object) -> Service:
    return fake_service(f"sqlite:///{tmp_path / 'ops.db'}", tmp_path, **kw)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = sqlite_service(tmp_path, retry_backoff_base_s=0.0, retry_backoff_max_s=0.0)
    yield service
    service.close()


def test_healthz_is_503_when_the_loop_stops_ticking(svc: Service) -> None:
    c = TestClient(svc.app)
    svc.loop.tick()
    r = c.get("/healthz")
    assert r.status_code == 200 and r.json()["last_tick_age_s"] < svc.settings.health_stale_s
    # As if every tick since had raised (what an unusable queue row once caused).
    svc.loop.last_tick_monotonic = time.monotonic() - svc.settings.health_stale_s - 1
    r = c.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "stale"
    assert c.get("/readyz").json() == {"ready": True, "store": "ok", "executor": "ok"}


def test_readyz_is_503_when_the_store_is_gone(svc: Service) -> None:
    svc.engine.dispose()
    (Path(svc.settings.home) / "ops.db").unlink()
    (Path(svc.settings.home) / "ops.db").mkdir()  # a path SQLite cannot open
    r = TestClient(svc.app).get("/readyz")
    assert r.status_code == 503 and r.json()["store"].startswith("error")


def test_metrics_and_docs_are_open_on_loopback_and_need_a_token_otherwise(
    tmp_path: Path,
) -> None:
    local = sqlite_service(tmp_path / "a")
    public = sqlite_service(tmp_path / "b", host="0.0.0.0")
    try:
        lc, pc = TestClient(local.app), TestClient(public.app)
        for path in ("/metrics", "/docs", "/openapi.json"):
            assert lc.get(path).status_code == 200, path
            assert pc.get(path).status_code == 401, path
            assert pc.get(path, headers=ADMIN_H).status_code == 200, path
    finally:
        local.close()
        public.close()


def test_docs_load_their_assets_from_the_service(svc: Service) -> None:
    c = TestClient(svc.app)
    html = c.get("/docs").text
    assert "cdn" not in html.lower() and "/docs/assets/swagger-ui-bundle.js" in html
    js = c.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000  # the real bundle, ~1 MB


def test_logs_follow_crosses_attempts_until_the_job_is_final(svc: Service) -> None:
    c = TestClient(svc.app)
    token = c.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    svc.loop.tick()
    job_id = c.post("/v1/jobs", json=job_body(), headers=h).json()["id"]
    ex = svc.executor

    def write(attempt: int, text: str) -> None:
        out, _ = ex.log_paths(job_id, attempt)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)

    def attempt_now() -> int:
        return int(c.get(f"/v1/jobs/{job_id}", headers=h).json()["attempt"])

    def drive() -> None:
        svc.loop.tick()  # attempt 1 starts
        write(1, "one\n")
        time.sleep(0.5)  # let the follower read attempt 1 while it runs
        ex.finish(job_id, "preempted", 75)  # requeued: the job is not final
        for _ in range(50):  # a bounded number of ticks until attempt 2 runs
            svc.loop.tick()
            if attempt_now() == 2:
                break
        write(2, "two\n")
        time.sleep(0.5)
        ex.finish(job_id, "completed", 0)
        svc.loop.tick()

    t = threading.Thread(target=drive)
    t.start()
    try:
        with c.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": True}, headers=h) as r:
            text = r.read().decode()
    finally:
        t.join(timeout=60)
    assert text == "one\ntwo\n"  # the old follow ended with attempt 1
    assert c.get(f"/v1/jobs/{job_id}", headers=h).json()["state"] == "completed"
