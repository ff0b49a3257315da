"""A checkpoint resets a job's failures in a row only when it falls inside the run judged
(drive/runs.py kept_work): one stamped after the run's end (an API report's or a metrics
line's up to FUTURE_SLACK_S ahead of the service's clock) stays the newest checkpoint known and
reset the count at every later failure, a job retried without end. An API report dated further
ahead is refused (422): taken, it hid every real checkpoint after it. On a fake clock, fake
executor (max_retries 1, no backoff: tests/control/helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clienv import CliEnv
from fakeclock import FakeClock
from fakeexec import FakeExecutor, FakeExit
from fastapi.testclient import TestClient
from helpers import fake_service
from sqlalchemy import select

from cortex.control import models as m
from cortex.control.progress import FUTURE_SLACK_S


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliEnv]:
    clock = FakeClock()
    e = CliEnv(db_url, tmp_path, monkeypatch, slots=1, clock=clock)
    e.clock = clock  # type: ignore[attr-defined]
    yield e
    e.close()


def _submit(env: CliEnv) -> int:
    code, out, err = env.run("submit", "--parsable", "--duration-s", "600", "--", "sleep", "1")
    assert code == 0, err
    return int(out)


def test_a_checkpoint_stamped_in_the_future_does_not_reset_the_count(env: CliEnv) -> None:
    jid = _submit(env)
    env.svc.loop.tick()
    assert env.state(jid) == "running"
    # The team's tooling reports a checkpoint ahead of the service's clock, by as much as the
    # API takes (FUTURE_SLACK_S of skew; a metrics line may be as far ahead).
    ahead = env.clock.time() + FUTURE_SLACK_S  # type: ignore[attr-defined]
    r = env.client.post(
        f"/v1/jobs/{jid}/progress", json={"attempt": 1, "step": 5, "checkpoint_at": ahead}
    )
    assert r.status_code == 202, r.text
    for _ in range(4):
        env.clock.advance(10)  # type: ignore[attr-defined]
        env.ex.finish(jid, "failed", 1)
        env.svc.loop.tick()
        if env.state(jid) == "failed":
            break
        env.svc.loop.tick()
        assert env.state(jid) == "running"
    got = env.admin.get(f"/v1/jobs/{jid}").json()
    reasons = [h["reason"] for h in got["history"] if h["dst"] == "requeued"]
    # Attempt 1 kept nothing the report can prove (its checkpoint is after its end): retry 1
    # of 1, and attempt 2's failure is the second in a row. Before, each was retry 1 again.
    assert [r.split(";")[0] for r in reasons] == ["retry 1 of 1"]
    assert (got["state"], got["attempt"], got["failures"]) == ("failed", 2, 2)


def test_a_report_dated_past_the_skew_is_refused_and_later_checkpoints_still_count(
    env: CliEnv,
) -> None:
    """A report dated past the service's clock plus FUTURE_SLACK_S is a 422 naming
    `checkpoint_at`, and changes nothing: the checkpoint already reported stays (the progress,
    the job row). It used to be taken (the schema's bound is 1e11): as the newest checkpoint
    known, here and on the job row, it hid the attempt's real checkpoints after it, so a run
    that kept work counted as a failure in a row and the job failed for good (max_retries 1)."""
    clock: FakeClock = env.clock  # type: ignore[attr-defined]
    jid = _submit(env)
    env.svc.loop.tick()
    clock.advance(10)
    kept = clock.time()
    r = env.client.post(
        f"/v1/jobs/{jid}/progress", json={"attempt": 1, "step": 3, "checkpoint_at": kept}
    )
    assert r.status_code == 202, r.text
    clock.advance(10)
    far = clock.time() + FUTURE_SLACK_S + 1
    r = env.client.post(
        f"/v1/jobs/{jid}/progress", json={"attempt": 1, "step": 5, "checkpoint_at": far}
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "checkpoint_at"]
    got = env.admin.get(f"/v1/jobs/{jid}").json()["progress"]
    assert (got["step"], got["checkpoint_at"]) == (3, kept)
    with env.svc.sessions() as s:
        stored = s.scalar(select(m.Job.checkpoint_reported_at).where(m.Job.id == jid))
    assert stored == kept
    assert env.svc.loop.progress.known_checkpoint_at(jid) == kept
    env.ex.finish(jid, "failed", 1)  # attempt 1 kept work: retry 1 of 1
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.state(jid) == "running"
    # Attempt 2 writes a real checkpoint (later than attempt 1's, long before `far`), fails.
    clock.advance(10)
    r = env.client.post(
        f"/v1/jobs/{jid}/progress", json={"attempt": 2, "step": 9, "checkpoint_at": clock.time()}
    )
    assert r.status_code == 202, r.text
    clock.advance(10)
    env.ex.finish(jid, "failed", 1)
    env.svc.loop.tick()
    env.svc.loop.tick()
    got = env.admin.get(f"/v1/jobs/{jid}").json()
    reasons = [h["reason"] for h in got["history"] if h["dst"] == "requeued"]
    assert [r.split(";")[0] for r in reasons] == ["retry 1 of 1"] * 2
    assert (got["state"], got["attempt"], got["failures"]) == ("running", 3, 2)


def test_a_checkpoint_within_the_run_still_resets_the_count(env: CliEnv) -> None:
    """The reset the bound must keep: a report of a checkpoint written during the run."""
    jid = _submit(env)
    env.svc.loop.tick()
    for attempt in (1, 2, 3):
        env.clock.advance(10)  # type: ignore[attr-defined]
        at = env.clock.time()  # type: ignore[attr-defined]
        r = env.client.post(
            f"/v1/jobs/{jid}/progress",
            json={"attempt": attempt, "step": attempt, "checkpoint_at": at},
        )
        assert r.status_code == 202, r.text
        env.clock.advance(10)  # type: ignore[attr-defined]
        env.ex.finish(jid, "failed", 1)
        env.svc.loop.tick()
        env.svc.loop.tick()
        assert env.state(jid) == "running"
    got = env.admin.get(f"/v1/jobs/{jid}").json()
    reasons = [h["reason"] for h in got["history"] if h["dst"] == "requeued"]
    assert [r.split(";")[0] for r in reasons] == ["retry 1 of 1"] * 3
    assert (got["attempt"], got["failures"]) == (4, 3)


def test_a_checkpoint_reported_before_a_restart_still_resets_the_count(
    env: CliEnv, db_url: str, tmp_path: Path
) -> None:
    """An API report is the only sign of progress a job on an executor without a metrics file
    gives. It used to live in memory only: after a restart the adopted attempt's failure did
    not see the checkpoint it had reported, counted as the second failure in a row, and failed
    the job for good (max_retries 1). The job row keeps it (`checkpoint_reported_at`)."""
    clock: FakeClock = env.clock  # type: ignore[attr-defined]
    jid = _submit(env)
    env.svc.loop.tick()
    clock.advance(10)
    env.ex.finish(jid, "failed", 1)  # attempt 1 keeps nothing: retry 1 of 1
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.state(jid) == "running"
    clock.advance(10)
    r = env.client.post(
        f"/v1/jobs/{jid}/progress",
        json={"attempt": 2, "step": 7, "checkpoint_at": clock.time()},
    )
    assert r.status_code == 202, r.text
    clock.advance(10)
    env.svc.close()  # the control plane goes; attempt 2 runs on
    ex = FakeExecutor(tmp_path / "runs2")
    ex.adoptable.add((jid, 2))
    svc = fake_service(db_url, tmp_path, slots=1, executor=ex, clock=clock)
    env.svc = svc  # closed by the fixture
    admin = TestClient(svc.app, headers=env.admin.headers)
    svc.loop.tick()
    assert admin.get(f"/v1/jobs/{jid}").json()["state"] == "running"  # adopted
    clock.advance(10)
    ex.exits.append(FakeExit(jid, 2, "failed", 1))
    svc.loop.tick()
    svc.loop.tick()
    got = admin.get(f"/v1/jobs/{jid}").json()
    reasons = [h["reason"] for h in got["history"] if h["dst"] == "requeued"]
    # Attempt 2 kept work before the restart: its failure is retry 1 again, not the job's end.
    assert [r.split(";")[0] for r in reasons] == ["retry 1 of 1"] * 2
    assert (got["state"], got["attempt"], got["failures"]) == ("running", 3, 2)


def test_a_future_checkpoint_stored_before_the_bound_is_not_restored_and_is_replaced(
    env: CliEnv, db_url: str, tmp_path: Path
) -> None:
    """A job row may hold a reported checkpoint far in the future, taken before the API refused
    those. Restored after a restart, it was the newest checkpoint known and hid the attempt's
    real one: its failure counted in a row and failed the job (max_retries 1); and the row kept
    it, as a later report was never newer. Now recovery leaves it unrestored (the row keeps
    it) and the next report replaces it."""
    clock: FakeClock = env.clock  # type: ignore[attr-defined]
    jid = _submit(env)
    env.svc.loop.tick()
    clock.advance(10)
    env.ex.finish(jid, "failed", 1)  # attempt 1 keeps nothing: retry 1 of 1
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.state(jid) == "running"
    with env.svc.sessions.begin() as s:
        row = s.get(m.Job, jid)
        assert row is not None
        row.checkpoint_reported_at = 9.9e10
    env.svc.close()
    ex = FakeExecutor(tmp_path / "runs2")
    ex.adoptable.add((jid, 2))
    svc = fake_service(db_url, tmp_path, slots=1, executor=ex, clock=clock)
    env.svc = svc  # closed by the fixture
    client = TestClient(svc.app, headers=env.client.headers)
    admin = TestClient(svc.app, headers=env.admin.headers)
    svc.loop.tick()
    assert admin.get(f"/v1/jobs/{jid}").json()["state"] == "running"  # adopted
    clock.advance(10)
    at = clock.time()
    r = client.post(f"/v1/jobs/{jid}/progress", json={"attempt": 2, "step": 7, "checkpoint_at": at})
    assert r.status_code == 202, r.text
    with svc.sessions() as s:
        assert s.scalar(select(m.Job.checkpoint_reported_at).where(m.Job.id == jid)) == at
    clock.advance(10)
    ex.exits.append(FakeExit(jid, 2, "failed", 1))
    svc.loop.tick()
    svc.loop.tick()
    got = admin.get(f"/v1/jobs/{jid}").json()
    reasons = [h["reason"] for h in got["history"] if h["dst"] == "requeued"]
    assert [r.split(";")[0] for r in reasons] == ["retry 1 of 1"] * 2
    assert (got["state"], got["attempt"], got["failures"]) == ("running", 3, 2)


def test_self_requeues_are_counted_in_a_row_without_a_checkpoint(env: CliEnv) -> None:
    """An unasked exit 75 after a checkpoint is the job protocol at work (the job yields with
    its work saved): like a failure, it is counted in a row without progress (drive/runs.py
    judge_exit). With a limit of 2, three self-requeues that each kept work are each the 1st;
    then two that keep nothing are the 2nd and the 3rd, which is over the limit. Before,
    every self-requeue of the job's life counted: the 3rd failed the job."""
    env.svc.loop.max_exit75_requeues = 2
    jid = _submit(env)
    env.svc.loop.tick()
    for attempt in (1, 2, 3, 4, 5):
        env.clock.advance(10)  # type: ignore[attr-defined]
        if attempt <= 3:
            at = env.clock.time()  # type: ignore[attr-defined]
            r = env.client.post(
                f"/v1/jobs/{jid}/progress",
                json={"attempt": attempt, "step": attempt, "checkpoint_at": at},
            )
            assert r.status_code == 202, r.text
        env.clock.advance(10)  # type: ignore[attr-defined]
        env.ex.finish(jid, "preempted", 75)
        env.svc.loop.tick()
        env.svc.loop.tick()
        if env.state(jid) == "failed":
            break
    got = env.admin.get(f"/v1/jobs/{jid}").json()
    reasons = [h["reason"] for h in got["history"] if h["dst"] == "requeued"]
    assert [r.split(";")[0] for r in reasons] == [
        "exited 75 without a stop request (1)", "exited 75 without a stop request (1)",
        "exited 75 without a stop request (1)", "exited 75 without a stop request (2)",
    ]  # fmt: skip
    assert (got["state"], got["attempt"], got["failures"]) == ("failed", 5, 0)
    assert "3 times in a row without a checkpoint; limit 2" in got["reason"]
