"""The crash driver, shared by tests/control/test_crash_kills.py (a handful of kills) and
bench/control_faults.py (100 per store): random `kill -9`s of a live `cortex serve` under mixed
load (submits, cancels, jobs that complete, fail, or exit 75 on their own), a restart after
each, then the checks: no accepted job lost, none run to completion twice, no allocation left
active, no run or job process left behind.

A job asked to fail or to exit 75 does so on its first attempt only (a job that always exits 75
would wait out ever longer retry delays). Each job appends `start <attempt>` and `end <attempt>`
to its own ledger file, so a job that ran twice shows two `end` lines whatever the store says."""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from live import LiveServer, wait_for

from cortex.control import models as m
from cortex.executors.local.executor import LocalExecutor

JOB = (
    "import os, sys, time\n"
    "led = os.path.join(sys.argv[1], os.environ['CORTEX_JOB_ID'])\n"
    "att = os.environ['CORTEX_ATTEMPT']\n"
    "open(led, 'a').write(f'start {att}\\n')\n"
    "time.sleep(float(sys.argv[2]))\n"
    "code = int(sys.argv[3]) if att == '1' else 0\n"
    "if code == 0:\n"
    "    open(led, 'a').write(f'end {att}\\n')\n"
    "sys.exit(code)\n"
)
WARMUP_JOBS = 6
FINAL = ("completed", "cancelled", "rejected", "failed")


@dataclass
class CrashResult:
    kills: int = 0
    accepted: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    run_twice: list[int] = field(default_factory=list)
    not_final: list[int] = field(default_factory=list)
    leaked_allocations: int = 0
    orphans: int = 0
    states: dict[str, int] = field(default_factory=dict)

    def ok(self) -> bool:
        return not (
            self.lost or self.run_twice or self.not_final or self.leaked_allocations or self.orphans
        )


def _submit(c: httpx.Client, rng: random.Random, ledger: Path, res: CrashResult) -> None:
    code = rng.choice((0, 0, 0, 0, 1, 75))
    secs = f"{rng.uniform(0.05, 1.0):.2f}"
    body = {
        "name": "crash",
        "gpus": rng.choice((1, 1, 2)),
        "duration_s": 5,
        "priority_class": rng.choice(("preemptible", "normal", "production")),
        "command": [sys.executable, "-c", JOB, str(ledger), secs, str(code)],
    }
    r = c.post("/v1/jobs", json=body)
    if r.status_code == 201:
        res.accepted.append(int(r.json()["id"]))


def _load(
    srv: LiveServer, token: str, ledger: Path, res: CrashResult, stop: threading.Event, seed: int
) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            with httpx.Client(
                base_url=srv.base, headers={"Authorization": f"Bearer {token}"}, timeout=5
            ) as c:
                if res.accepted and rng.random() < 0.15:
                    c.post(f"/v1/jobs/{rng.choice(res.accepted[-20:])}/cancel")
                else:
                    _submit(c, rng, ledger, res)
        except httpx.HTTPError:
            pass  # the service is down (being killed): try again
        stop.wait(rng.uniform(0.02, 0.2))


def crash_run(
    srv: LiveServer, kills: int, *, seed: int = 0, settle_s: float = 180.0, progress: bool = False
) -> Any:
    """`srv` started; kills it `kills` times under load, then checks. Returns a CrashResult."""
    rng = random.Random(seed)
    res = CrashResult()
    ledger = srv.home / "ledger"
    ledger.mkdir(exist_ok=True)
    token = srv.team_token("crash")
    # Work in flight for the first kill, however slow the machine is to submit more.
    with httpx.Client(
        base_url=srv.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as c:
        for _ in range(WARMUP_JOBS):
            _submit(c, rng, ledger, res)
    stop = threading.Event()
    load = threading.Thread(target=_load, args=(srv, token, ledger, res, stop, seed), daemon=True)
    load.start()
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 1.5))
            srv.kill9()
            res.kills += 1
            srv.start()
            if progress:
                print(f"kill {res.kills}: {len(res.accepted)} accepted", flush=True)
    finally:
        stop.set()
        load.join(10)
    admin = srv.client()

    def settled() -> bool:
        jobs = admin.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]
        return all(j["state"] in FINAL for j in jobs)

    with contextlib.suppress(AssertionError):  # reported below, job by job
        wait_for(settled, "every job to be final", settle_s)
    rows = {j.id: j for j in srv.rows(m.Job, m.Job.id > 0)}
    for jid in res.accepted:
        row = rows.get(jid)
        if row is None:
            res.lost.append(jid)
            continue
        res.states[row.state] = res.states.get(row.state, 0) + 1
        if row.state not in FINAL:
            res.not_final.append(jid)
        f = ledger / str(jid)
        lines = f.read_text().splitlines() if f.exists() else []
        if sum(1 for ln in lines if ln.startswith("end")) > 1:
            res.run_twice.append(jid)
    # An allocation still active for a job that is final is leaked (a running one holds its).
    final = {jid for jid, row in rows.items() if row.state in FINAL}
    res.leaked_allocations = sum(1 for a in srv.active_allocations() if a.job_id in final)
    srv.stop()
    res.orphans = len(LocalExecutor(srv.home / "runs").live_handles())
    return res
