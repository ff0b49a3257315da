"""kill -9 of a service process that is launching and stopping jobs, at seeded random moments,
then recovery by a new executor: every run the store recorded is adopted and reports one exit,
or is reported gone; every run it did not record is found and killed, or never started."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cortex.executors.local.executor import Handle, LocalExecutor
from cortex.executors.local.procfs import all_stats, proc_stat

# A toy service: launches job after job, records each handle after launch() returns (so a kill
# can fall between the two), preempts every third, polls. A preempted job runs until its SIGTERM
# and is recorded once terminate() has returned: recorded first, a kill between the record and
# the SIGTERM (terminate() scans /proc first, tens of ms on a loaded machine) left a job that
# was never stopped, and it rightly completed (4 runs of 4 under load here). Likewise a
# short job could end before a late SIGTERM reached it.
SERVICE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from cortex.executors.local.executor import LocalExecutor, LaunchSpec
    root, first = Path(sys.argv[1]), int(sys.argv[2])
    ex = LocalExecutor(root, grace_s=0.3, allow_same_user=True)
    job = first
    while True:
        cmd = [sys.executable, "-c", "import time, random; time.sleep(random.random() / 2)"]
        if job % 3 == 0:
            cmd = [sys.executable, "-c", "import time; time.sleep(600)"]
        h = ex.launch(LaunchSpec(job, 1, cmd, {}, None, [0]))
        if job % 3 == 0:
            ex.terminate(job, 1, "preempt")
        with open(root / "store.jsonl", "a") as f:
            f.write(json.dumps(h.to_dict()) + "\\n")
        ex.poll()
        job += 1
        time.sleep(0.02)
    """
)


def _records(root: Path) -> int:
    store = root / "store.jsonl"
    return len(store.read_text().splitlines()) if store.exists() else 0


def _wait_records(store: Path, n: int, svc: subprocess.Popen[bytes]) -> None:
    """Until the toy service has recorded n runs; a generous deadline for a loaded machine."""
    deadline = time.monotonic() + 120
    while _records(store.parent) < n:
        assert svc.poll() is None, "the toy service died"
        assert time.monotonic() < deadline, f"{_records(store.parent)} of {n} runs recorded"
        time.sleep(0.01)


def _runner_children(pid: int) -> list[int]:
    return [s.pid for s in all_stats() if s.ppid == pid and not s.finished]


def test_kill_9_of_the_service_at_random_moments(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    rng = random.Random(4)
    reported: dict[int, str] = {}
    first = 0
    for _ in range(3):
        svc = subprocess.Popen([sys.executable, "-c", SERVICE, str(root), str(first)])
        # Kill once the service has recorded a seeded number of runs (2-4 this round), plus a
        # seeded fraction of one loop, so the kill can fall between a launch and its record.
        # Progress, not a timer, decides: a loaded machine only makes the round slower.
        _wait_records(root / "store.jsonl", _records(root) + rng.randint(2, 4), svc)
        time.sleep(rng.uniform(0.0, 0.1))
        svc.send_signal(signal.SIGKILL)
        svc.wait(timeout=10)

        ex = LocalExecutor(root)
        store = [
            Handle.from_dict(json.loads(line))
            for line in (root / "store.jsonl").read_text().splitlines()
        ]
        known = {h.job_id for h in store}
        for h in ex.live_handles():
            if h.job_id not in known:
                ex.kill(h)  # launched, but the store never heard of it
        for h in store:
            if h.job_id not in reported and not ex.adopt(h):
                reported[h.job_id] = "gone"
        deadline = time.monotonic() + 120
        while ex.running():
            assert time.monotonic() < deadline, ex.running()
            for rec in ex.poll():
                assert rec.job_id not in reported, f"reported twice: {rec}"
                reported[rec.job_id] = rec.outcome
            time.sleep(0.02)
        assert ex.live_handles() == []

        # Runs without a handle on disk: the runner is waiting for a confirmation that will
        # never come, and has started nothing.
        for run in root.glob("jobs/*/attempts/1"):
            if not (run / "handle.json").exists():
                for st in (s for s in all_stats() if str(run) in _cmdline(s.pid)):
                    assert _runner_children(st.pid) == []
                    os.kill(st.pid, signal.SIGKILL)  # rather than let it wait out its 30 s
        first = max(int(p.name) for p in (root / "jobs").iterdir()) + 1

    assert set(reported) == {h.job_id for h in store}
    assert len(reported) >= 6  # at least 2 recorded runs per round
    # A preempted job is preempted; the others, which sleep under a second, complete.
    for job_id, outcome in reported.items():
        assert outcome == ("preempted" if job_id % 3 == 0 else "completed"), (job_id, outcome)


def _cmdline(pid: int) -> str:
    if proc_stat(pid) is None:
        return ""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
