"""The Ray executor's launches off the caller's thread (launching.py, worker.py), over scripted
Ray calls, no cluster: launch() returns before Ray is asked anything, the creation's outcome
comes through poll() (started, or failed with the reason), stops that arrive while a launch
is queued or being created are honoured, and teardowns run after the creation they undo."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from scripted_ray import ScriptedRay, _thread, executor, polled, spec

from cortex.executors.ray.executor import RayExecutor
from cortex.executors.spec import ExitRecord


def test_launch_returns_before_ray_is_asked_and_the_worker_creates_the_gang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ray = ScriptedRay(monkeypatch, ex)
    ray.hold.add(1)
    h = ex.launch(spec(1))  # returns while the placement group's creation is held
    assert ray.entered.wait(10)
    # The handle is durable before anything exists on Ray (what a restart finds).
    assert ex.find_run(1, 1) == h
    assert ex._gangs[(1, 1)].phase == "launching" and ex.poll() == []
    ray.release.set()
    assert ex.drain(10)
    assert ex.poll() == []
    assert ex._gangs[(1, 1)].phase == "placing"
    # Only the worker called Ray (the old launch() called it on the caller's thread).
    assert ray.calls == [("create", 1, "ray-launch")]


def test_a_launch_that_fails_on_ray_is_reported_failed_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ray = ScriptedRay(monkeypatch, ex)
    ray.fail[2] = "bundle_label_selector: bad label"
    ex.launch(spec(2))
    (rec,) = polled(ex)
    assert (rec.job_id, rec.attempt, rec.outcome, rec.exit_code) == (2, 1, "failed", None)
    assert rec.detail == "launch failed: bundle_label_selector: bad label"
    assert ex.drain(10)
    # What the creation may have made is removed on the worker before the failure is
    # reported, and once more from poll() (by name: a no-op if nothing is left).
    assert ray.calls == [
        ("create", 2, "ray-launch"),
        ("teardown", 2, "ray-launch"),
        ("teardown", 2, "ray-launch"),
    ]
    assert ex._gangs == {}


def test_a_cancel_while_the_launch_is_queued_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ray = ScriptedRay(monkeypatch, ex)
    ray.hold.add(1)
    ex.launch(spec(1))
    assert ray.entered.wait(10)  # the worker is busy with job 1: job 3 waits in its queue
    ex.launch(spec(3))
    assert ex.terminate(3, 1, "cancel") is True
    ray.release.set()
    (rec,) = polled(ex)
    assert (rec.job_id, rec.outcome, rec.exit_code) == (3, "cancelled", None)
    assert rec.detail == "cancel requested; stopped before the job started"
    assert ex.drain(10)
    assert ("create", 3, "ray-launch") not in ray.calls


def test_a_preempt_while_the_gang_is_being_created_tears_it_down_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ray = ScriptedRay(monkeypatch, ex)
    ray.hold.add(4)
    ex.launch(spec(4))
    assert ray.entered.wait(10)  # inside the placement group's creation
    assert ex.terminate(4, 1, "preempt") is True
    assert ex.poll() == []  # not reported while Ray may still be making it
    ray.release.set()
    (rec,) = polled(ex)
    # Preempted before any rank ran: the loop requeues it (no exit code, nothing to resume).
    assert (rec.job_id, rec.outcome, rec.exit_code) == (4, "preempted", None)
    assert rec.detail == "preempt requested; stopped before the job started"
    assert ex.drain(10)
    # Undone by the creation itself once it returns, and again (by name: a no-op) from poll().
    assert ray.calls == [
        ("create", 4, "ray-launch"),
        ("teardown", 4, "ray-launch"),
        ("teardown", 4, "ray-launch"),
    ]


def test_a_kill_while_launching_removes_what_the_creation_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ray = ScriptedRay(monkeypatch, ex)
    ray.hold.add(5)
    h = ex.launch(spec(5))
    assert ray.entered.wait(10)
    ex.kill(h)
    ray.release.set()
    assert ex.drain(10)
    assert ex.poll() == []  # a kill reports nothing
    # Undone by the creation itself, then by the kill's teardown (one thread, in order).
    assert ray.calls == [
        ("create", 5, "ray-launch"),
        ("teardown", 5, "ray-launch"),
        ("teardown", 5, "ray-launch"),
    ]


def test_a_launch_ray_does_not_answer_fails_in_time_and_is_undone_once_it_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ex.pg_timeout_s = 0.2
    ray = ScriptedRay(monkeypatch, ex)
    ray.hold.add(8)
    ex.launch(spec(8))
    assert ray.entered.wait(10)  # the GCS call hangs
    (rec,) = polled(ex)
    assert (rec.job_id, rec.outcome) == (8, "failed")
    assert rec.detail == "launch failed: Ray did not answer within 0.2 s"
    ray.release.set()
    assert ex.drain(10)
    # The creation, once Ray answered, undid itself; the teardown queued behind it again.
    assert ray.calls == [
        ("create", 8, "ray-launch"),
        ("teardown", 8, "ray-launch"),
        ("teardown", 8, "ray-launch"),
    ]
    assert ex.poll() == []


def test_a_launch_waiting_in_the_queue_is_not_timed_only_its_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ex.pg_timeout_s = 1.0  # a queued launch is failed only after 10 x 1 s: margin enough
    ray = ScriptedRay(monkeypatch, ex)
    ray.hold.add(9)
    ex.launch(spec(9))
    assert ray.entered.wait(10)
    ex.launch(spec(10))  # queued behind job 9's creation, which hangs
    (rec,) = polled(ex)
    assert (rec.job_id, rec.detail) == (9, "launch failed: Ray did not answer within 1 s")
    time.sleep(0.2)  # job 10 has now waited longer than the timeout (1 s), in the queue
    assert ex.poll() == []
    ray.release.set()
    assert ex.drain(10)
    assert ex.poll() == [] and ex._gangs[(10, 1)].phase == "placing"  # created in time


def test_a_launch_queued_behind_a_stuck_call_fails_and_is_never_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = executor(tmp_path)
    ex.pg_timeout_s = 0.05  # queued: failed after 10 x 0.05 = 0.5 s
    ray = ScriptedRay(monkeypatch, ex)
    ray.hold.add(11)
    ex.launch(spec(11))
    assert ray.entered.wait(10)
    ex.launch(spec(12))
    got: list[ExitRecord] = []
    end = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < end:
        got += ex.poll()
        time.sleep(0.01)
    by_job = {r.job_id: r.detail for r in got}
    assert by_job[11] == "launch failed: Ray did not answer within 0.05 s"
    assert by_job[12].startswith("launch failed: still queued after")
    ray.release.set()
    assert ex.drain(10)
    assert ("create", 12, "ray-launch") not in ray.calls  # its turn came: nothing made


def test_inline_calls_block_in_launch_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = RayExecutor(tmp_path, None, connect=False, inline_calls=True)
    ex.connected = True
    ray = ScriptedRay(monkeypatch, ex)
    ex.launch(spec(6))
    assert ray.calls == [("create", 6, threading.current_thread().name)]


def test_poll_asks_ray_nothing_for_running_gangs_and_never_probes_the_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cortex.executors.ray import executor as exmod
    from cortex.executors.ray import headloss

    ex = executor(tmp_path)
    ex.address = "127.0.0.1:1"  # a head to probe
    ray = ScriptedRay(monkeypatch, ex)
    probes: list[str] = []
    monkeypatch.setattr(headloss, "probe", lambda *a, **k: probes.append(_thread()))

    def no_call(*a: Any, **k: Any) -> Any:
        raise AssertionError("the tick called into Ray")

    monkeypatch.setattr(exmod.ray, "wait", no_call)
    monkeypatch.setattr(exmod.ray, "get", no_call)
    ex.launch(spec(7))
    assert ex.drain(10)
    ex.poll()
    gang = ex._gangs[(7, 1)]
    # As _starting leaves a gang: each agent's start() and wait() as Futures Ray completes.
    gang.phase = "running"
    gang.started = {0: Future(), 1: Future()}
    gang.waits = {0: Future(), 1: Future()}
    for i in (0, 1):
        gang.started[i].set_result(None)
    assert ex.poll() == [] and ex.is_running(7, 1)
    for i in (0, 1):
        gang.waits[i].set_result({"index": i, "exit_code": 0, "node": f"node-{i}"})
    (rec,) = ex.poll()
    assert (rec.job_id, rec.outcome, rec.exit_code) == (7, "completed", 0)
    assert ex.drain(10)
    assert ray.calls[-1] == ("teardown", 7, "ray-launch")
    end = time.monotonic() + 10
    while not probes and time.monotonic() < end:
        time.sleep(0.01)
    assert probes and set(probes) == {"ray-head"}  # the watcher's, never the tick's


def test_a_head_loss_keeps_the_teardowns_it_drops_for_the_reconnection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding: the head's loss dropped every queued call, teardowns of gangs already
    ended or killed included, and nothing redid them: with GCS fault tolerance their groups
    and agents kept their GPUs. They join the orphans torn down at reconnection."""
    from cortex.executors.ray import headloss

    monkeypatch.setattr(headloss, "_shutdown", lambda: None)  # no driver to shut down
    ex = executor(tmp_path)
    ray = ScriptedRay(monkeypatch, ex)
    ray.hold.add(21)
    ex.launch(spec(21))
    assert ray.entered.wait(10)  # the worker is busy creating 21
    h22 = ex.launch(spec(22))  # queued behind it
    ex.kill(h22)  # its teardown is queued too
    done = threading.Event()
    drained: list[bool] = []
    t = threading.Thread(target=lambda: (drained.append(ex.drain(10)), done.set()))
    t.start()
    end = time.monotonic() + 10
    while ex._worker.pending() < 4 and time.monotonic() < end:  # create 21, 22, teardown, drain
        time.sleep(0.01)
    ex._head_lost("test")
    assert done.wait(10) and drained == [False]  # its marker was dropped: False, not a raise
    assert [h.job_id for h in ex._orphans].count(22) == 1
    ray.release.set()
    # The creation of 21, abandoned by the loss, undoes itself on the worker once it returns.
    # Waited for here: after the test its teardown would be Ray's real one, on no cluster.
    assert ex.drain(10)
    assert ("teardown", 21, "ray-launch") in ray.calls


def test_a_head_down_verdict_left_from_an_old_blip_is_probed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding: the watcher's verdict, set during a blip while no gang ran, was acted on
    whenever gangs next ran, hours later: every gang failed and the driver was shut down."""
    from cortex.executors.ray import headloss

    ex = executor(tmp_path)
    monkeypatch.setattr(headloss, "probe", lambda *a, **k: None)  # the head answers now
    ex._head_down = (ex._head_gen, "refused", time.monotonic() - 3600.0)
    assert ex._head_verdict() is None
    ex._head_down = (ex._head_gen, "refused", time.monotonic())
    assert ex._head_verdict() == "refused"  # a fresh one still counts


def test_a_ray_call_without_a_driver_fails_instead_of_starting_a_local_cluster() -> None:
    """A teardown that outlived its test's scripted Ray once called Ray's real get_actor on no
    cluster: Ray started a private local cluster inside pytest, and ended the whole run with
    os._exit(1) a minute after that cluster went. Importing the executor turns that off, in
    the control plane as in tests. A fresh interpreter: Ray reads the setting at its import."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_AUTO_CONNECT"}
    code = (
        "import cortex.executors.ray.executor, ray\n"
        "try:\n"
        "    ray.get_actor('cortex-1-1-n0', namespace='cortex')\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
        "print('initialized', ray.is_initialized())\n"
    )
    argv = [sys.executable, "-c", code]
    out = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "RaySystemError" in out.stdout and "Ray has not been started" in out.stdout, out.stdout
    assert "initialized False" in out.stdout
