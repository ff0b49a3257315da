"""Why pending and queue position (GET /v1/jobs/{id}/why, GET /v1/queue) against a live service
on the fake executor: one case per reason code with its numbers, derived by hand on a machine
of 4 CPU slots (one node, one pod, one flavor), and team isolation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class Env:
    def __init__(self, url: str, home: Path) -> None:
        self.ex = FakeExecutor(home / "runs")
        self.svc = fake_service(url, home, slots=4, executor=self.ex)
        self.client = TestClient(self.svc.app)
        self.h = self.token("fsd")
        self.red = self.token("red")
        self.svc.loop.tick()

    def token(self, team: str) -> dict[str, str]:
        r = self.client.post("/v1/tokens", json={"team": team}, headers=ADMIN_H)
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def submit(self, h: dict[str, str] | None = None, **kw: object) -> int:
        r = self.client.post("/v1/jobs", json=job_body(**kw), headers=h or self.h)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def why(self, job_id: int, h: dict[str, str] | None = None) -> dict:
        r = self.client.get(f"/v1/jobs/{job_id}/why", headers=h or self.h)
        assert r.status_code == 200, r.text
        return r.json()

    def state(self, job_id: int) -> str:
        return str(self.client.get(f"/v1/jobs/{job_id}", headers=ADMIN_H).json()["state"])


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def test_insufficient_capacity_names_its_numbers_and_the_list_shows_it(env: Env) -> None:
    a = env.submit(gpus=3)
    env.svc.loop.tick()
    b = env.submit(gpus=2, name="b")
    env.svc.loop.tick()
    assert env.state(a) == "running" and env.state(b) == "queued"
    got = env.why(b)
    assert got["never"] is False
    top = got["blockers"][0]
    # 4 slots, 3 held by a: 1 free. The fsd queue has no limit, and the cohort owns all 4
    # slots, 3 used: 1 free in quota. One node of 4: the largest free block is that 1 slot.
    assert (top["code"], top["requested_gpus"], top["free_gpus"]) == ("InsufficientCapacity", 2, 1)
    assert (top["free_in_quota"], top["largest_block_gpus"], top["jobs_ahead"]) == (1, 1, 0)
    assert top["message"] == "needs 2 CPU-SLOT, 1 free"
    assert "at most 1 starts now" in top["hint"]
    assert got["place"] == {"queue": "fsd", "position": 1, "ahead_in_queue": 0, "ahead_total": 0}
    listed = env.client.get("/v1/jobs", headers=env.h).json()["jobs"]
    reasons = {j["id"]: j["pending_reason"] for j in listed}
    assert reasons == {b: "InsufficientCapacity", a: None}
    text = env.client.get("/metrics").text
    assert 'cortex_pending_jobs{queue="fsd",reason="InsufficientCapacity"} 1.0' in text


def test_borrowing_limit_counts_what_the_queue_may_still_take(env: Env) -> None:
    r = env.client.put(
        "/v1/queues/fsd",
        json={"nominal_share": 0.25, "borrowing_limit_share": 0.25},
        headers=ADMIN_H,
    )
    assert r.status_code == 200, r.text
    env.submit(gpus=2)
    env.svc.loop.tick()
    b = env.submit(gpus=1)
    env.svc.loop.tick()
    top = env.why(b)["blockers"][0]
    # nominal int(0.25*4) = 1, limit int(0.25*4) = 1, usage 2: 1 + 1 - 2 = 0 left in quota,
    # though 2 slots are free.
    assert top["code"] == "BorrowingLimit"
    assert (top["requested_gpus"], top["free_in_quota"], top["free_gpus"]) == (1, 0, 2)
    assert top["detail"] == {
        "need": 1,
        "flavor": "CPU-SLOT",
        "queue": "fsd",
        "usage": 2,
        "nominal": 1,
        "limit": 1,
    }


def test_a_job_held_back_for_the_head_is_told_to_shorten(env: Env) -> None:
    env.submit(gpus=3, duration_s=60)
    env.svc.loop.tick()
    head = env.submit(gpus=4, name="head")
    late = env.submit(gpus=1, duration_s=600, name="late")
    env.svc.loop.tick()
    # head needs 4: 1 free + a's 3 at a's end (t+60) = 4, nothing extra. late fits the free
    # slot but would run past t+60 and there is no extra: held for the head.
    got = env.why(late)
    top = got["blockers"][0]
    assert top["code"] == "ReservedForHead"
    assert top["detail"]["head"] == head
    assert "shorter duration_s" in top["hint"] and str(head) in top["hint"]
    assert got["place"] == {"queue": "fsd", "position": 2, "ahead_in_queue": 1, "ahead_total": 1}
    assert env.why(head)["blockers"][0]["code"] == "InsufficientCapacity"


def test_jobs_past_the_examined_limit_are_not_examined_and_counted_behind(env: Env) -> None:
    loop = env.svc.loop
    loop.pol = dataclasses.replace(loop.pol, max_examined=1)
    env.submit(gpus=3)
    loop.tick()
    b = env.submit(gpus=4)
    c = env.submit(gpus=1)
    loop.tick()
    got = env.why(c)
    top = got["blockers"][0]
    assert (top["code"], top["detail"]) == ("NotExamined", {"why": "examined limit reached"})
    # The pass walked b only; c follows it by key: 1 ahead, in its own queue too.
    assert got["place"]["ahead_total"] == 1 and got["place"]["ahead_in_queue"] == 1
    assert got["blockers"][0]["jobs_ahead"] == 1
    assert env.why(b)["place"]["ahead_total"] == 0


def test_a_job_in_its_retry_delay_says_until_when(env: Env) -> None:
    loop = env.svc.loop
    loop.retry_backoff_base_s = 100.0
    a = env.submit(gpus=1)
    loop.tick()
    env.ex.finish(a, "failed", 1)
    loop.tick()
    assert env.state(a) == "requeued"
    got = env.why(a)
    top = got["blockers"][0]
    assert top["code"] == "RetryBackoff"
    assert top["message"] == f"waiting out a retry delay until t={loop.mirror.backoff[a]:.0f}"


def test_a_job_rejected_as_never_fitting_says_never(env: Env) -> None:
    r = env.client.put(
        "/v1/queues/fsd",
        json={"nominal_share": 0.25, "borrowing_limit_share": 0.25},
        headers=ADMIN_H,
    )
    assert r.status_code == 200
    env.svc.loop.tick()
    a = env.submit(gpus=2)
    # Cut to nominal 0 + limit 1 before the loop reads the job: the tick rejects it with
    # intake's message.
    env.client.put("/v1/queues/fsd", json={"nominal_share": 0.0}, headers=ADMIN_H)
    env.client.put("/v1/queues/fsd", json={"borrowing_limit_share": 0.0}, headers=ADMIN_H)
    env.svc.loop.tick()
    assert env.state(a) == "rejected"
    got = env.why(a)
    assert got["never"] is True
    assert got["blockers"][0]["code"] == "NeverFits"
    # nominal 0 + limit 0 = 0 slots: the most its queue could give.
    assert got["blockers"][0]["message"] == (
        "needs 2 GPUs; the most any acceptable flavor could give is 0"
    )


def test_submission_that_never_fits_reuses_intakes_message(env: Env) -> None:
    r = env.client.post("/v1/jobs", json=job_body(gpus=5), headers=env.h)
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == (
        "NeverFits: needs 5 GPUs; the most any acceptable flavor could give is 4"
    )


def test_why_of_another_teams_job_is_a_404_worded_as_missing(env: Env) -> None:
    a = env.submit(gpus=1)
    theirs = env.client.get(f"/v1/jobs/{a}/why", headers=env.red)
    missing = env.client.get("/v1/jobs/999999/why", headers=env.red)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"] == f"job {a} not found"
    assert missing.json()["detail"] == "job 999999 not found"
    assert env.client.get(f"/v1/jobs/{a}/why", headers=ADMIN_H).status_code == 200
    bad = env.client.get("/v1/jobs/0/why", headers=env.h)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "job_id"]


def test_queue_counts_other_teams_jobs_ahead_without_naming_them(env: Env) -> None:
    env.submit(gpus=3, name="fsd-running")
    env.svc.loop.tick()
    theirs = env.submit(env.red, gpus=4, name="red-secret-name")
    mine = env.submit(gpus=4, name="mine")
    env.svc.loop.tick()
    # Fair share: fsd holds 3 of 4 slots, red none, so red's head goes first.
    r = env.client.get("/v1/queue", headers=env.h)
    assert r.status_code == 200
    body = r.json()
    assert [q["queue"] for q in body["queues"]] == ["fsd"]
    (j,) = body["queues"][0]["jobs"]
    assert (j["id"], j["position"], j["ahead_in_queue"], j["ahead_other_queues"]) == (
        mine,
        1,
        0,
        1,
    )
    assert "red-secret-name" not in r.text and f'"id":{theirs}' not in r.text
    assert env.client.get("/v1/queue?team=red", headers=env.h).status_code == 404
    assert env.client.get("/v1/queue?team=nosuch", headers=ADMIN_H).status_code == 404
    bad = env.client.get("/v1/queue?limit=0", headers=env.h)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "limit"]
    everyone = env.client.get("/v1/queue", headers=ADMIN_H).json()
    assert sorted(q["queue"] for q in everyone["queues"]) == ["fsd", "red"]
    red = next(q for q in everyone["queues"] if q["queue"] == "red")
    assert [x["id"] for x in red["jobs"]] == [theirs]


def test_a_failure_to_record_never_stops_scheduling(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: object) -> None:
        raise RuntimeError("a bug in why")

    monkeypatch.setattr(env.svc.loop.why, "_record", broken)
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    assert env.state(a) == "running"
    assert env.svc.loop.tick_failures == 0
