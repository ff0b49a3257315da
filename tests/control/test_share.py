"""GET /v1/share (fair share you can read) on a machine of 4 CPU slots, with hand-derived
guarantees, use, borrowing and lending; a team sees its own row only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class Env:
    def __init__(self, url: str, home: Path) -> None:
        self.svc = fake_service(url, home, slots=4)
        self.client = TestClient(self.svc.app)
        self.h = self.token("fsd")
        self.red = self.token("red")
        # fsd: nominal int(0.5 * 4) = 2; red: int(0.25 * 4) = 1; neither has a limit.
        for team, share in (("fsd", 0.5), ("red", 0.25)):
            r = self.client.put(
                f"/v1/queues/{team}", json={"nominal_share": share}, headers=ADMIN_H
            )
            assert r.status_code == 200, r.text
        self.svc.loop.tick()

    def token(self, team: str) -> dict[str, str]:
        r = self.client.post("/v1/tokens", json={"team": team}, headers=ADMIN_H)
        return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def test_a_borrowing_team_and_the_team_it_borrows_from(env: Env) -> None:
    r = env.client.post("/v1/jobs", json=job_body(gpus=3), headers=env.h)
    assert r.status_code == 201
    env.svc.loop.tick()
    everyone = env.client.get("/v1/share", headers=ADMIN_H).json()
    rows = {t["team"]: t for t in everyone["teams"]}
    assert sorted(rows) == ["fsd", "red"]
    [fsd] = rows["fsd"]["flavors"]
    [red] = rows["red"]["flavors"]
    # fsd uses 3 of its 2: borrows 1, idle 0. red uses 0 of its 1: idle 1, and that 1 is
    # what fsd borrows: lent 1 (1 idle of a pool of 1, times min(1 borrowed, 1) / 1).
    assert (fsd["guaranteed"], fsd["used"], fsd["borrowed"], fsd["idle"], fsd["lent"]) == (
        2, 3, 1, 0, 0,
    )  # fmt: skip
    assert (red["guaranteed"], red["used"], red["borrowed"], red["idle"], red["lent"]) == (
        1, 0, 0, 1, 1,
    )  # fmt: skip
    assert fsd["borrowing_limit"] is None
    assert rows["fsd"]["dominant_share"] == 0.75  # 3 / 4 slots, weight 1
    assert rows["red"]["dominant_share"] == 0.0
    assert everyone["cohort"] == [{"flavor": "CPU-SLOT", "total": 4, "used": 3, "borrowed": 1}]


def test_a_team_sees_its_own_row_and_another_team_is_a_404(env: Env) -> None:
    mine = env.client.get("/v1/share", headers=env.red).json()
    assert [t["team"] for t in mine["teams"]] == ["red"]
    theirs = env.client.get("/v1/share?team=fsd", headers=env.red)
    assert theirs.status_code == 404 and theirs.json()["detail"] == "team fsd not found"
    assert env.client.get("/v1/share?team=nosuch", headers=ADMIN_H).status_code == 404
    bad = env.client.get("/v1/share?team=Bad%20Name", headers=ADMIN_H)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "team"]
