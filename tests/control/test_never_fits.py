"""The control plane's never-fits check (drive/intake.py, the twin's rule): a gang that its
queue can never hold is refused at submission (422 naming the field, nothing stored), and one
already stored (taken before a quota cut) is rejected by the loop and by recovery instead of
waiting forever."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body
from sqlalchemy import func, select

from cortex.control import models as m

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
# 4 slots: shares of 0.25 are 1 slot each. Nominal 0.25 + borrowing limit 0.25 = 2 slots.
CAP_2 = {"nominal_share": 0.25, "borrowing_limit_share": 0.25}
CAP_1 = {"nominal_share": 0.0, "borrowing_limit_share": 0.25}


class Env:
    def __init__(self, url: str, home: Path) -> None:
        self.url, self.home = url, home
        self.svc = fake_service(url, home, slots=4)
        self.client = TestClient(self.svc.app)
        tok = self.client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()
        self.h = {"Authorization": f"Bearer {tok['token']}"}

    def quota(self, body: dict) -> None:
        r = self.client.put("/v1/queues/fsd", json=body, headers=ADMIN_H)
        assert r.status_code == 200, r.text
        self.svc.loop.tick()  # the loop's view of the queues, which the API reads

    def jobs(self) -> int:
        with self.svc.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(m.Job)) or 0)

    def job(self, job_id: int) -> dict:
        return self.client.get(f"/v1/jobs/{job_id}", headers=self.h).json()


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


@pytest.mark.parametrize(
    ("extra", "field", "need"),
    [
        ({"gpus": 3}, "gpus", 3),
        ({"gpus": 3, "elastic": {"min_gpus": 3, "max_gpus": 4}}, "elastic.min_gpus", 3),
    ],
)
def test_a_gang_over_its_queues_limit_is_refused_at_submission(
    env: Env, extra: dict, field: str, need: int
) -> None:
    """The fleet has 4 slots, so the old check (the fleet alone) took these: the queue may
    hold 2, so they could only ever wait."""
    env.quota(CAP_2)
    r = env.client.post("/v1/jobs", json=job_body(**extra), headers=env.h)
    assert r.status_code == 422, r.text
    [d] = r.json()["detail"]
    assert ".".join(str(x) for x in d["loc"][1:]) == field
    assert d["msg"] == (
        f"NeverFits: needs {need} GPUs; the most any acceptable flavor could give is 2"
    )
    assert env.jobs() == 0
    ok = env.client.post("/v1/jobs", json=job_body(gpus=2), headers=env.h)
    assert ok.status_code == 201, ok.text  # 2 = nominal 1 + borrowing 1: may run


def test_a_stored_job_the_queue_can_no_longer_hold_is_rejected_by_the_loop(env: Env) -> None:
    env.quota(CAP_2)
    r = env.client.post("/v1/jobs", json=job_body(gpus=2), headers=env.h)
    assert r.status_code == 201, r.text
    a = int(r.json()["id"])
    env.quota(CAP_1)  # cut before the loop read the job: the same tick rebuilds, then ingests
    j = env.job(a)
    assert j["state"] == "rejected", j
    assert j["reason"] == "NeverFits: needs 2 GPUs; the most any acceptable flavor could give is 1"
    assert j["ended_at"] is not None
    kinds = [e["kind"] for e in env.client.get(f"/v1/events?job_id={a}", headers=env.h).json()]
    assert "rejected" in kinds


def test_recovery_rejects_a_queued_job_the_queue_can_no_longer_hold(env: Env) -> None:
    env.quota(CAP_2)
    env.svc.loop.schedulable = False  # taken in, left queued
    a = int(env.client.post("/v1/jobs", json=job_body(gpus=2), headers=env.h).json()["id"])
    env.svc.loop.tick()
    assert env.job(a)["state"] == "queued"
    with env.svc.sessions.begin() as s:  # a cut the running loop never saw
        q = s.scalar(select(m.Queue).where(m.Queue.name == "fsd"))
        assert q is not None
        q.nominal_share = 0.0
    env.svc.close()
    env.svc = fake_service(env.url, env.home, slots=4)
    env.client = TestClient(env.svc.app)
    j = env.job(a)
    assert j["state"] == "rejected" and j["reason"].startswith("NeverFits: needs 2"), j
    assert j["ended_at"] is not None


def test_an_unknown_team_is_refused_in_intakes_words(env: Env) -> None:
    r = env.client.post("/v1/jobs", json=job_body(team="ghost"), headers=ADMIN_H)
    assert r.status_code == 422, r.text
    [d] = r.json()["detail"]
    assert d["loc"] == ["body", "team"]
    assert d["msg"] == "UnknownQueue: team ghost has no cluster queue (create a token for it)"
    assert env.jobs() == 0
