"""Power in a real `cortex serve` (subprocess on 127.0.0.1, real job processes): 3 CPU slots
modelled as H100-SXM5 GPUs, a tiny facility cap, a recording actuator (no device is touched).
The figures are derived in test_power_loop.py's docstring: at 5.65 kW two one-GPU `generic`
jobs fit and a third does not; at 5.95 kW the third starts capped at 455 W; at 5.42 kW the
most recently started job is paused (SIGTERM, exit 75, requeued) and the other two capped."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import ADMIN, LiveServer, wait_for

# Writes its pid, then runs until the test drops "go" in its checkpoint dir (or 120 s); on
# SIGTERM it says so and exits 75, the job protocol's "checkpointed, requeue me".
JOB = """
import os, signal, sys, time
d = os.environ["CORTEX_CHECKPOINT_DIR"]
att = os.environ.get("CORTEX_ATTEMPT", "?")
open(os.path.join(d, f"pid-{att}"), "w").write(str(os.getpid()))
def on_term(signum, frame):
    print("paused", flush=True)
    sys.exit(75)
signal.signal(signal.SIGTERM, on_term)
print(f"running attempt {att}", flush=True)
deadline = time.monotonic() + 120
while not os.path.exists(os.path.join(d, "go")) and time.monotonic() < deadline:
    time.sleep(0.02)
"""


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", db_url, slots=3)
    srv.home.mkdir()
    srv.extra_env = {
        "CORTEX_POWER_POLICY": "cap",
        "CORTEX_SITE_CAP_KW": "5.65",
        "CORTEX_POWER_ACTUATOR": f"record:{tmp_path / 'caps.jsonl'}",
        "CORTEX_POWER_MODEL_FLAVOR": "H100-SXM5",
    }
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def _state(c: httpx.Client, job_id: int) -> dict[str, Any]:
    r = c.get(f"/v1/jobs/{job_id}")
    r.raise_for_status()
    return dict(r.json())


def _calls(path: Path) -> list[tuple[int, float | None]]:
    if not path.exists():
        return []
    return [(r["device"], r["watts"]) for r in map(json.loads, path.read_text().splitlines())]


def _pid(server: LiveServer, job_id: int, attempt: int) -> int:
    f = server.home / "runs" / "jobs" / str(job_id) / "checkpoints" / f"pid-{attempt}"
    return int(wait_for(lambda: f.exists() and f.read_text(), f"job {job_id}'s pid"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_live_admission_capping_and_pausing(server: LiveServer, tmp_path: Path) -> None:
    calls = tmp_path / "caps.jsonl"
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    c = server.client(server.team_token("fsd"))
    admin = server.client(ADMIN)
    ids = []
    for i in range(3):
        body = {"name": f"p{i}", "gpus": 1, "duration_s": 60}
        r = c.post("/v1/jobs", json={**body, "command": [sys.executable, str(script)]})
        assert r.status_code == 201, r.text
        ids.append(int(r.json()["id"]))
    a, b, j3 = ids
    for j in (a, b):
        wait_for(lambda j=j: _state(c, j)["state"] == "running", f"job {j} to run")
    # Deep passes run at least once a second: after 2 s with a slot free, the third job is
    # still waiting, held back by watts alone.
    time.sleep(2.0)
    assert _state(c, j3)["state"] == "queued"
    power = admin.get("/v1/power").json()
    assert power["it_booked_over_idle_w"] == pytest.approx(900.0)  # 2 x 450 W
    # More watts: the third starts capped (its device gets 455 W before the process starts).
    assert admin.put("/v1/power", json={"site_cap_kw": 5.95}).status_code == 200
    wait_for(lambda: _state(c, j3)["state"] == "running", "the third job to run")
    dev3 = _state(c, j3)["devices"][0]
    assert (dev3, 455.0) in _calls(calls)
    pid3 = _pid(server, j3, 1)
    # Fewer watts: the most recently started job is paused: its real process gets SIGTERM,
    # exits 75 and the job is requeued; it waits (a slot is free, the watts are not).
    assert admin.put("/v1/power", json={"site_cap_kw": 5.42}).status_code == 200
    wait_for(lambda: _state(c, j3)["state"] == "requeued", "the third job to be paused")
    hist = [h["dst"] for h in _state(c, j3)["history"]]
    assert hist == ["queued", "admitted", "running", "preempted", "requeued"]
    wait_for(lambda: not _alive(pid3), "the paused process to exit")
    log = server.home / "runs" / "jobs" / str(j3) / "attempts" / "1" / "stdout.log"
    assert log.read_text().splitlines()[-1] == "paused"
    assert [_state(c, j)["state"] for j in (a, b)] == ["running", "running"]
    time.sleep(1.5)
    assert _state(c, j3)["state"] == "requeued"
    metrics = httpx.get(f"{server.base}/metrics").text
    assert 'cortex_power_site_watts{what="cap"} 5420.0' in metrics
    assert f'cortex_power_job_watts{{job="{a}",source="model"}} 455.0' in metrics
    power = admin.get("/v1/power").json()
    assert power["paused"] == 1 and {j["job_id"] for j in power["jobs"]} == {a, b}
    for j in (a, b):
        (server.home / "runs" / "jobs" / str(j) / "checkpoints" / "go").touch()


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (
            ["--power-policy", "bogus"],
            {},
            "error: --power-policy: value: Value error, unknown power policy 'bogus'; "
            "known: none, admit, cap",
        ),
        (
            # idle facility 3,688 W x 1.17 + 165 W = 4,479.96 W (test_power_loop.py)
            ["--power-policy", "cap", "--site-cap-kw", "4.4"],
            {"CORTEX_POWER_MODEL_FLAVOR": "H100-SXM5"},
            "error: serve: site_cap_kw: 4.4 kW is below the idle fleet's 4.480 kW facility draw",
        ),
    ],
)
def test_serve_refuses_bad_power_flags(
    args: list[str], env: dict[str, str], line: str, tmp_path: Path
) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "cortex.cli.main", "serve", "--home", str(tmp_path), *args],
        check=False,
        env={**os.environ, "CORTEX_ALLOW_SAME_USER": "1", "CORTEX_SLOTS": "3", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    # Start-up may log before the check (store migrations); the error is one line, the last.
    lines = out.stderr.strip().splitlines()
    assert [ln for ln in lines if ln.startswith("error")] == [line] and lines[-1] == line
