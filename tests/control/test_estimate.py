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
    def __init__(self, url: str, home: Path) -> None:
        self.clock = FakeClock()
        self.svc = fake_service(url, home, slots=4, clock=self.clock)
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


def test_a_start_past_the_horizon_is_not_guessed(env: Env) -> None:
    env.submit(gpus=4, duration_s=100 * 86400, name="long")  # 100 days: past the 30-day horizon
    env.svc.loop.tick()
    b = env.submit(gpus=1, duration_s=60)
    env.svc.loop.tick()
    got = env.client.get(f"/v1/jobs/{b}/why?start=true", headers=env.h).json()
    assert got["start_estimate"] == {"start_s": None, "low_s": None, "high_s": None, "runs": 5}
