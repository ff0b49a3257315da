"""The lock discipline (docs/control-plane.md): a request handler never waits for the scheduler
loop. Defect 3 of issue 9: the cancel route held the store's write lock and then took the loop's
lock (`devices_of`), while a tick held the loop's lock and waited for the write lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

from cortex.control.service import Service

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
HANG_S = 60.0  # a request that has not answered by then is hung (they answer in ms; generous)


class BlockingPoll(FakeExecutor):
    """poll() (called inside a tick, after the loop has started it) waits for a go-ahead."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.block = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def poll(self) -> list[Any]:
        if self.block:
            self.entered.set()
            self.release.wait(HANG_S)
        return super().poll()


@pytest.fixture
def blocked(db_url: str, tmp_path: Path) -> Iterator[tuple[Service, BlockingPoll, TestClient]]:
    ex = BlockingPoll(tmp_path / "runs")
    svc = fake_service(db_url, tmp_path, executor=ex)
    client = TestClient(svc.app)
    yield svc, ex, client
    ex.release.set()
    svc.close()


def _answer_within(fn: Any, timeout_s: float) -> Any:
    """fn() in a thread; its result, or None if it has not answered within timeout_s."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout_s)
    return out[0] if out else None


def test_requests_answer_while_a_tick_is_in_progress(
    blocked: tuple[Service, BlockingPoll, TestClient],
) -> None:
    svc, ex, client = blocked
    token = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    svc.loop.tick()
    job = client.post("/v1/jobs", json=job_body(gpus=2), headers=h).json()["id"]
    svc.loop.tick()
    assert client.get(f"/v1/jobs/{job}", headers=h).json()["devices"] == [0, 1]

    ex.block = True
    tick = threading.Thread(target=svc.loop.tick, daemon=True)
    tick.start()
    assert ex.entered.wait(HANG_S), "the tick never reached poll()"
    # The tick is in progress (it owns the loop's state). A cancel of the running job takes the
    # store's write lock and reports the job's devices; on the old code it waited for the loop
    # lock here, and the tick then waited for the write lock: a deadlock.
    r = _answer_within(lambda: client.post(f"/v1/jobs/{job}/cancel", headers=h), HANG_S / 2)
    assert r is not None, "cancel hung behind the tick"
    assert r.status_code == 202 and r.json()["devices"] == [0, 1]
    q = _answer_within(lambda: client.get("/v1/queues", headers=ADMIN_H), HANG_S / 2)
    assert q is not None and q.status_code == 200
    assert {x["name"]: x["running_gpus"] for x in q.json()}["fsd"] == 2
    met = _answer_within(lambda: client.get("/metrics"), HANG_S / 2)
    assert met is not None and 'cortex_gpus_allocated{flavor="CPU-SLOT"} 2.0' in met.text
    ex.release.set()
    tick.join(HANG_S)
    assert not tick.is_alive(), "the tick did not finish after the cancel"
    svc.loop.tick()
    assert (job, 1, "cancel") in ex.terminated
