"""Start estimates from the live state run forward (control/estimate.py), on 4 CPU slots with
a clock the test moves: the point estimate derived by hand, the band around it, isolation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeclock import FakeClock
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class Env:
    def __init__(self, url: str, home: Path, **kw: object) -> None:
        self.clock = FakeClock()
        self.svc = fake_service(url, home, slots=4, clock=self.clock, **kw)
        self.client = TestClient(self.svc.app)
        r = self.client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H)
        self.h = {"Authorization": f"Bearer {r.json()['token']}"}
        r = self.client.post("/v1/tokens", json={"team": "red"}, headers=ADMIN_H)
        self.red = {"Authorization": f"Bearer {r.json()['token']}"}
        self.svc.loop.tick()

    def submit(self, **kw: object) -> int:
        r = self.client.post("/v1/jobs", json=job_body(**kw), headers=self.h)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def test_a_queue_behind_a_running_job_starts_when_it_is_estimated_to_end(env: Env) -> None:
    t0 = env.clock.time()
    env.submit(gpus=4, duration_s=100, name="a")
    env.svc.loop.tick()  # a runs from t0, estimated to end at t0 + 100
    env.clock.advance(20)
    b = env.submit(gpus=4, duration_s=50, name="b")
    c = env.submit(gpus=2, duration_s=10, name="c")
    env.svc.loop.tick()
    # b (the head) starts when a ends, t0 + 100, and runs 50 s; c needs 2 of the 4 slots b
    # holds: t0 + 150. Runtimes as estimated give the point estimate.
    got = {
        j["id"]: j["start_estimate"]
        for j in env.client.get("/v1/jobs?start=true", headers=env.h).json()["jobs"]
    }
    assert got[b]["start_s"] == t0 + 100 and got[c]["start_s"] == t0 + 150
    for e in (got[b], got[c]):
        assert e["runs"] == 5 and e["low_s"] <= e["start_s"] <= e["high_s"]
        assert e["low_s"] < e["high_s"]  # the drawn runtime errors spread it
    assert all(v is None for k, v in got.items() if k not in (b, c))  # a runs: no estimate
    why = env.client.get(f"/v1/jobs/{c}/why?start=true", headers=env.h).json()
    assert why["start_estimate"] == got[c]  # one computation per scheduling pass
    assert env.client.get(f"/v1/jobs/{c}/why", headers=env.h).json()["start_estimate"] is None
    theirs = env.client.get(f"/v1/jobs/{c}/why?start=true", headers=env.red)
    assert theirs.status_code == 404


def test_a_job_waiting_on_a_protected_victim_is_estimated_at_the_protection_end(
    db_url: str, tmp_path: Path
) -> None:
    # The forward run stepped only from end to end: a production job whose only victim was
    # inside its minimum runtime was estimated to start when the victim ended (t0 + 10,000),
    # though the loop preempts it when its protection ends (drive/protection.py).
    env = Env(db_url, tmp_path, min_runtime_s=600.0)
    try:
        t0 = env.clock.time()
        low = env.submit(gpus=4, duration_s=10_000, priority_class="preemptible", name="low")
        env.svc.loop.tick()
        env.clock.advance(100)
        high = env.submit(gpus=1, duration_s=50, priority_class="production", name="high")
        env.svc.loop.tick()  # the search finds low protected until t0 + 600
        assert env.client.get(f"/v1/jobs/{low}", headers=env.h).json()["state"] == "running"
        why = env.client.get(f"/v1/jobs/{high}/why?start=true", headers=env.h).json()
        assert why["start_estimate"]["start_s"] == t0 + 600
    finally:
        env.svc.close()


def test_a_start_past_the_horizon_is_not_guessed(env: Env) -> None:
    env.submit(gpus=4, duration_s=100 * 86400, name="long")  # 100 days: past the 30-day horizon
    env.svc.loop.tick()
    b = env.submit(gpus=1, duration_s=60)
    env.svc.loop.tick()
    got = env.client.get(f"/v1/jobs/{b}/why?start=true", headers=env.h).json()
    assert got["start_estimate"] == {"start_s": None, "low_s": None, "high_s": None, "runs": 5}


def test_estimating_never_changes_the_live_jobs(env: Env) -> None:
    env.submit(gpus=4, duration_s=100, priority_class="preemptible")
    env.svc.loop.tick()
    env.clock.advance(10)
    ids = [env.submit(gpus=g, duration_s=30) for g in (4, 2, 1)]
    env.svc.loop.tick()
    jobs = env.svc.loop.mirror.jobs
    fields = ("key", "est_end_s", "run_start_s", "done_s", "state", "queue_idx")

    def seen() -> dict[int, tuple]:
        return {j: tuple(getattr(jobs[j], f) for f in fields) for j in jobs}

    before = seen()
    r = env.client.get("/v1/jobs?start=true", headers=env.h).json()["jobs"]
    waiting = [j for j in r if j["id"] in ids and j["state"] == "queued"]
    assert waiting and all(j["start_estimate"]["start_s"] is not None for j in waiting)
    assert seen() == before


def test_a_job_waiting_out_a_retry_backoff_is_estimated_no_earlier_than_its_end(
    env: Env,
) -> None:
    """A failed job's retry backoff keeps it out of the pending queues; the estimate left it
    out and gave it none. It now joins the forward run's queues when its backoff ends, as the
    twin's RETRY event puts it back (sim/runs.py `_retry`)."""
    env.svc.loop.retry_backoff_base_s = 100.0  # retry 1 of 1 waits 100 s
    t0 = env.clock.time()
    x = env.submit(gpus=4, duration_s=600, name="x")
    env.svc.loop.tick()
    env.clock.advance(10)
    env.svc.loop.executor.finish(x, "failed", 1)
    env.svc.loop.tick()
    got = env.client.get(f"/v1/jobs/{x}", headers=env.h).json()
    assert got["state"] == "requeued" and got["reason"].endswith("; retry in 100 s")

    def start() -> dict:
        r = env.client.get(f"/v1/jobs/{x}/why?start=true", headers=env.h).json()
        return r["start_estimate"]

    # An empty machine: it starts when its backoff ends (the clock has not moved).
    est = start()
    assert est is not None and est["start_s"] == est["low_s"] == est["high_s"] == t0 + 110
    # A job submitted now takes the slots it left; x starts when that one ends.
    env.submit(gpus=4, duration_s=1000, name="a")
    env.svc.loop.tick()
    est = start()
    assert est is not None and est["start_s"] == t0 + 1010
    assert t0 + 110 <= est["low_s"] <= est["start_s"] <= est["high_s"]
