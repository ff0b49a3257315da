"""Goodput through the service (fake executor, a metrics file the test writes, a clock the
test moves): each attempt booked from what the job reported, hand-derived; the fleet's sum;
teams kept apart (404, no leak); bounded query values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import fake_service
from test_progress_api import ADMIN_H, MetricsExecutor
from test_progress_api import Env as ProgressEnv


class Env(ProgressEnv):
    """The progress tests' service, with offsets from t0 for lines and the clock."""

    def __init__(self, url: str, home: Path) -> None:
        super().__init__(url, home)
        self.t0 = self.clock.time()

    def lines(self, job_id: int, *rows: dict[str, Any]) -> None:
        with open(self.ex.metrics_file(job_id), "a") as f:
            for r in rows:
                f.write(json.dumps({**r, "ts": self.t0 + r["ts"]}) + "\n")

    def at(self, offset_s: float) -> None:
        self.clock.advance(self.t0 + offset_s - self.clock.time())

    def get(self, path: str, h: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(path, headers=h or self.h, params=params)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def _fail_then_complete(env: Env) -> int:
    """Job a (2 GPUs, 5 s per checkpoint write) runs from t0: its first report at +30,
    checkpoints at +100 and +200, a step at +250, fails at +300; its second attempt starts at
    once, reports at +320 and completes at +400."""
    a = env.submit(gpus=2, checkpoint_write_s=5.0, name="secret-name")
    env.svc.loop.tick()  # admitted and launched at t0
    env.lines(
        a,
        {"ts": 30, "attempt": 1, "step": 0, "event": "start"},
        {"ts": 100, "attempt": 1, "step": 100, "event": "checkpoint"},
        {"ts": 200, "attempt": 1, "step": 200, "event": "checkpoint"},
        {"ts": 250, "attempt": 1, "step": 250, "loss": 1.5},
    )
    env.at(300)
    env.ex.finish(a, "failed", 1)
    env.svc.loop.tick()  # attempt 1 failed; requeued and relaunched in the same tick
    env.lines(a, {"ts": 320, "attempt": 2, "step": 200, "event": "resume"})
    env.at(400)
    env.ex.finish(a, "completed", 0)
    env.svc.loop.tick()
    return a


def test_a_jobs_attempts_are_booked_from_what_it_reported(env: Env) -> None:
    a = _fail_then_complete(env)
    got = env.get(f"/v1/jobs/{a}/goodput", large_gpus=2).json()
    one, two = got["attempts"]
    # Attempt 1: held 300; startup 30; writes 2 x 5 = 10; lost since the checkpoint at +200:
    # 100; productive 300-30-10-100 = 160.
    assert (one["outcome"], one["started_at"], one["ended_at"]) == ("failed", env.t0, env.t0 + 300)
    assert {k: v for k, v in one["seconds"].items() if v} == {
        "startup": 30.0, "checkpoint_writes": 10.0, "rework_after_failures": 100.0,
        "productive": 160.0,
    }  # fmt: skip
    # Attempt 2: held 100; restart overhead 20 (its first report at +320); productive 80.
    assert {k: v for k, v in two["seconds"].items() if v} == {
        "restart_overhead": 20.0, "productive": 80.0,
    }  # fmt: skip
    # GPU-seconds (x2): productive 2 x 240 = 480 of 2 x 400 = 800 allocated.
    assert got["gpu_s"]["productive"] == 480.0 and got["allocated_gpu_s"] == 800.0
    assert got["goodput"] == 0.6
    # Effective training time: 240 productive s over the 400 s from the first start.
    assert got["large"] and got["effective_training_time"] == 0.6
    assert got["queueing_s"] == 0.0  # launched in the tick it was submitted, and relaunched


def test_the_fleet_sums_its_jobs_and_counts_the_waits(env: Env) -> None:
    a = _fail_then_complete(env)
    b = env.submit(gpus=4)  # waits at +400 ... runs from +450 (nothing holds the slots)
    env.at(450)
    env.svc.loop.tick()
    env.at(500)
    fleet = env.get("/v1/goodput", since=env.t0 - 1, large_gpus=4).json()
    assert fleet["team"] == "fsd" and fleet["jobs"] == 2 and fleet["attempts"] == 3
    # b: running 50 s on 4 GPUs without a report: 200 GPU-s in progress.
    assert fleet["gpu_s"]["in_progress"] == 200.0
    assert fleet["allocated_gpu_s"] == 1000.0  # 800 (a) + 200 (b)
    assert fleet["goodput"] == 0.48  # 480 / 1,000
    # Losses: startup 60 + restart 40 + writes 20 + lost to the failure 200 = 320.
    assert fleet["badput_gpu_s"] == 320.0
    assert fleet["queueing_s"] == 50.0  # b, from +400 to +450
    assert [j["job_id"] for j in fleet["large_jobs"]] == [b]  # 4+ GPUs: b only
    # A window that starts after a's attempts ended leaves a out (b still runs).
    late = env.get("/v1/goodput", since=env.t0 + 401).json()
    assert late["jobs"] == 1 and late["attempts"] == 1
    assert a not in [j["job_id"] for j in late["large_jobs"]]


def test_a_declared_checkpoint_size_is_booked_at_the_fleets_write_bandwidth(env: Env) -> None:
    """A job that declares its checkpoint's size, not its write's seconds, writes for the size
    over the fleet's storage_write_gbps, the estimate's rule (JobSpec.write_s): 5 s a write
    here, booked while it runs (the job's and the fleet's books) and when it has ended."""
    gbps = env.svc.loop.topo.spec.storage_write_gbps
    a = env.submit(gpus=2, checkpoint_size_gb=5.0 * gbps)
    env.svc.loop.tick()  # launched at t0
    env.lines(
        a,
        {"ts": 30, "attempt": 1, "step": 0, "event": "start"},
        {"ts": 100, "attempt": 1, "step": 100, "event": "checkpoint"},
        {"ts": 200, "attempt": 1, "step": 200, "event": "checkpoint"},
        {"ts": 250, "attempt": 1, "step": 250, "loss": 1.5},
    )
    env.at(260)
    (running,) = env.get(f"/v1/jobs/{a}/goodput").json()["attempts"]
    assert running["outcome"] == "running" and running["seconds"]["checkpoint_writes"] == 10.0
    fleet = env.get("/v1/goodput", since=env.t0 - 1).json()
    assert fleet["gpu_s"]["checkpoint_writes"] == 20.0  # 2 writes x 5 s x 2 GPUs
    env.at(300)
    env.ex.finish(a, "failed", 1)
    env.svc.loop.tick()
    ended = env.get(f"/v1/jobs/{a}/goodput").json()["attempts"][0]
    assert ended["outcome"] == "failed" and ended["seconds"]["checkpoint_writes"] == 10.0


def test_another_teams_job_and_books_are_a_404_without_a_leak(env: Env) -> None:
    a = _fail_then_complete(env)
    r = env.get(f"/v1/jobs/{a}/goodput", h=env.red)
    assert r.status_code == 404 and "secret-name" not in r.text
    assert env.get("/v1/goodput", h=env.red, team="fsd").status_code == 404
    mine = env.get("/v1/goodput", h=env.red, since=0).json()  # red's own: nothing
    assert (mine["team"], mine["jobs"], mine["allocated_gpu_s"]) == ("red", 0, 0.0)
    assert env.get("/v1/goodput", h=ADMIN_H, team="nobody").status_code == 404
    fleet = env.get("/v1/goodput", h=ADMIN_H, since=0).json()  # the admin: every team
    assert fleet["team"] is None and fleet["allocated_gpu_s"] == 800.0


@pytest.mark.parametrize(
    "params",
    [
        {"since": "nan"}, {"since": "inf"}, {"since": "-1"}, {"since": "1e12"},
        {"since": "yesterday"}, {"large_gpus": "0"}, {"team": "../etc"}, {"team": "x" * 65},
    ],
)  # fmt: skip
def test_bad_query_values_are_refused_naming_the_field(env: Env, params: dict) -> None:
    r = env.get("/v1/goodput", **params)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == next(iter(params))


def test_an_unknown_job_is_a_404(env: Env) -> None:
    assert env.get("/v1/jobs/999/goodput").status_code == 404
    assert env.get("/v1/jobs/0/goodput").status_code == 422


# ---- the CLI against the same service ------------------------------------------------------------
def _cli(env: Env, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from cortex.cli import client
    from cortex.cli.main import app

    def fake_client(timeout: float | None = 30.0) -> Any:
        c = TestClient(env.svc.app)
        c.headers.update(env.h)
        return c

    monkeypatch.setattr(client, "_client", fake_client)
    r = CliRunner().invoke(app, ["goodput", *args])
    return r.exit_code, r.stdout, r.stderr


def test_cortex_goodput_prints_the_books_and_a_jobs_attempts(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _fail_then_complete(env)
    code, out, err = _cli(env, monkeypatch, "--since", "1d", "--large-gpus", "2")
    assert code == 0, err
    # 480 of 800 GPU-s productive; 800 GPU-s = 0.22 GPU-h
    assert "goodput 60.0% of 0.22 allocated GPU-h" in " ".join(out.split())
    assert "rework_after_failures" in out and "secret-name" in out
    code, out, _ = _cli(env, monkeypatch, "--job", str(a))
    assert code == 0 and "effective training time 60.0%" in " ".join(out.split())
    code, out, _ = _cli(env, monkeypatch, "--json", "--job", str(a))
    assert json.loads(out)["goodput"] == 0.6


@pytest.mark.parametrize("since", ["yesterday", "-5d", "nan", "1e12", "5y"])
def test_a_bad_since_exits_2_naming_the_option(
    env: Env, monkeypatch: pytest.MonkeyPatch, since: str
) -> None:
    code, _, err = _cli(env, monkeypatch, "--since", since)
    assert code == 2 and err.startswith("error: --since: ")


def test_an_attempt_lost_while_the_service_was_down_is_booked_failed(
    db_url: str, tmp_path: Path
) -> None:
    first = Env(db_url, tmp_path)
    a = first.submit(gpus=2)
    first.svc.loop.tick()  # running from t0, attempt 1
    first.svc.close()
    first.clock.advance(120.0)
    # A new service on the same store and clock; the run is gone (nothing to adopt).
    ex = MetricsExecutor(tmp_path / "runs2")
    ex.root.mkdir(parents=True)
    svc = fake_service(db_url, tmp_path, slots=4, executor=ex, clock=first.clock)
    try:
        c = TestClient(svc.app)  # recovery ran in the constructor
        (one,) = c.get(f"/v1/jobs/{a}/goodput", headers=first.h).json()["attempts"][:1]
        # Booked at the restart, 120 s after it began, all of it lost (no progress reported).
        assert (one["outcome"], one["ended_at"] - one["started_at"]) == ("failed", 120.0)
        assert one["seconds"]["rework_after_failures"] == 120.0
    finally:
        svc.close()


def test_cortex_goodput_takes_the_shared_output_formats(
    env: Env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a = _fail_then_complete(env)
    code, out, err = _cli(env, monkeypatch, "--since", "1d", "--parsable")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "category|gpu_hours"
    books = {k: float(v) for k, v in (line.split("|") for line in lines[1:])}
    # 480 of the 800 allocated GPU-s were productive (the case above): 480 / 3,600 GPU-h.
    assert books["productive"] == pytest.approx(480 / 3600, abs=1e-6)
    assert sum(books.values()) == pytest.approx(800 / 3600, abs=1e-5)
    code, out, _ = _cli(env, monkeypatch, "--job", str(a), "--parsable")
    head, *rows = out.splitlines()
    cols = head.split("|")
    assert code == 0 and cols[:2] == ["attempt", "outcome"] and "productive_s" in cols
    assert [r.split("|")[:2] for r in rows] == [["1", "failed"], ["2", "completed"]]
    code, out, _ = _cli(env, monkeypatch, "--job", str(a), "-o", "yaml")
    assert code == 0 and f"job_id: {a}" in out
    path = tmp_path / "g.json"
    code, out, _ = _cli(env, monkeypatch, "--json-file", str(path))
    assert code == 0 and "goodput 60.0%" in " ".join(out.split())  # the table stays
    assert json.loads(path.read_text())["goodput"] == 0.6
    code, _, err = _cli(env, monkeypatch, "-o", "xml")
    assert code == 2 and err.startswith("error: cortex goodput: --output: unknown format")
    code, _, err = _cli(env, monkeypatch, "--json", "--parsable")
    assert code == 2 and "--output: choose one of" in err
