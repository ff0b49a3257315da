"""End to end, on SQLite and on PostgreSQL: the real `cortex serve` (uvicorn subprocess), the
real local executor, real Python programs as jobs."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import LiveServer, wait_for

from cortex.control import models as m
from cortex.workload.states import TRANSITIONS, JobState

# Counts steps in a checkpoint; on SIGTERM it saves the step and exits 75 (EX_TEMPFAIL), the
# protocol's "checkpointed, requeue me". A resumed run starts from the saved step. The first
# attempt runs until it is preempted (at most argv[1] steps of 0.05 s, a generous deadline); a
# resumed one finishes at once: no race between the preemption and the clock.
CHECKPOINTING = """
import os, signal, sys, time
ckpt = os.path.join(os.environ["CORTEX_CHECKPOINT_DIR"], "step.txt")
step = 0
if os.path.exists(ckpt):
    step = int(open(ckpt).read())
    print(f"resumed from step {step}", flush=True)
def on_term(signum, frame):
    with open(ckpt + ".tmp", "w") as f:
        f.write(str(step))
    os.replace(ckpt + ".tmp", ckpt)
    print(f"checkpointed at step {step}", flush=True)
    sys.exit(75)
signal.signal(signal.SIGTERM, on_term)
limit = int(sys.argv[1]) if os.environ.get("CORTEX_ATTEMPT", "1") == "1" else step
while step < limit:
    step += 1
    print(f"step {step}", flush=True)
    time.sleep(0.05)
print("done", flush=True)
"""

# Writes its pid per attempt, then runs until the test drops a file "go" in its checkpoint
# directory, or for argv[1] seconds at most: the test decides when it ends, not a timer.
SLEEPER = """
import os, sys, time
d = os.environ["CORTEX_CHECKPOINT_DIR"]
attempt = os.environ.get("CORTEX_ATTEMPT", "?")
with open(os.path.join(d, f"pid-{attempt}"), "w") as f:
    f.write(str(os.getpid()))
print(f"sleeping attempt {attempt}", flush=True)
deadline = time.monotonic() + float(sys.argv[1])
while not os.path.exists(os.path.join(d, "go")) and time.monotonic() < deadline:
    time.sleep(0.02)
print("woke", flush=True)
"""


def _release(server: LiveServer, job_id: int) -> None:
    """Let a SLEEPER job end: the file it polls for."""
    (server.home / "runs" / "jobs" / str(job_id) / "checkpoints" / "go").touch()


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", db_url, slots=2)
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def _script(tmp_path: Path, name: str, code: str) -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(code))
    return str(p)


def _job(c: httpx.Client, job_id: int) -> dict[str, Any]:
    r = c.get(f"/v1/jobs/{job_id}")
    r.raise_for_status()
    return dict(r.json())


def _submit(c: httpx.Client, **kw: Any) -> int:
    body = {"name": "e2e", "gpus": 1, "duration_s": 30, **kw}
    r = c.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _in_state(c: httpx.Client, job_id: int, *states: str) -> Any:
    j = _job(c, job_id)
    return j if j["state"] in states else None


def _logs(c: httpx.Client, job_id: int) -> str:
    return c.get(f"/v1/jobs/{job_id}/logs").text


def _check_history(job: dict[str, Any]) -> list[str]:
    hist = job["history"]
    for h in hist[1:]:
        assert JobState(h["dst"]) in TRANSITIONS[JobState(h["src"])], hist
    return [h["dst"] for h in hist]


def test_run_cancel_preempt_and_resume(server: LiveServer, tmp_path: Path) -> None:
    c = server.client(server.team_token("fsd"))
    py = sys.executable
    # 1. a small program runs, writes both logs and completes
    hello = _script(
        tmp_path,
        "hello.py",
        """
        import os, sys
        print("hello from job", os.environ["CORTEX_JOB_ID"], flush=True)
        print("to stderr", file=sys.stderr, flush=True)
    """,
    )
    a = _submit(c, name="hello", command=[py, hello], working_dir=str(tmp_path))
    done = wait_for(lambda: _in_state(c, a, "completed", "failed"), "hello to finish")
    assert done["state"] == "completed" and done["exit_code"] == 0
    assert _check_history(done) == ["queued", "admitted", "running", "completed"]
    assert _logs(c, a) == f"hello from job {a}\n"
    assert c.get(f"/v1/jobs/{a}/logs?stream=stderr").text == "to stderr\n"
    # 2. cancel a running job
    sleeper = _script(tmp_path, "sleeper.py", SLEEPER)
    b = _submit(c, name="sleepy", command=[py, sleeper, "60"])
    wait_for(lambda: "sleeping" in _logs(c, b), "sleeper to start")
    assert c.post(f"/v1/jobs/{b}/cancel").status_code == 202
    cancelled = wait_for(lambda: _in_state(c, b, "cancelled"), "cancel")
    assert _check_history(cancelled)[-1] == "cancelled"
    # 3. a production job preempts a preemptible one that checkpoints and later resumes
    ckpt = _script(tmp_path, "ckpt.py", CHECKPOINTING)
    low = _submit(c, name="low", gpus=2, priority_class="preemptible", command=[py, ckpt, "2400"])
    wait_for(lambda: "step 5\n" in _logs(c, low), "low to make progress")
    high = _submit(c, name="high", gpus=1, priority_class="production", command=[py, hello])
    wait_for(lambda: _in_state(c, high, "completed"), "high to run")
    final = wait_for(lambda: _in_state(c, low, "completed", "failed"), "low to finish")
    assert final["state"] == "completed", final
    hist = _check_history(final)
    assert hist == [
        "queued",
        "admitted",
        "running",
        "preempted",
        "requeued",
        "admitted",
        "running",
        "completed",
    ]
    assert final["attempt"] == 2 and final["preemptions"] == 1
    first = c.get(f"/v1/jobs/{low}/logs", params={"tail": 1}).text  # attempt 2's log
    assert first == "done\n"
    run1 = Path(server.home / "runs" / "jobs" / str(low) / "attempts" / "1" / "stdout.log")
    run2 = run1.parent.parent / "2" / "stdout.log"
    saved = [ln for ln in run1.read_text().splitlines() if ln.startswith("checkpointed")]
    assert len(saved) == 1
    step = int(saved[0].split()[-1])
    assert 5 <= step < 2400
    assert run2.read_text().splitlines()[0] == f"resumed from step {step}"
    assert server.active_allocations() == []
    text = httpx.get(f"{server.base}/metrics").text
    assert 'cortex_jobs{state="completed",team="fsd"} 3.0' in text


def test_kill9_restart_adopts_requeues_and_runs_nothing_twice(
    server: LiveServer, tmp_path: Path
) -> None:
    c = server.client(server.team_token("fsd"))
    py = sys.executable
    sleeper = _script(tmp_path, "sleeper.py", SLEEPER)
    kept = _submit(c, name="kept", command=[py, sleeper, "120"])
    lost = _submit(c, name="lost", command=[py, sleeper, "120"])
    queued = _submit(c, name="queued", command=[py, sleeper, "120"])  # 2 slots: it waits
    for j in (kept, lost):
        wait_for(lambda j=j: "sleeping" in _logs(c, j), f"job {j} to start")
    assert _job(c, queued)["state"] == "queued"
    server.kill9()
    # While the service is down, one job's whole process group dies without a verdict.
    [h] = [a.handle for a in server.active_allocations() if a.job_id == lost]
    os.killpg(h["pgid"], signal.SIGKILL)
    kept_pid = int(
        (server.home / "runs" / "jobs" / str(kept) / "checkpoints" / "pid-1").read_text()
    )
    os.kill(kept_pid, 0)  # the job outlived the service
    server.start()
    # Adopted: still attempt 1, still running (it waits for its "go" file).
    assert (_job(c, kept)["state"], _job(c, kept)["attempt"]) == ("running", 1)
    lost_job = _job(c, lost)
    assert _check_history(lost_job)[3:5] == ["failed", "requeued"]
    for j in (kept, lost):  # lost's second attempt finds its file and ends at once
        _release(server, j)
    wait_for(lambda: "sleeping" in _logs(c, queued), "queued to start")
    _release(server, queued)
    for j in (kept, lost, queued):
        done = wait_for(lambda j=j: _in_state(c, j, "completed", "failed"), f"job {j}")
        assert done["state"] == "completed", done
        _check_history(done)
    assert _job(c, kept)["attempt"] == 1  # adopted, never launched again
    assert "woke" in _logs(c, kept) and _job(c, kept)["exit_code"] == 0
    assert _job(c, lost)["attempt"] == 2
    ckpt = server.home / "runs" / "jobs" / str(kept) / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("pid-*")) == ["pid-1"]
    # No allocation leaks; never more devices held than the machine has.
    assert server.active_allocations() == []
    allocs = server.rows(m.Allocation)
    assert {(a.job_id, a.attempt) for a in allocs} == {(kept, 1), (lost, 1), (lost, 2), (queued, 1)}
