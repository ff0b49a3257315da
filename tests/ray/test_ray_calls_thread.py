"""The Ray executor's agent calls off the scheduler's tick, over scripted Ray calls, no cluster:
the agents' start, wait and stop are sent from the ray-calls thread in order, a stop before the
start is sent starts nothing, and a placement-state read that hangs holds neither the tick nor
a launch or teardown (split from test_ray_launching.py, which was over 600 lines)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from scripted_ray import ScriptedRay, _thread, executor, polled, spec

from cortex.executors.ray.executor import RayExecutor
from cortex.executors.spec import ExitRecord


class Method:
    """One actor method of a scripted, live agent: each .remote() call is recorded with the
    thread that made it; master() answers at once (the group is placed), the rest never."""

    def __init__(self, calls: list[tuple[str, str]], name: str, answers: list[Any]) -> None:
        self.calls, self.name, self.answers = calls, name, answers

    def remote(self, *args: Any) -> Any:
        self.calls.append((self.name, _thread()))
        fut: Future[Any] = Future()
        self.answers.append(fut)
        if self.name == "master":
            fut.set_result(("127.0.0.1", 29500))
        return type("Ref", (), {"future": staticmethod(lambda: fut)})()


class LiveAgents:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.answers: list[Future[Any]] = []  # each call's Future, in call order

    def options(self, **_: Any) -> LiveAgents:
        return self

    def remote(self, *args: Any) -> Any:
        names = ("master", "start", "wait", "stop", "stop_gang")
        methods = {n: Method(self.calls, n, self.answers) for n in names}
        return type("LiveAgent", (), methods)()


def _started(ex: RayExecutor, key: tuple[int, int]) -> None:
    """Poll until the gang is running (its start handed to the calls thread)."""
    end = time.monotonic() + 10
    while ex._gangs[key].phase != "running" and time.monotonic() < end:
        assert ex.poll() == []
        ex.drain(10)


def test_the_agents_start_and_stop_are_sent_from_the_calls_thread_not_the_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: poll() sent every agent its start() and wait(), and terminate() its stop(), on
    the scheduler's tick (~1.5 ms a gang start). Now the ray-calls thread does, in order."""
    ex = executor(tmp_path)
    ScriptedRay(monkeypatch, ex)
    agents = LiveAgents()
    monkeypatch.setattr(ex, "_agent_cls", agents)
    ex.launch(spec(30))
    _started(ex, (30, 1))
    assert ex.drain(10)
    ex.poll()
    gang = ex._gangs[(30, 1)]
    assert sorted(gang.started) == [0, 1] and sorted(gang.waits) == [0, 1]
    assert ex.terminate(30, 1, "preempt") is True
    assert ex.drain(10)
    sent = [c for c in agents.calls if c[0] != "master"]
    # Two agents (one per node): start and wait each, then stop each, all on ray-calls.
    assert [name for name, _ in sent] == ["start", "wait", "start", "wait", "stop", "stop"]
    assert {thread for _, thread in sent} == {"ray-calls"}


def test_a_stop_before_the_start_is_sent_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ScriptedRay(monkeypatch, ex)
    agents = LiveAgents()
    monkeypatch.setattr(ex, "_agent_cls", agents)
    held = threading.Event()
    ex._calls.submit(held.wait, 10)  # the calls thread is busy: the start waits behind
    ex.launch(spec(31))
    end = time.monotonic() + 10
    while ex._gangs[(31, 1)].phase != "running" and time.monotonic() < end:
        assert ex.poll() == []
        ex._worker.drain(10)
    assert ex.terminate(31, 1, "preempt") is True
    held.set()
    (rec,) = polled(ex)
    assert (rec.job_id, rec.outcome, rec.exit_code) == (31, "preempted", None)
    assert rec.detail == "preempt requested; stopped before the job started"
    assert ex.drain(10)
    assert [n for n, _ in agents.calls if n in ("start", "wait")] == []


def test_the_placement_groups_state_is_read_off_the_tick_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: at the placement timeout poll() read the group's state from the GCS on the
    tick. Now the worker reads it; the gang fails (not created) or goes on (created)."""
    from cortex.executors.ray import executor as exmod

    ex = executor(tmp_path)
    # A read unanswered for another timeout gives the gang up: 0.5 s leaves a loaded machine
    # time to run the scripted reads (0.05 s did not, in one CI run).
    ex.pg_timeout_s = 0.5
    ray = ScriptedRay(monkeypatch, ex)  # its agents never answer: the gangs stay placing
    reads: list[tuple[str, str]] = []
    states = {"pg-40": "PENDING", "pg-41": "CREATED"}

    def table(pg: Any) -> dict[str, str]:
        reads.append((pg, _thread()))
        return {"state": states[pg]}

    monkeypatch.setattr(exmod.ray.util, "placement_group_table", table)
    ex.launch(spec(40))
    ex.launch(spec(41))
    (rec,) = polled(ex)
    assert (rec.job_id, rec.outcome) == (40, "failed")
    assert rec.detail.startswith("placement group not created within 0.5 s on node-a, node-b")
    # The two reads run one after the other on their thread: 41's may answer a poll later.
    end = time.monotonic() + 10
    while ex._gangs[(41, 1)].phase == "placing" and time.monotonic() < end:
        assert ex.poll() == []
        time.sleep(0.01)
    assert ex._gangs[(41, 1)].phase == "starting"  # placed: its agents are slow to start
    assert sorted(reads) == [("pg-40", "ray-reads"), ("pg-41", "ray-reads")]
    assert ex.drain(10)
    assert ("teardown", 40, "ray-launch") in ray.calls


def test_a_placement_state_read_that_hangs_never_holds_the_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past twice the timeout the gang is given up without the read's answer; before, poll()
    waited on the hung read (Future.exception() blocks), holding the tick as long as the GCS."""
    from cortex.executors.ray import executor as exmod

    ex = executor(tmp_path)
    ex.pg_timeout_s = 0.05
    ScriptedRay(monkeypatch, ex)
    answer, released = threading.Event(), threading.Event()

    def table(pg: Any) -> dict[str, str]:
        answer.wait(30)
        return {"state": "PENDING"}

    def release() -> None:
        released.set()
        answer.set()

    monkeypatch.setattr(exmod.ray.util, "placement_group_table", table)
    timer = threading.Timer(8.0, release)  # only the old code is still waiting by then
    timer.start()
    try:
        ex.launch(spec(42))
        (rec,) = polled(ex)
        assert not released.is_set()
        assert (rec.job_id, rec.outcome) == (42, "failed")
        assert rec.detail.startswith("placement group not created within 0.05 s")
    finally:
        release()
        timer.cancel()
    assert ex.drain(10)


def test_an_agents_wait_that_timed_out_is_sent_again_from_the_calls_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wait() returns None after WAIT_S (an hour) with the ranks still running: the next one
    was sent from the tick; now from the calls thread, its answer read as before."""
    ex = executor(tmp_path)
    ScriptedRay(monkeypatch, ex)
    agents = LiveAgents()
    monkeypatch.setattr(ex, "_agent_cls", agents)
    ex.launch(spec(32))
    _started(ex, (32, 1))
    assert ex.drain(10)
    ex.poll()
    gang = ex._gangs[(32, 1)]
    gang.waits[0].set_result(None)  # an hour went by, the ranks run on
    assert ex.poll() == []
    assert ex.drain(10)
    waits = [thread for name, thread in agents.calls if name == "wait"]
    assert waits == ["ray-calls"] * 3  # one per agent at the start, then agent 0's again
    assert not gang.waits[0].done()  # the new wait, pending like the agent's answer
    agents.answers[-1].set_result({"index": 0, "exit_code": 0, "node": "node-a"})
    assert gang.waits[0].result(timeout=5)["exit_code"] == 0  # the agent's answer, passed on


def test_a_hung_placement_state_read_holds_no_launch_or_teardown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group-state reads ran on the launch worker: one the GCS left hanging held every
    later creation and teardown behind it (a launch failed 'still queued', a given-up group
    stayed) until a head loss dropped the queue. Reads have a thread of their own."""
    from cortex.executors.ray import executor as exmod

    ex = executor(tmp_path)
    ex.pg_timeout_s = 0.2  # a launch queued 10 x this fails unmade
    ray = ScriptedRay(monkeypatch, ex)  # its agents never answer: the gangs stay placing
    reading, answer = threading.Event(), threading.Event()

    def table(pg: Any) -> dict[str, str]:
        reading.set()
        answer.wait(30)
        return {"state": "PENDING"}

    monkeypatch.setattr(exmod.ray.util, "placement_group_table", table)
    try:
        ex.launch(spec(50))
        end = time.monotonic() + 10
        while not reading.is_set() and time.monotonic() < end:
            assert ex.poll() == []
            time.sleep(0.01)
        assert reading.is_set()  # 50's read hangs from here on
        ex.launch(spec(51))
        got: list[ExitRecord] = []
        end = time.monotonic() + 10
        while ("teardown", 50, "ray-launch") not in ray.calls and time.monotonic() < end:
            got += ex.poll()
            time.sleep(0.01)
        assert ("create", 51, "ray-launch") in ray.calls  # created behind nothing
        assert ("teardown", 50, "ray-launch") in ray.calls  # 50, given up, is torn down
        assert not answer.is_set()
        assert [r.job_id for r in got] == [50]
        assert got[0].detail.startswith("placement group not created within 0.2 s")
    finally:
        answer.set()
    assert ex.drain(10)
