"""The loop with an executor that owns a multi-node fleet (as the Ray executor does), against
the in-test fake executor: launches carry the placement node by node, and a node the executor
loses goes down through the twin's failure transition and comes back through repair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakeexec import FakeExecutor, Spec
from fastapi.testclient import TestClient
from helpers import ADMIN, job_body

from cortex.control.service import Service
from cortex.control.settings import Settings
from cortex.executors.nodes import NodeInfo, build_fleet

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class FleetExecutor(FakeExecutor):
    """The fake executor plus the fleet side: node changes the test scripts."""

    changes: list[tuple[str, bool]]

    def node_changes(self) -> list[tuple[str, bool]]:
        out, self.changes = self.changes, []
        return out


def test_nodes_go_down_and_come_back_through_the_loop(tmp_path: Path) -> None:
    ex = FleetExecutor(tmp_path / "runs")
    ex.changes = []
    # Two 8-GPU nodes, as discover() gives them.
    fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        admin_token=ADMIN,
        min_runtime_s=0.0,
        max_retries=1,
    )
    svc = Service(
        settings,
        executor=ex,
        inventory=fleet,
        node_name="ray",
        launch_spec=Spec,
        handle_from_dict=lambda d: d,
    )
    svc.loop.retry_backoff_base_s = 0.0
    client = TestClient(svc.app)
    token = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {token}"}

    def job(jid: int) -> dict[str, Any]:
        return dict(client.get(f"/v1/jobs/{jid}", headers=h).json())

    jid = int(client.post("/v1/jobs", json=job_body(gpus=16, nprocs=2), headers=h).json()["id"])
    svc.loop.tick()
    spec = ex.launched[-1]
    # 16 GPUs: all of both nodes, node by node, indices on each node.
    assert spec.nodes == (("node-a", tuple(range(8))), ("node-b", tuple(range(8))))
    # node-b dies: the executor reports the run failed by it and the node down.
    ex.finish(jid, "failed", None)
    ex.changes = [("node-b", False)]
    svc.loop.tick()
    svc.loop.tick()
    assert list(svc.loop.mirror.state.node_up) == [True, False]
    assert job(jid)["state"] == "requeued"  # 16 GPUs do not fit on node-a alone: it waits
    ex.changes = [("node-b", True), ("node-x", False)]  # a name the fleet never had: ignored
    svc.loop.tick()
    svc.loop.tick()
    assert list(svc.loop.mirror.state.node_up) == [True, True]
    assert (job(jid)["state"], job(jid)["attempt"]) == ("running", 2)
    svc.close()
