"""Retries are failures in a row without progress (drive/runs.py judge_exit), end to end: the
real `cortex serve` (SQLite, CORTEX_MAX_RETRIES=1, live.py), the real local executor, and a job
that writes a checkpoint line to its metrics file (CORTEX_METRICS_FILE, jobproto.py) before it
fails; the count survives a kill -9 of the service."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live import LiveServer, wait_for

from cortex.control import models as m

# Attempts 1 and 2 write a checkpoint and fail; attempt 3 waits for its "go" file, writes
# none and fails.
SCRIPT = """
import json, os, sys, time
attempt = int(os.environ["CORTEX_ATTEMPT"])
if attempt <= 2:
    line = {"ts": time.time(), "attempt": attempt, "event": "checkpoint", "step": 10 * attempt}
    with open(os.environ["CORTEX_METRICS_FILE"], "a") as f:
        f.write(json.dumps(line) + "\\n")
    sys.exit(1)
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.05)
sys.exit(1)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'r.db'}", slots=1)
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def _job(c: Any, jid: int) -> dict[str, Any]:
    return dict(c.get(f"/v1/jobs/{jid}").json())


def _row(server: LiveServer, jid: int) -> m.Job:
    [row] = server.rows(m.Job, m.Job.id == jid)
    return row


def test_a_job_that_checkpoints_between_its_failures_is_retried_past_max_retries(
    server: LiveServer, tmp_path: Path
) -> None:
    """With max_retries 1, attempt 2 fails after a checkpoint of its own: the count starts
    over (retry 1 of 1 again), where retry16's total failed the job for good there. Attempt 3
    keeps nothing: its failure is the second in a row, over the limit, and ends the job, and
    the count it is judged by was kept across a kill -9 and restart of the service."""
    script = tmp_path / "ckpt_then_fail.py"
    script.write_text(SCRIPT)
    go = tmp_path / "go"
    c = server.client(server.team_token("fsd"))
    body = {"name": "flaky", "gpus": 1, "duration_s": 60, "priority_class": "preemptible"}
    r = c.post("/v1/jobs", json={**body, "command": [sys.executable, str(script), str(go)]})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]

    def third_running() -> bool:
        j = _job(c, jid)
        assert j["state"] != "failed", j["history"][-1]  # failed for good too soon
        return j["state"] == "running" and j["attempt"] == 3

    wait_for(third_running, "attempt 3 to run after two failed runs that kept work")
    row = _row(server, jid)
    assert (row.failures, row.failures_in_a_row) == (2, 1)
    reasons = [h["reason"] for h in _job(c, jid)["history"] if h["dst"] == "requeued"]
    assert [r.split(";")[0] for r in reasons] == ["retry 1 of 1", "retry 1 of 1"]
    server.kill9()
    server.start()  # the run is adopted; its job's count is read back from the store
    assert _job(c, jid)["attempt"] == 3
    go.write_text("")
    done = wait_for(lambda: _job(c, jid)["state"] == "failed" and _job(c, jid), "the end")
    assert (done["attempt"], done["failures"], done["ended_at"] is not None) == (3, 3, True)
    assert _row(server, jid).failures_in_a_row == 2
