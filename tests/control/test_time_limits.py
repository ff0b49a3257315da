"""`time_limit_s` is enforced (the run is stopped past it and the job ends failed with the
reason, not retried), apart from the runtime estimate; a job with no estimate gets its time
limit, else its queue's default (`default_duration_s`). On a fake clock, fake executor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clienv import CliEnv
from fakeclock import FakeClock


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliEnv]:
    clock = FakeClock()
    e = CliEnv(
        db_url, tmp_path, monkeypatch, slots=2, clock=clock,
        default_duration_s={"*": 3600.0, "fsd": 120.0},
    )  # fmt: skip
    e.clock = clock  # type: ignore[attr-defined]
    yield e
    e.close()


def _submit(env: CliEnv, *args: str) -> int:
    code, out, err = env.run("submit", "--parsable", *args)
    assert code == 0, err
    return int(out)


def test_a_run_past_its_time_limit_is_stopped_and_fails(env: CliEnv) -> None:
    jid = _submit(env, "--time-limit-s", "60", "--duration-s", "30", "--", "sleep", "1000")
    env.svc.loop.tick()
    assert env.state(jid) == "running"
    env.svc.loop.tick()  # the loop sees it running: its clock starts at the launch
    env.clock.advance(59.5)  # type: ignore[attr-defined]
    env.svc.loop.tick()
    assert env.ex.terminated == []  # 59.5 s < 60 s
    env.clock.advance(1.0)  # type: ignore[attr-defined]
    env.svc.loop.tick()
    assert env.ex.terminated == [(jid, 1, "cancel")]  # SIGTERM, grace, SIGKILL
    env.ex.finish(jid, "cancelled", -15)
    env.svc.loop.tick()
    got = env.admin.get(f"/v1/jobs/{jid}").json()
    # Failed for good although max_retries=1 left a retry: the limit is the job's budget.
    assert (got["state"], got["reason"], got["attempt"]) == (
        "failed", "failed: time limit of 60 s reached", 1,
    )  # fmt: skip
    env.svc.loop.tick()
    assert env.state(jid) == "failed" and len(env.ex.launched) == 1
    kinds = [e["message"] for e in env.admin.get(f"/v1/events?job_id={jid}").json()]
    assert "time limit of 60 s reached: stopping" in kinds


def test_a_run_past_its_time_limit_fails_for_good_though_it_checkpointed(env: CliEnv) -> None:
    """A checkpoint after the run's start resets the job's failures in a row (drive/runs.py
    judge_exit), but not for a time limit: the limit is the job's budget, not a failure to
    retry (loop_limits.py marks the exit no_retry)."""
    from cortex.control.progress import Progress

    jid = _submit(env, "--time-limit-s", "60", "--duration-s", "30", "--", "sleep", "1000")
    env.svc.loop.tick()
    env.svc.loop.tick()
    clock = env.clock  # type: ignore[attr-defined]
    clock.advance(30)
    ckpt = Progress(attempt=1, step=10, checkpoint_step=10, checkpoint_at=clock.time())
    assert env.svc.loop.progress.post(jid, ckpt, clock.monotonic()) == 0.0
    assert env.svc.loop.progress.known_checkpoint_at(jid) == clock.time()
    clock.advance(31)
    env.svc.loop.tick()
    assert env.ex.terminated == [(jid, 1, "cancel")]
    env.ex.finish(jid, "cancelled", -15)
    env.svc.loop.tick()
    got = env.admin.get(f"/v1/jobs/{jid}").json()
    assert (got["state"], got["reason"], got["failures"]) == (
        "failed", "failed: time limit of 60 s reached", 1,
    )  # fmt: skip


def test_a_job_within_its_limit_is_left_alone(env: CliEnv) -> None:
    jid = _submit(env, "--time-limit-s", "60", "--", "sleep", "1")
    env.svc.loop.tick()
    env.svc.loop.tick()
    env.clock.advance(30)  # type: ignore[attr-defined]
    env.ex.finish(jid)
    env.svc.loop.tick()
    env.clock.advance(100)  # type: ignore[attr-defined]
    env.svc.loop.tick()
    assert env.state(jid) == "completed" and env.ex.terminated == []


def _spec_duration(env: CliEnv, jid: int) -> float:
    from cortex.control import models as m

    with env.svc.sessions() as s:
        row = s.get(m.Job, jid)
        assert row is not None
        return float(row.spec["duration_s"])


def test_the_estimate_defaults_to_the_time_limit_then_the_queue(env: CliEnv) -> None:
    assert _spec_duration(env, _submit(env, "--", "ls")) == 120.0  # fsd's default
    assert _spec_duration(env, _submit(env, "--time-limit-s", "45", "--", "ls")) == 45.0
    got = _spec_duration(env, _submit(env, "--duration-s", "7", "--time-limit-s", "45", "--", "ls"))
    assert got == 7.0  # the estimate given wins; the limit stays a limit
    env.admin.post("/v1/tokens", json={"team": "red"})
    r = env.admin.post("/v1/jobs", json={"team": "red", "name": "q", "gpus": 1, "command": ["ls"]})
    assert r.status_code == 201 and _spec_duration(env, r.json()["id"]) == 3600.0  # "*"


@pytest.mark.parametrize("bad", [0, -1, 1e10, "60", [60], True, None])
def test_bad_time_limits_are_422(env: CliEnv, bad: object) -> None:
    body = {"name": "x", "gpus": 1, "command": ["ls"], "time_limit_s": bad}
    r = env.client.post("/v1/jobs", json=body)
    if bad is None:
        assert r.status_code == 201  # null: no limit
        return
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "time_limit_s"]


def test_a_run_that_completes_in_its_grace_period_is_completed(env: CliEnv) -> None:
    jid = _submit(env, "--time-limit-s", "10", "--", "sleep", "1000")
    env.svc.loop.tick()
    env.svc.loop.tick()
    env.clock.advance(11)  # type: ignore[attr-defined]
    env.svc.loop.tick()
    assert env.ex.terminated == [(jid, 1, "cancel")]
    env.ex.finish(jid, "completed", 0)  # it wrote its last checkpoint and exited 0 in time
    env.svc.loop.tick()
    assert env.state(jid) == "completed"


def test_a_time_limit_stop_still_fails_the_job_after_a_restart(
    env: CliEnv, db_url: str, tmp_path: Path
) -> None:
    """The service is killed after it sent the time limit's SIGTERM (committed as the row's
    `stopping`) and before the run's exit: the new service knows nothing of the stop it sent
    (loop_limits.py's `_timed_out` lived in memory), adopts the run, and its exit, a stop
    outcome ("cancelled"), comes in the first tick, before the limits are looked at. The
    job never asked to be cancelled: it fails for its time limit, as without the restart
    (before: it ended cancelled, its reason `cancelled`)."""
    from fastapi.testclient import TestClient
    from helpers import fake_service

    jid = _submit(env, "--time-limit-s", "60", "--duration-s", "30", "--", "sleep", "1000")
    env.svc.loop.tick()
    env.svc.loop.tick()
    env.clock.advance(61)  # type: ignore[attr-defined]
    env.svc.loop.tick()
    assert env.ex.terminated == [(jid, 1, "cancel")]
    env.svc.close()
    ex = env.ex
    ex.adoptable.add((jid, 1))
    svc = fake_service(db_url, tmp_path, slots=2, executor=ex, clock=env.clock)  # type: ignore[attr-defined]
    try:
        ex.finish(jid, "cancelled", -15)
        svc.loop.tick()
        got = TestClient(svc.app, headers=env.admin.headers).get(f"/v1/jobs/{jid}").json()
        assert (got["state"], got["reason"], got["failures"]) == (
            "failed", "failed: time limit of 60 s reached", 1,
        )  # fmt: skip
    finally:
        svc.close()
        env.svc = svc  # closed once more by the fixture: closing twice must be harmless
