"""A running job's REASON: "launching on NODE [devices]" while it starts, "running on ..."
once its processes run. It read "launching on ..." for the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fakeexec import FakeExecutor, FakeHandle
from fastapi.testclient import TestClient
from helpers import ADMIN_H, fake_service, job_body


def _start(client: TestClient, svc: object) -> int:
    r = client.post("/v1/jobs", json=job_body(team="fsd", gpus=2), headers=ADMIN_H)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _job(client: TestClient, job_id: int) -> dict:
    return dict(client.get(f"/v1/jobs/{job_id}", headers=ADMIN_H).json())


def test_a_run_the_executor_started_reads_running_on(db_url: str, tmp_path: Path) -> None:
    # The local executor (and this fake) have started the processes when launch returns.
    svc = fake_service(db_url, tmp_path)
    try:
        client = TestClient(svc.app)
        client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H)
        svc.loop.tick()
        a = _start(client, svc)
        svc.loop.tick()
        got = _job(client, a)
        assert got["state"] == "running"
        assert got["reason"] == "running on node-test [0, 1]"
        # The transition keeps what happened at that moment.
        assert got["history"][-1]["reason"] == "launching on node-test [0, 1]"
        listed = client.get("/v1/jobs", headers=ADMIN_H).json()["jobs"]
        assert listed[0]["reason"] == "running on node-test [0, 1]"
    finally:
        svc.close()


@dataclass
class SlowStart(FakeExecutor):
    """Runs that start after launch returns, as the Ray executor's gangs (is_running)."""

    started: set[tuple[int, int]] = field(default_factory=set)

    def is_running(self, job_id: int, attempt: int) -> bool:
        return (job_id, attempt) in self.started


def test_a_run_that_starts_later_reads_launching_until_it_runs(tmp_path: Path) -> None:
    ex = SlowStart(tmp_path / "runs")
    svc = fake_service(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, executor=ex)
    try:
        client = TestClient(svc.app)
        client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H)
        svc.loop.tick()
        a = _start(client, svc)
        svc.loop.tick()
        svc.loop.tick()
        assert _job(client, a)["reason"] == "launching on node-test [0, 1]"
        ex.started.add((a, 1))
        svc.loop.tick()
        assert _job(client, a)["reason"] == "running on node-test [0, 1]"
        assert svc.loop._starting == set()
        # A run that ends before it ever ran is forgotten, not marked.
        b = _start(client, svc)
        svc.loop.tick()
        assert svc.loop._starting == {(b, 1)}
        ex.finish(b, "failed", 1)
        svc.loop.tick()  # retried at once: attempt 2 is the one watched now
        assert svc.loop._starting == {(b, 2)}
    finally:
        svc.close()


def test_a_run_adopted_while_launching_reads_running_once_it_runs(tmp_path: Path) -> None:
    # The service died between the launch and the handle's commit: adopted at the restart, it
    # read "launching on ..." for the rest of its run.
    url = f"sqlite:///{tmp_path / 'c.db'}"
    ex = FakeExecutor(tmp_path / "runs")
    svc = fake_service(url, tmp_path, executor=ex)
    client = TestClient(svc.app)
    client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H)
    svc.loop.tick()
    a = _start(client, svc)
    loop = svc.loop

    def launch_then_die(launches: list) -> None:
        for _jid, _attempt, spec in launches:
            loop.executor.launch(spec)

    loop._launch = launch_then_die  # type: ignore[method-assign]
    loop.tick()
    assert _job(client, a)["reason"] == "launching on node-test [0, 1]"
    svc.close()
    ex.adoptable.add((a, 1))
    ex.live.append(FakeHandle(a, 1, (0, 1)))
    svc = fake_service(url, tmp_path, executor=ex)
    try:
        client = TestClient(svc.app)
        assert svc.recovered["adopted"] == 1, svc.recovered
        svc.loop.tick()
        assert _job(client, a)["reason"] == "running on node-test [0, 1]"
    finally:
        svc.close()
