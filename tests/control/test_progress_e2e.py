"""Progress and preemption records end to end: the real `cortex serve` (SQLite, one CPU slot),
the real local executor and the real fsd training workload, checkpointing by time
(`checkpoint_interval_s`). Its metrics file is its progress; a production job preempts it; the
record names the preemptor, the rule and the work at stake; attempt 2 resumes and reports,
and a report for attempt 1 is refused."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live import ADMIN, LiveServer, wait_for
from typer.testing import CliRunner

from cortex.cli.main import app

pytest.importorskip("torch")

GRACE_S = 10.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'p.db'}", slots=1, grace_s=GRACE_S)
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def _cli(server: LiveServer, token: str, *args: str) -> tuple[int, str]:
    env = {"CORTEX_URL": server.base, "CORTEX_TOKEN": token, "COLUMNS": "200"}
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout


def test_training_progress_and_a_preemption_record(server: LiveServer) -> None:
    token = server.team_token("fsd")
    c = server.client(token)
    train = [sys.executable, "-m", "cortex.training.fsd", "--config", "tiny", "--steps", "100000"]
    train += ["--log-every", "2", "--checkpoint-every", "100000", "--num-workers", "0"]
    r = c.post(
        "/v1/jobs",
        json={
            "name": "fsd",
            "gpus": 1,
            "duration_s": 600,
            "priority_class": "preemptible",
            "checkpoint_interval_s": 1,
            "command": train,
        },
    )
    assert r.status_code == 201, r.text
    low = r.json()["id"]

    def progress(attempt: int) -> dict[str, Any] | None:
        p = c.get(f"/v1/jobs/{low}").json()["progress"]
        # A loss too: on a slow machine the first checkpoint by time (1 s) can be read before
        # the first loss line (every 2 steps), and the record then holds no loss yet.
        ok = p and p["attempt"] == attempt and p["step"] and p["checkpoint_at"]
        return p if ok and p["loss"] is not None else None

    # Checkpoints every second by time alone (never by its 100,000-step count).
    p1 = wait_for(lambda: progress(1), "attempt 1 to report a step and a checkpoint")
    assert p1["source"] == "file" and p1["loss"] is not None and p1["checkpoint_step"] > 0
    code, out = _cli(server, token, "job", str(low))
    assert code == 0 and "progress: attempt 1, step" in out
    # Training prints; the line reaches the log file through the runner's copier thread.
    wait_for(lambda: "step 2/100000 loss" in c.get(f"/v1/jobs/{low}/logs").text, "the step line")

    hello = [sys.executable, "-c", "print('high')"]
    r = c.post(
        "/v1/jobs",
        json={
            "name": "high",
            "gpus": 1,
            "duration_s": 5,
            "priority_class": "production",
            "command": hello,
        },
    )
    assert r.status_code == 201, r.text
    high = r.json()["id"]
    wait_for(lambda: c.get(f"/v1/jobs/{high}").json()["state"] == "completed", "high to run")
    [rec] = c.get(f"/v1/jobs/{low}").json()["preemption_records"]
    assert (rec["attempt"], rec["preemptor_id"], rec["rule"]) == (1, high, "priority")
    assert rec["requeue_by"] == rec["at"] + GRACE_S
    assert rec["since_checkpoint_s"] is not None and rec["since_checkpoint_s"] >= 0
    assert rec["checkpoint_step"] >= p1["checkpoint_step"]

    # Attempt 2 resumes from the checkpoint the SIGTERM wrote and reports as attempt 2.
    p2 = wait_for(lambda: progress(2), "attempt 2 to report")
    assert p2["step"] >= rec["checkpoint_step"]
    stale = c.post(f"/v1/jobs/{low}/progress", json={"attempt": 1, "step": 1})
    assert stale.status_code == 409 and stale.json()["detail"][0]["loc"] == ["body", "attempt"]
    code, out = _cli(server, token, "events", "--job", str(low), "--json")
    msgs = [e["message"] for e in json.loads(out) if e["kind"] == "preempt"]
    assert len(msgs) == 1 and msgs[0].startswith(f"preempted by job {high} (rule ")
    code, out = _cli(server, token, "job", str(low))
    assert "preemptions" in out and f"job {high}" in out
    # Another team sees none of it.
    other = server.client(server.team_token("red"))
    assert other.get(f"/v1/jobs/{low}").status_code == 404
    assert other.post(f"/v1/jobs/{low}/progress", json={"attempt": 2, "step": 1}).status_code == 404
    c.post(f"/v1/jobs/{low}/cancel")
    wait_for(lambda: c.get(f"/v1/jobs/{low}").json()["state"] == "cancelled", "cancel")
    assert ADMIN  # the server's admin token is never in a job's environment (live.py sets it)
