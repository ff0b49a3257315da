"""Progress, the checkpoint interval and preemption records through the service (fake executor,
a clock the test moves): POST /v1/jobs/{id}/progress with its bounds, attempts, rate limit and
team isolation; the metrics file read as progress; CORTEX_CHECKPOINT_INTERVAL_S in the launch
env; a preemption recorded on its victim with the work at stake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock
from fakeexec import FakeExecutor, FakeExit
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class MetricsExecutor(FakeExecutor):
    """The fake executor with the local executor's per-job metrics file."""

    def metrics_file(self, job_id: int) -> Path:
        return self.root / f"metrics-{job_id}.jsonl"


class Env:
    def __init__(self, url: str, home: Path) -> None:
        self.url, self.home = url, home
        self.clock = FakeClock()
        self.ex = MetricsExecutor(home / "runs")
        self.ex.root.mkdir(parents=True)
        self.svc = fake_service(url, home, slots=4, executor=self.ex, clock=self.clock)
        self.client = TestClient(self.svc.app)
        self.h = self.token("fsd")
        self.red = self.token("red")
        self.svc.loop.tick()

    def token(self, team: str) -> dict[str, str]:
        r = self.client.post("/v1/tokens", json={"team": team}, headers=ADMIN_H)
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def submit(self, **kw: object) -> int:
        r = self.client.post("/v1/jobs", json=job_body(**kw), headers=self.h)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def job(self, job_id: int) -> dict:
        return self.client.get(f"/v1/jobs/{job_id}", headers=self.h).json()

    def report(self, job_id: int, h: dict[str, str] | None = None, **body: object) -> Any:
        return self.client.post(f"/v1/jobs/{job_id}/progress", json=body, headers=h or self.h)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def test_a_report_for_the_current_attempt_shows_on_the_job(env: Env) -> None:
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    r = env.report(a, attempt=1, step=120, loss=0.75, samples_per_s=33.5, checkpoint_step=100)
    assert r.status_code == 202, r.text
    p = env.job(a)["progress"]
    assert (p["attempt"], p["step"], p["loss"], p["samples_per_s"]) == (1, 120, 0.75, 33.5)
    assert (p["checkpoint_step"], p["source"]) == (100, "api")
    assert p["reported_at"] == env.clock.time()


def test_reports_are_rate_limited_per_job(env: Env) -> None:
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    assert env.report(a, attempt=1, step=1).status_code == 202
    again = env.report(a, attempt=1, step=2)
    assert again.status_code == 429 and again.headers["retry-after"] == "1"
    assert env.job(a)["progress"]["step"] == 1


def test_a_report_of_an_earlier_attempt_is_refused_by_name(env: Env) -> None:
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    env.ex.finish(a, "failed", 1)
    env.svc.loop.tick()  # requeued (no delay in these tests)
    env.svc.loop.tick()  # attempt 2 runs
    assert env.job(a)["attempt"] == 2
    r = env.report(a, attempt=1, step=5)
    assert r.status_code == 409
    assert r.json()["detail"][0]["loc"] == ["body", "attempt"]
    assert env.job(a)["progress"] is None


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"attempt": 1, "step": -1}, ["body", "step"]),
        ({"attempt": 1, "step": 2**53 + 1}, ["body", "step"]),
        ({"attempt": 1, "step": True}, ["body", "step"]),
        ({"attempt": 0, "step": 1}, ["body", "attempt"]),
        ({"attempt": 1, "step": 1, "loss": 1e31}, ["body", "loss"]),
        ({"attempt": 1, "step": 1, "samples_per_s": -1}, ["body", "samples_per_s"]),
        ({"attempt": 1, "step": 1, "checkpoint_at": 1e12}, ["body", "checkpoint_at"]),
        # Past the service's clock plus its skew allowance (api/progress.py).
        ({"attempt": 1, "step": 1, "checkpoint_at": 9.9e10}, ["body", "checkpoint_at"]),
        ({"attempt": 1, "step": 1, "token": "x"}, ["body", "token"]),
        ({"attempt": 1}, ["body", "step"]),
    ],
)
def test_bad_reports_are_422_naming_the_field(env: Env, body: dict, loc: list) -> None:
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    r = env.report(a, **body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc


def test_a_nan_loss_is_refused(env: Env) -> None:
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    r = env.client.post(
        f"/v1/jobs/{a}/progress",
        content=b'{"attempt": 1, "step": 1, "loss": NaN}',
        headers={**env.h, "Content-Type": "application/json"},
    )
    assert r.status_code == 422


def test_another_teams_job_is_a_404_worded_as_missing(env: Env) -> None:
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    theirs = env.report(a, env.red, attempt=1, step=1)
    missing = env.report(999999, env.red, attempt=1, step=1)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"] == f"job {a} not found"
    assert env.job(a)["progress"] is None  # nothing was taken
    assert env.report(a, ADMIN_H, attempt=1, step=1).status_code == 202


def test_the_metrics_file_is_the_jobs_progress(env: Env) -> None:
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    t = env.clock.time()
    env.ex.metrics_file(a).write_text(
        f'{{"ts": {t - 500}, "attempt": 0, "step": 999, "loss": 9.0}}\n'  # no attempt 0 ran
        f'{{"ts": {t}, "attempt": 1, "step": 50, "loss": 1.25, "samples_per_s": 8.0}}\n'
        f'{{"ts": {t}, "attempt": 1, "event": "checkpoint", "step": 50}}\n'
    )
    p = env.job(a)["progress"]
    assert (p["step"], p["loss"], p["checkpoint_step"], p["source"]) == (50, 1.25, 50, "file")
    # The list never reads files: one job's page of 100 would be 100 reads.
    assert env.client.get("/v1/jobs", headers=env.h).json()["jobs"][0]["progress"] is None


def test_a_checkpoint_deep_in_a_large_metrics_file_is_found_after_a_restart(env: Env) -> None:
    """The service restarts while attempt 2 runs; its metrics file holds a checkpoint of
    attempt 2 and, after it, over 1 MiB of step lines. The first read after the restart used
    to take only the file's last MiB: the checkpoint was missed, attempt 2's failure counted as
    the second in a row, and the job failed for good (max_retries 1). It is found (the bytes
    before the tail are searched from their end) and the failure is retry 1 again."""
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    env.ex.finish(a, "failed", 1)  # attempt 1 keeps nothing: retry 1 of 1
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.job(a)["attempt"] == 2
    env.clock.advance(10)
    t = env.clock.time()
    step = f'{{"ts": {t}, "attempt": 2, "step": 7, "loss": 1.5, "samples_per_s": 3.0}}\n'
    with env.ex.metrics_file(a).open("w") as f:
        f.write(f'{{"ts": {t}, "attempt": 2, "event": "checkpoint", "step": 6}}\n')
        f.write(step * ((1 << 20) // len(step) + 100))
    assert env.ex.metrics_file(a).stat().st_size > 1 << 20
    env.clock.advance(10)
    env.svc.close()  # the control plane goes; attempt 2 runs on
    ex = MetricsExecutor(env.ex.root)
    ex.adoptable.add((a, 2))
    env.svc = fake_service(env.url, env.home, slots=4, executor=ex, clock=env.clock)
    env.client = TestClient(env.svc.app)
    env.svc.loop.tick()
    assert env.job(a)["state"] == "running"  # adopted
    p = env.job(a)["progress"]
    assert (p["step"], p["checkpoint_step"], p["checkpoint_at"]) == (7, 6, t)
    env.clock.advance(10)
    ex.exits.append(FakeExit(a, 2, "failed", 1))
    env.svc.loop.tick()
    env.svc.loop.tick()
    got = env.job(a)
    reasons = [h["reason"] for h in got["history"] if h["dst"] == "requeued"]
    assert [r.split(";")[0] for r in reasons] == ["retry 1 of 1"] * 2
    assert (got["state"], got["attempt"], got["failures"]) == ("running", 3, 2)


def test_checkpoint_interval_reaches_the_launch_env(env: Env) -> None:
    # A user's value beside the field is refused at submit (test_reserved_env.py).
    env.submit(gpus=1, checkpoint_interval_s=90, env={"OTHER": "5"})
    env.submit(gpus=1)
    env.svc.loop.tick()
    first, second = env.ex.launched
    assert first.env["CORTEX_CHECKPOINT_INTERVAL_S"] == "90"  # the spec's
    assert "CORTEX_CHECKPOINT_INTERVAL_S" not in second.env


def test_a_preemption_is_recorded_on_its_victim(env: Env) -> None:
    loop = env.svc.loop
    low = env.submit(gpus=4, priority_class="preemptible", name="low")
    loop.tick()
    admitted_at = env.clock.time()
    env.clock.advance(600)
    # The victim wrote a checkpoint 120 s before it is preempted.
    env.ex.metrics_file(low).write_text(
        f'{{"ts": {admitted_at + 480}, "attempt": 1, "event": "checkpoint", "step": 40}}\n'
    )
    high = env.submit(gpus=2, priority_class="production", name="high")
    loop.tick()
    now = env.clock.time()
    [rec] = env.job(low)["preemption_records"]
    # 600 s after admission, 480 s after it: 120 s at stake; back by now + grace (30 s).
    assert rec == {
        "at": now,
        "attempt": 1,
        "preemptor_id": high,
        "rule": loop.pol.preemption.name,
        "since_checkpoint_s": 120.0,
        "checkpoint_step": 40,
        "requeue_by": now + 30.0,
    }
    events = env.client.get(f"/v1/events?job_id={low}", headers=env.h).json()
    msg = next(e["message"] for e in events if e["kind"] == "preempt")
    assert msg.startswith(f"preempted by job {high} (rule {loop.pol.preemption.name})")
    assert "2.0 min since its last checkpoint (step 40)" in msg
    assert env.job(high)["preemption_records"] == []
    text = env.client.get("/metrics").text
    assert f'cortex_preemptions_total{{rule="{loop.pol.preemption.name}"}} 1.0' in text


def test_lines_naming_neither_ts_nor_attempt_are_counted_and_said_once(env: Env) -> None:
    # They were ignored without a word: a script writing {"step": N} saw no progress, ever.
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    t = env.clock.time()
    path = env.ex.metrics_file(a)
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n')
    assert env.job(a)["progress"] is None  # nothing it could place
    with path.open("a") as f:
        f.write(f'{{"ts": {t + 1}, "step": 3, "loss": 1.0}}\n{{"step": 4}}\n')
    p = env.job(a)["progress"]
    assert (p["step"], p["unattributed_lines"]) == (3, 3)
    env.svc.loop.tick()
    env.svc.loop.tick()
    events = env.client.get("/v1/events", params={"job_id": a}, headers=env.h).json()
    said = [e["message"] for e in events if e["kind"] == "progress"]
    # Once per job, with the count when first seen (the first read found 2).
    assert said == [
        "progress: 2 line(s) of the metrics file name neither ts nor attempt and are ignored; "
        "write attempt (from CORTEX_ATTEMPT) or ts (said once per job)"
    ]
    text = env.client.get("/metrics").text
    assert "cortex_progress_unattributed_jobs_total 1.0" in text
