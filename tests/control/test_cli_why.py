"""`cortex why`, `cortex queue` and the REASON column of `cortex jobs` against a real
`cortex serve` (SQLite, one CPU slot, the local executor)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import ADMIN, LiveServer, wait_for
from typer.testing import CliRunner

from cortex.cli.main import app


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'cli.db'}", slots=1, grace_s=2)
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def _run(server: LiveServer, token: str, *args: str) -> tuple[int, str, str]:
    env = {"CORTEX_URL": server.base, "CORTEX_TOKEN": token, "COLUMNS": "200"}
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_why_queue_and_reason_column(server: LiveServer, tmp_path: Path) -> None:
    fsd = _run(server, ADMIN, "token", "create", "--team", "fsd")[1].strip()
    red = _run(server, ADMIN, "token", "create", "--team", "red")[1].strip()
    job = tmp_path / "job.yaml"
    sleep = f"[{sys.executable}, -c, 'import time; time.sleep(60)']"
    job.write_text(
        "jobs:\n"
        f"  - {{name: holder, gpus: 1, duration_s: 60, command: {sleep}}}\n"
        f"  - {{name: waiter, gpus: 1, duration_s: 60, command: {sleep}}}\n"
    )
    code, out, err = _run(server, fsd, "submit", str(job), "--json")
    assert code == 0, err
    holder, waiter = (j["id"] for j in json.loads(out))

    def why() -> dict:
        return json.loads(_run(server, fsd, "why", str(waiter), "--json")[1])

    # One slot, held by the first job: the second needs 1 and 0 are free.
    wait_for(lambda: why()["blockers"][0]["code"] == "InsufficientCapacity", "a blocker")
    top = why()["blockers"][0]
    assert (top["requested_gpus"], top["free_gpus"]) == (1, 0)
    code, out, _ = _run(server, fsd, "why", str(waiter))
    assert code == 0
    assert "InsufficientCapacity" in out and "position 1" in out and "hint" in out
    listed = json.loads(_run(server, fsd, "jobs", "--json")[1])
    assert {j["id"]: j["pending_reason"] for j in listed} == {
        waiter: "InsufficientCapacity",
        holder: None,
    }
    code, out, _ = _run(server, fsd, "jobs")
    assert code == 0 and "InsufficientCapacity" in out
    code, out, _ = _run(server, fsd, "queue", "--json")
    [q] = json.loads(out)["queues"]
    assert (q["queue"], [j["id"] for j in q["jobs"]]) == ("fsd", [waiter])
    code, out, _ = _run(server, fsd, "queue")
    assert code == 0 and "waiter" in out
    # Another team: the job and the queue do not exist for it.
    code, _, err = _run(server, red, "why", str(waiter))
    assert code == 1 and f"404: job {waiter} not found" in err
    code, _, err = _run(server, red, "queue", "--team", "fsd")
    assert code == 1 and "404: team fsd not found" in err
    code, _, err = _run(server, fsd, "why", "0")
    assert code == 2
    # Start: the holder was admitted and started in one tick, estimated to run 60 s; the
    # waiter starts when it ends.
    listed = json.loads(_run(server, fsd, "jobs", "--start", "--json")[1])
    by_id = {j["id"]: j for j in listed}
    assert by_id[waiter]["start_estimate"]["start_s"] == by_id[holder]["started_at"] + 60
    code, out, _ = _run(server, fsd, "jobs", "--start")
    assert code == 0 and "start (band)" in out
    code, out, _ = _run(server, fsd, "why", str(waiter), "--start")
    assert code == 0 and "estimated start:" in out
    # Fair share: the holder's one slot is fsd's; red sees only its own row.
    code, out, _ = _run(server, fsd, "share", "--json")
    [row] = json.loads(out)["teams"]
    assert (row["team"], row["flavors"][0]["used"]) == ("fsd", 1)
    code, out, _ = _run(server, fsd, "share")
    assert code == 0 and "dominant share" in out
    code, _, err = _run(server, red, "share", "--team", "fsd")
    assert code == 1 and "404: team fsd not found" in err
    code, _, err = _run(server, fsd, "share", "--team", "Bad Name")
    assert code == 2 and err.startswith("error: query.team:")
    for jid in (holder, waiter):
        _run(server, fsd, "cancel", str(jid))
