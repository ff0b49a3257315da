"""Scripted Ray calls for the Ray executor's launch tests (test_ray_launching.py,
test_ray_calls_thread.py): no cluster; placement groups, agents and teardowns recorded with the
thread that made them."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from cortex.executors.ray import launching
from cortex.executors.ray.executor import RayExecutor
from cortex.executors.spec import ExitRecord, LaunchSpec

TWO_NODES = (("node-a", tuple(range(8))), ("node-b", tuple(range(8))))


def spec(job_id: int, attempt: int = 1) -> LaunchSpec:
    return LaunchSpec(
        job_id=job_id,
        attempt=attempt,
        command=[sys.executable, "-c", "pass"],
        env={},
        working_dir=None,
        devices=list(range(16)),
        nprocs=2,
        uses_gpus=True,
        nodes=TWO_NODES,
    )


class ScriptedRay:
    """placement_group, the agents and the teardown, recorded as (call, job, thread); a
    placement group for a job in `hold` waits until the test sets `release`; one for a job in
    `fail` raises."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, ex: RayExecutor) -> None:
        self.calls: list[tuple[str, int, str]] = []
        self.hold: set[int] = set()
        self.fail: dict[int, str] = {}
        self.release = threading.Event()
        self.entered = threading.Event()
        monkeypatch.setattr(launching, "placement_group", self.placement_group)
        monkeypatch.setattr(ex, "_agent_cls", Agents())
        monkeypatch.setattr(ex, "_teardown_now", self.teardown)

    def placement_group(self, bundles: Any, *, name: str, **_: Any) -> str:
        job = int(name.split("-")[1])
        self.calls.append(("create", job, threading.current_thread().name))
        if job in self.hold:
            self.entered.set()
            assert self.release.wait(10)
        if job in self.fail:
            raise RuntimeError(self.fail[job])
        return f"pg-{job}"

    def teardown(self, h: Any) -> None:
        self.calls.append(("teardown", h.job_id, threading.current_thread().name))


class Agents:
    """ray.remote(NodeAgent) as far as _create_agents uses it."""

    def options(self, **_: Any) -> Agents:
        return self

    def remote(self, *args: Any) -> Any:
        return Agent()


class Agent:
    """A created agent: its rendezvous address never comes here (the gang stays placing), so
    a stop decides how a created gang ends."""

    class master:  # noqa: N801  (the actor method's name)
        @staticmethod
        def remote() -> Any:
            return type("Ref", (), {"future": staticmethod(Future)})()


def executor(root: Path) -> RayExecutor:
    ex = RayExecutor(root, None, connect=False, pg_timeout_s=60.0)
    ex.connected = True  # every Ray call the tests reach is scripted
    return ex


def polled(ex: RayExecutor, timeout_s: float = 10.0) -> list[ExitRecord]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        got = ex.poll()
        if got:
            return got
        time.sleep(0.01)
    raise AssertionError("no exit record")


def _thread() -> str:
    return threading.current_thread().name
