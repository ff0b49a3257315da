"""Burn-in as a diagnostic run, through the real local executor (real processes): a node whose
drain ends runs `python -m cortex.training.burnin` (or the configured command) pinned to it,
and returns only if it exits 0 in time; a failure or a timeout keeps it out with a strike and
an event naming the reason; a restart mid-run adopts the run, never runs it twice; with
burn-in off, the hold alone decides (the old behaviour)."""

from __future__ import annotations

import shlex
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN
from sqlalchemy import select

from cortex.control import models as m
from cortex.control.service import Service
from cortex.control.settings import Settings
from cortex.executors.local.executor import LocalExecutor

NODE = "node-test"
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
WAIT_S = 90.0  # generous: a loaded 2-core machine starts interpreters slowly


def _py(code: str) -> str:
    return shlex.join([sys.executable, "-c", textwrap.dedent(code)])


def _held_diagnostic(go: Path, ran: Path) -> str:
    """A diagnostic that marks `ran` when it starts, then waits for `go` and passes."""
    return _py(f"""
        import os, time
        open({str(ran)!r}, "a").write("x")
        while not os.path.exists({str(go)!r}):
            time.sleep(0.05)
    """)


def _service(url: str, home: Path, **kw: Any) -> Service:
    kw = {"burn_in": True, "burn_in_check_s": 0.2, **kw}
    settings = Settings(home=home, database_url=url, admin_token=ADMIN, **kw)
    return Service(
        settings,
        executor=LocalExecutor(home / "runs", grace_s=1.0, allow_same_user=True),
        inventory=LocalExecutor.discover(slots=2, gpus=False),
        node_name=NODE,
    )


def _drain(svc: Service, hold_s: float = 0.0) -> None:
    r = TestClient(svc.app).post(
        f"/v1/nodes/{NODE}/drain", json={"reason": "repaired PSU", "burn_in_s": hold_s},
        headers=ADMIN_H,
    )  # fmt: skip
    assert r.status_code == 200, r.text


def _tick_until(svc: Service, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        svc.loop.tick()
        time.sleep(0.05)


def _burn_ins(svc: Service) -> list[m.BurnIn]:
    with svc.sessions() as s:
        rows = s.scalars(select(m.BurnIn).order_by(m.BurnIn.id)).all()
        s.expunge_all()
        return list(rows)


def _events(svc: Service) -> list[str]:
    with svc.sessions() as s:
        return list(s.scalars(select(m.Event.message).order_by(m.Event.id)).all())


def _up(svc: Service) -> bool:
    return bool(svc.loop.mirror.state.node_up[0])


def _final(svc: Service) -> bool:
    return any(b.state not in ("launching", "running") for b in _burn_ins(svc))


@pytest.fixture
def make(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    made: list[Service] = []

    def build(**kw: Any) -> Service:
        made.append(_service(db_url, tmp_path / "home", **kw))
        return made[-1]

    yield build
    for svc in made:
        svc.close()


def test_a_node_that_passes_its_burn_in_returns(make: Callable[..., Service]) -> None:
    svc = make()
    _drain(svc)
    svc.loop.tick()  # the drain: out of service (empty); its hold (0 s) is over
    assert not _up(svc)
    _tick_until(svc, lambda: _final(svc), "the burn-in's verdict")
    [b] = _burn_ins(svc)
    assert (b.state, b.exit_code, b.node) == ("passed", 0, NODE)
    svc.loop.tick()
    assert _up(svc) and svc.loop.health.drains == {}
    # The built-in diagnostic ran, as job 0's attempt b.id, and said so.
    out, _ = svc.loop.executor.log_paths(0, b.id)
    assert "burn-in passed" in Path(out).read_text()
    ev = _events(svc)
    assert f"node {NODE}: burn-in {b.id} started (time limit 300 s)" in ev
    assert f"node {NODE} back in service after its burn-in" in ev


def test_a_failing_burn_in_keeps_the_node_out_with_a_strike(
    make: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service's environment holds a secret; the diagnostic runs in a job's environment.
    monkeypatch.setenv("CORTEX_PROBE_SECRET", "s3cret-value")
    code = """
        import os, sys
        print("service secret seen:", any("s3cret" in v for v in os.environ.values()))
        print("ECC: 3 uncorrectable errors on GPU 5", file=sys.stderr)
        sys.exit(3)
    """
    svc = make(burn_in_command=_py(code))
    _drain(svc)
    _tick_until(svc, lambda: _final(svc), "the burn-in's verdict")
    [b] = _burn_ins(svc)
    why = "exit 3: ECC: 3 uncorrectable errors on GPU 5"
    assert (b.state, b.exit_code, b.detail) == ("failed", 3, f"failed: {why}")
    for _ in range(3):
        svc.loop.tick()
    assert not _up(svc)  # kept out
    drain = svc.loop.health.drains[NODE]
    assert (drain.reason, drain.by, drain.return_at) == (f"burn-in failed: {why}", "burn-in", None)
    assert len(_burn_ins(svc)) == 1  # not retried: an admin undrains it
    with svc.sessions() as s:
        [f] = s.scalars(select(m.NodeFailure)).all()
        assert (f.node, f.strike, f.detail) == (NODE, True, "burn-in failed")
    assert f"node {NODE} drained (burn-in): burn-in failed: {why}" in _events(svc)
    out, _ = svc.loop.executor.log_paths(0, b.id)
    assert Path(out).read_text().strip() == "service secret seen: False"


def test_a_burn_in_past_its_time_limit_fails(make: Callable[..., Service]) -> None:
    svc = make(burn_in_command=_py("import time; time.sleep(120)"), burn_in_timeout_s=5)
    _drain(svc)
    _tick_until(svc, lambda: _final(svc), "the burn-in's verdict")
    [b] = _burn_ins(svc)
    assert (b.state, b.stopping) == ("failed", "timeout")
    assert b.detail == "failed: no verdict within its 5 s limit"
    assert svc.loop.health.drains[NODE].reason == "burn-in failed: no verdict within its 5 s limit"
    assert not _up(svc)


def test_undrained_by_hand_during_its_burn_in(make: Callable[..., Service]) -> None:
    svc = make(burn_in_command=_py("import time; time.sleep(120)"))
    _drain(svc)
    _tick_until(svc, lambda: any(b.state == "running" for b in _burn_ins(svc)), "the launch")
    r = TestClient(svc.app).post(f"/v1/nodes/{NODE}/undrain", headers=ADMIN_H)
    assert r.status_code == 200, r.text
    _tick_until(svc, lambda: _final(svc), "the burn-in's end")
    [b] = _burn_ins(svc)
    assert (b.state, b.stopping) == ("cancelled", "undrained")
    assert _up(svc)
    with svc.sessions() as s:
        assert s.scalars(select(m.NodeFailure)).all() == []  # no strike


@pytest.mark.parametrize("why", ["undrained", "timeout"])
def test_a_run_the_executor_no_longer_knows_ends_when_asked_to_stop(
    make: Callable[..., Service], tmp_path: Path, why: str
) -> None:
    # The executor lost the run (its terminate: "nothing to stop", and no exit will come): the
    # stop it was asked for ends the run on the next tick, as its exit would have, with the
    # reason. It stayed active (and its node in its burn-in) until a restart.
    go, ran = tmp_path / "go", tmp_path / "ran"
    limit = {"burn_in_timeout_s": 5} if why == "timeout" else {}
    svc = make(burn_in_command=_held_diagnostic(go, ran), **limit)
    try:
        _drain(svc)
        _tick_until(svc, lambda: any(b.state == "running" for b in _burn_ins(svc)), "the launch")
        [b] = _burn_ins(svc)
        svc.loop.executor._runs.pop((0, b.id))  # forgotten by the executor
        if why == "undrained":
            r = TestClient(svc.app).post(f"/v1/nodes/{NODE}/undrain", headers=ADMIN_H)
            assert r.status_code == 200, r.text
        _tick_until(svc, lambda: _burn_ins(svc)[0].stopping is not None, "the stop")
        svc.loop.tick()  # the next tick: no exit came
        [b] = _burn_ins(svc)
        lost = "the executor no longer knows the run"
        if why == "undrained":
            detail = f"the node was undrained ({lost})"
            assert (b.state, b.detail) == ("cancelled", f"cancelled: {detail}")
            assert _up(svc) and svc.loop.health.drains == {}
        else:
            detail = f"no verdict within its 5 s limit ({lost})"
            assert (b.state, b.detail) == ("failed", f"failed: {detail}")
            assert svc.loop.health.drains[NODE].reason == f"burn-in failed: {detail}"
            assert not _up(svc)
        assert b.ended_at is not None and svc.loop._burn_runs == {}
    finally:
        go.touch()  # the diagnostic's process ends


def test_a_failed_tick_keeps_the_end_of_a_run_the_executor_no_longer_knows(
    make: Callable[..., Service], tmp_path: Path
) -> None:
    # The tick that ends a forgotten run fails after its health step: its end rolls back, and
    # the next tick must end the run again. Before, the loop had already dropped it from memory,
    # so the row stayed running (its node held) until a restart.
    go, ran = tmp_path / "go", tmp_path / "ran"
    svc = make(burn_in_command=_held_diagnostic(go, ran))
    loop = svc.loop
    loop.on_error = None
    try:
        _drain(svc)
        _tick_until(svc, lambda: any(b.state == "running" for b in _burn_ins(svc)), "the launch")
        [b] = _burn_ins(svc)
        loop.executor._runs.pop((0, b.id))  # forgotten by the executor
        r = TestClient(svc.app).post(f"/v1/nodes/{NODE}/undrain", headers=ADMIN_H)
        assert r.status_code == 200, r.text
        _tick_until(svc, lambda: _burn_ins(svc)[0].stopping is not None, "the stop")
        real = loop._evacuate

        def fail_once(now: float) -> Any:
            loop._evacuate = real  # type: ignore[method-assign]
            raise RuntimeError("injected: the tick fails after its health step")

        loop._evacuate = fail_once  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="injected"):
            loop.tick()
        assert _burn_ins(svc)[0].state == "running"  # the end rolled back
        loop.tick()
        [b] = _burn_ins(svc)
        lost = "the executor no longer knows the run"
        assert (b.state, b.detail) == ("cancelled", f"cancelled: the node was undrained ({lost})")
        assert b.ended_at is not None and loop._burn_runs == {}
    finally:
        go.touch()  # the diagnostic's process ends


@pytest.mark.parametrize("handle_stored", [True, False])
def test_a_restart_mid_burn_in_adopts_it_and_runs_it_once(
    make: Callable[..., Service], tmp_path: Path, handle_stored: bool
) -> None:
    go, ran = tmp_path / "go", tmp_path / "ran"
    code = _held_diagnostic(go, ran)
    svc = make(burn_in_command=code)
    if not handle_stored:  # killed after the launch, before the handle's commit
        loop = svc.loop

        def launch_then_die() -> None:
            launches, loop._burn_launch = loop._burn_launch, []
            for _rid, spec in launches:
                loop.executor.launch(spec)

        loop._burn_in_act = launch_then_die  # type: ignore[method-assign]
    _drain(svc)
    _tick_until(svc, ran.exists, "the diagnostic to start")
    [b] = _burn_ins(svc)
    assert b.state == ("running" if handle_stored else "launching")
    svc.engine.dispose()  # the dead service: no close(), no poll()
    svc.release_database()  # its PostgreSQL lock ends with its connections, as at a death

    svc2 = make(burn_in_command=code)
    assert f"node {NODE}: burn-in {b.id} adopted after restart" in _events(svc2)
    go.touch()
    _tick_until(svc2, lambda: _final(svc2), "the adopted burn-in's verdict")
    [b2] = _burn_ins(svc2)
    assert (b2.id, b2.state) == (b.id, "passed")
    svc2.loop.tick()
    assert _up(svc2)
    assert ran.read_text() == "x"  # it ran once
    attempts = Path(svc2.settings.run_dir) / "jobs" / "0" / "attempts"
    assert sorted(p.name for p in attempts.iterdir()) == [str(b.id)]


def test_a_run_adopted_with_burn_in_now_off_keeps_the_node_out_until_its_verdict(
    make: Callable[..., Service], tmp_path: Path
) -> None:
    # Restarted with burn-in off while a diagnostic ran: the old code returned the node at the
    # next tick, so jobs could land on devices the diagnostic was still loading.
    go, ran = tmp_path / "go", tmp_path / "ran"
    code = _held_diagnostic(go, ran)
    svc = make(burn_in_command=code)
    _drain(svc)
    _tick_until(svc, ran.exists, "the diagnostic to start")
    svc.engine.dispose()
    svc.release_database()  # as at its death (the lock goes with its connection)

    svc2 = make(burn_in=False)
    [b] = _burn_ins(svc2)
    assert f"node {NODE}: burn-in {b.id} adopted after restart" in _events(svc2)
    for _ in range(3):
        svc2.loop.tick()
    assert not _up(svc2)
    go.touch()
    _tick_until(svc2, lambda: _final(svc2), "the adopted burn-in's verdict")
    assert _burn_ins(svc2)[0].state == "passed"
    svc2.loop.tick()
    assert _up(svc2)


def test_a_burn_in_lost_with_the_service_is_run_anew(make: Callable[..., Service]) -> None:
    svc = make(burn_in_command=_py("import time; time.sleep(120)"))
    _drain(svc)
    _tick_until(svc, lambda: any(b.state == "running" for b in _burn_ins(svc)), "the launch")
    [b] = _burn_ins(svc)
    svc.loop.executor.kill(svc.loop.handle_from_dict(b.handle))  # gone with the machine
    svc.engine.dispose()
    svc.release_database()  # as at its death (the lock goes with its connection)
    svc2 = make(burn_in_command=_py("pass"))
    _tick_until(svc2, lambda: any(x.state == "passed" for x in _burn_ins(svc2)), "a new run")
    lost, new = _burn_ins(svc2)
    assert (lost.id, lost.state, new.state) == (b.id, "lost", "passed")
    svc2.loop.tick()
    assert _up(svc2)


def test_burn_in_off_returns_the_node_when_its_hold_ends(db_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=db_url, admin_token=ADMIN)
    svc = Service(
        settings,
        executor=LocalExecutor(tmp_path / "runs", grace_s=1.0, allow_same_user=True),
        inventory=LocalExecutor.discover(slots=2, gpus=False),
        node_name=NODE,
    )
    try:
        _drain(svc)
        svc.loop.tick()
        svc.loop.tick()
        assert _up(svc) and _burn_ins(svc) == []
    finally:
        svc.close()


def test_a_tick_that_fails_after_starting_a_burn_in_launches_nothing_of_it(
    make: Callable[..., Service],
) -> None:
    """The tick's transaction rolls back its burn-in row; the next tick starts one afresh (no
    recovery wired here: the loop alone must not launch the rolled-back run or wait for it)."""
    svc = make()
    loop = svc.loop
    loop.on_error = None
    _drain(svc)
    loop.tick()  # the node goes out
    real = loop._evacuate

    def fail_once(now: float) -> Any:
        loop._evacuate = real  # type: ignore[method-assign]
        raise RuntimeError("injected: the tick fails after its health step")

    loop._evacuate = fail_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="injected"):
        loop.tick()
    assert _burn_ins(svc) == []  # rolled back
    _tick_until(svc, lambda: _final(svc), "the burn-in's verdict")
    [b] = _burn_ins(svc)
    assert b.state == "passed"
    attempts = Path(svc.settings.run_dir) / "jobs" / "0" / "attempts"
    assert sorted(p.name for p in attempts.iterdir()) == [str(b.id)]


def test_the_reason_is_the_last_printable_line_never_through_a_link(tmp_path: Path) -> None:
    from cortex.control.loop_burnin import last_line

    log = tmp_path / "stderr.log"
    log.write_bytes(b"x" * 10_000 + b"\nfirst\nGPU 3: \x1b[31mXid 79\x1b[0m fell off the bus\n\n")
    assert last_line(log) == "GPU 3: [31mXid 79[0m fell off the bus"  # ESC dropped
    secret = tmp_path / "secret"
    secret.write_text("the service's secret\n")
    link = tmp_path / "link.log"
    link.symlink_to(secret)
    assert last_line(link) == "" and last_line(tmp_path / "absent") == ""
