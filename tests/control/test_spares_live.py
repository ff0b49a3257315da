"""Hot spares in the control plane (`--hot-spares N`, the twin's pool in drive/spares.py),
through the loop with a fake executor owning one pod of three 8-GPU nodes and a clock the test
moves: the spare is held out of scheduling; a gang that loses a node is relaunched in the same
tick on its old node and the spare (time to recover: 0 s of the clock, one tick), where without
spares it waits for the node's repair; the repaired node refills the pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock
from fakeexec import FakeExecutor, FakeExit, Spec
from fastapi.testclient import TestClient
from helpers import ADMIN, job_body

from cortex.control.service import Service
from cortex.control.settings import Settings
from cortex.executors.nodes import NodeInfo, build_fleet

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
NODES = ("node-a", "node-b", "node-c")
REPAIR_S = 3600.0  # how long the test keeps the lost node away


class FleetExecutor(FakeExecutor):
    changes: list[tuple[str, bool]]

    def node_changes(self) -> list[tuple[str, bool]]:
        out, self.changes = self.changes, []
        return out


class Env:
    def __init__(self, url: str, home: Path, spares: int) -> None:
        self.clock = FakeClock()
        self.ex = FleetExecutor(home / "runs")
        self.ex.changes = []
        fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in NODES])
        settings = Settings(
            home=home, database_url=url, admin_token=ADMIN, min_runtime_s=0.0, max_retries=3,
            hot_spares=spares,
        )  # fmt: skip
        self.svc = Service(
            settings, executor=self.ex, inventory=fleet, node_name="ray", launch_spec=Spec,
            handle_from_dict=lambda d: d, clock=self.clock,
        )  # fmt: skip
        self.svc.loop.retry_backoff_base_s = 0.0
        self.client = TestClient(self.svc.app)
        r = self.client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H)
        self.h = {"Authorization": f"Bearer {r.json()['token']}"}
        self.svc.loop.tick()

    def submit(self, gpus: int) -> int:
        r = self.client.post("/v1/jobs", json=job_body(gpus=gpus, nprocs=1), headers=self.h)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def job(self, jid: int) -> dict[str, Any]:
        return dict(self.client.get(f"/v1/jobs/{jid}", headers=self.h).json())

    def up(self) -> list[bool]:
        return list(self.svc.loop.mirror.state.node_up)

    def lose_node_of(self, jid: int, node: str) -> None:
        """`node` dies under the gang: its run fails naming the node, the node goes down."""
        att = self.job(jid)["attempt"]
        self.ex.alive = {k: v for k, v in self.ex.alive.items() if k[0] != jid}
        self.ex.exits.append(FakeExit(jid, att, "failed", None, f"node {node} lost: ActorDied"))
        self.ex.changes = [(node, False)]

    def recover_s(self, jid: int, attempt: int, *, step_s: float, limit_s: float) -> float:
        """Clock seconds until the job runs `attempt`, ticking every `step_s`."""
        t0 = self.clock.time()
        while self.job(jid)["attempt"] < attempt or self.job(jid)["state"] != "running":
            assert self.clock.time() - t0 <= limit_s, self.job(jid)
            self.svc.loop.tick()
            if self.job(jid)["attempt"] >= attempt and self.job(jid)["state"] == "running":
                break
            self.clock.advance(step_s)
            if self.clock.time() - t0 >= REPAIR_S:
                self.ex.changes = [("node-b", True)]
        return self.clock.time() - t0


@pytest.fixture
def make(db_url: str, tmp_path: Path) -> Any:
    made: list[Env] = []

    def build(spares: int) -> Env:
        e = Env(db_url, tmp_path, spares)
        made.append(e)
        return e

    yield build
    for e in made:
        e.svc.close()


def test_a_gang_that_loses_a_node_restarts_at_once_on_the_spare(make: Any) -> None:
    env = make(1)
    assert env.up() == [True, True, False]  # node-c: the pod's spare, out of scheduling
    h = env.client.get("/v1/nodes/health", headers=env.h).json()
    assert [n["state"] for n in h] == ["up", "up", "spare"]
    gang = env.submit(16)
    env.svc.loop.tick()
    other = env.submit(8)  # cannot take the spare: it waits with the gang running
    env.svc.loop.tick()
    assert env.job(gang)["state"] == "running" and env.job(other)["state"] == "queued"
    assert [n for n, _ in env.ex.launched[-1].nodes] == ["node-a", "node-b"]
    env.lose_node_of(gang, "node-b")
    took = env.recover_s(gang, 2, step_s=60.0, limit_s=2 * REPAIR_S)
    assert took == 0.0  # the same tick: no queue, no backoff
    assert [n for n, _ in env.ex.launched[-1].nodes] == ["node-a", "node-c"]
    assert env.up() == [True, False, True]  # node-b down, node-c in service
    h = env.client.get("/v1/nodes/health", headers=env.h).json()
    assert [n["state"] for n in h] == ["up", "down", "up"]
    events = env.client.get("/v1/events", params={"job_id": gang}, headers=env.h).json()
    assert any(e["message"] == "node node-b replaced by hot spare node-c" for e in events)
    # node-b is repaired: the pool was short, so it becomes the spare (held out).
    env.ex.changes = [("node-b", True)]
    env.svc.loop.tick()
    assert env.up() == [True, False, True] and env.job(other)["state"] == "queued"


def test_without_spares_the_gang_waits_for_the_repair(make: Any) -> None:
    env = make(0)
    gang = env.submit(16)
    env.svc.loop.tick()
    other = env.submit(8)  # takes node-c
    env.svc.loop.tick()
    assert env.job(other)["state"] == "running"
    env.lose_node_of(gang, "node-b")
    took = env.recover_s(gang, 2, step_s=60.0, limit_s=2 * REPAIR_S)
    # node-b back after REPAIR_S (3,600 s): the gang runs at that tick.
    assert took == REPAIR_S


def test_a_second_loss_with_the_pool_empty_goes_to_the_queue(make: Any) -> None:
    env = make(1)
    gang = env.submit(16)
    env.svc.loop.tick()
    env.lose_node_of(gang, "node-b")
    env.svc.loop.tick()  # swapped onto node-c
    env.clock.advance(10.0)
    env.lose_node_of(gang, "node-c")  # the pod has no spare left
    env.svc.loop.tick()
    assert env.job(gang)["state"] == "requeued"
    events = env.client.get("/v1/events", params={"job_id": gang}, headers=env.h).json()
    assert any("no hot spare left" in e["message"] for e in events)


def test_hot_spares_is_bounded() -> None:
    with pytest.raises(ValueError, match="hot_spares"):
        Settings(hot_spares=-1)
    with pytest.raises(ValueError, match="hot_spares"):
        Settings(hot_spares=10**6)


def test_a_spare_that_died_is_not_swapped_in_and_refills_the_pool_once_back(make: Any) -> None:
    env = make(1)
    gang = env.submit(16)
    env.svc.loop.tick()
    env.ex.changes = [("node-c", False)]  # the idle spare dies
    env.svc.loop.tick()
    env.lose_node_of(gang, "node-b")
    env.svc.loop.tick()
    assert env.job(gang)["state"] == "requeued"  # not relaunched onto the dead spare
    assert env.up() == [True, False, False]
    env.ex.changes = [("node-c", True)]  # back: it refills the empty pool, held out
    env.svc.loop.tick()
    assert env.up() == [True, False, False] and env.job(gang)["state"] == "requeued"
