"""What the job gates cost the scheduler loop: one judgement of every parked job (the work a
tick does when a job ends while jobs are parked), at N parked array members on SQLite, against
a tick with nothing parked in the same run.

    python bench/gates.py [--arrays 10] [--size 1000]

Uses the tests' fake executor (no processes), as bench/control.py does."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "control"))

from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arrays", type=int, default=10)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        home = Path(d)
        svc = fake_service(f"sqlite:///{home / 'g.db'}", home, executor=FakeExecutor(home / "r"))
        c = TestClient(svc.app, headers={"Authorization": f"Bearer {ADMIN}"})
        c.post("/v1/tokens", json={"team": "fsd"})
        svc.loop.tick()
        idle = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            svc.loop.tick()
            idle.append(time.perf_counter() - t0)
        body = {"team": "fsd", "name": "a", "gpus": 1, "duration_s": 60, "command": ["ls"]}
        for _ in range(a.arrays):
            r = c.post("/v1/jobs", json={**body, "array": f"0-{a.size - 1}%1"})
            assert r.status_code == 201, r.text
        svc.loop.tick()
        parked = len(svc.loop.parked)
        judge = []
        for _ in range(a.repeats):
            with svc.sessions.begin() as s:
                t0 = time.perf_counter()
                svc.loop.gates_dirty = True  # every parked job, as after a restart
                svc.loop.run_gates(s, svc.clock.time(), [])
                judge.append(time.perf_counter() - t0)
        # A member of one array ends: only that array's parked members are judged again.
        member = next(j for j in svc.loop._array_of if j not in svc.loop.parked)
        key = svc.loop._array_of[member]
        one = []
        for _ in range(a.repeats):
            with svc.sessions.begin() as s:
                t0 = time.perf_counter()
                svc.loop.run_gates(s, svc.clock.time(), [member])
                one.append(time.perf_counter() - t0)
                s.rollback()  # judged again, from the same state, next repeat
            svc.loop._array_of[member] = key  # forgotten as ended: put back for the next one
        # A hold or release of one parked member: that job and its array's parked members
        # (before issue 14's second pass, every parked job).
        released = []
        for _ in range(a.repeats):
            with svc.sessions.begin() as s:
                t0 = time.perf_counter()
                svc.loop.request_gates(job=member + 1)  # what POST /v1/jobs/{id}/release asks
                svc.loop.run_gates(s, svc.clock.time(), [])
                released.append(time.perf_counter() - t0)
        svc.close()
    print(f"{parked} parked jobs ({a.arrays} arrays of {a.size}, %1), median of {a.repeats}:")
    print(f"  idle tick (nothing parked)         {statistics.median(idle) * 1000:8.1f} ms")
    print(f"  one judgement of every parked job  {statistics.median(judge) * 1000:8.1f} ms")
    print(f"  a member of one array ends         {statistics.median(one) * 1000:8.1f} ms")
    print(f"  a hold or release of one job       {statistics.median(released) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
