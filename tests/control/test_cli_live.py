"""The new client conventions against a real `cortex serve` and the local executor (real
processes): `submit --wait` on a one-off command, an enforced time limit, an array that runs
one member at a time with its index in the environment, and JSON logs."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import ADMIN, LiveServer
from typer.testing import CliRunner

from cortex.cli.main import app


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'live.db'}", slots=2, grace_s=2)
    srv.extra_env["CORTEX_LOG_FORMAT"] = "json"
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def _run(server: LiveServer, token: str, *args: str) -> tuple[int, str, str]:
    env = {"CORTEX_URL": server.base, "CORTEX_TOKEN": token}
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_wait_time_limit_and_array_on_real_processes(server: LiveServer) -> None:
    token = _run(server, ADMIN, "token", "create", "--team", "fsd")[1].strip()
    py = sys.executable
    code, out, err = _run(server, token, "submit", "--wait", "--", py, "-c", "print(7)")
    assert code == 0, (out, err)
    assert out.splitlines()[-1] == "job 1 completed"
    assert _run(server, token, "logs", "1")[1] == "7\n"
    # Exit 3, retried once (CORTEX_MAX_RETRIES=1), then failed: --wait exits 3.
    code, out, _ = _run(
        server, token, "submit", "--wait", "--", py, "-c", "import sys; sys.exit(3)"
    )
    assert code == 3 and out.splitlines()[-1] == "job 2 failed (exit 3)"
    code, out, _ = _run(
        server, token, "submit", "--wait", "--time-limit-s", "1", "--parsable",
        "--", py, "-c", "import time; time.sleep(120)",
    )  # fmt: skip
    assert code != 0
    job = json.loads(_run(server, token, "job", out.split()[0], "--json")[1])
    assert (job["state"], job["reason"]) == ("failed", "failed: time limit of 1 s reached")
    code, out, _ = _run(
        server, token, "submit", "--wait", "--array", "0-2%1", "--parsable",
        "--", py, "-c", "import os; print(os.environ['CORTEX_ARRAY_INDEX'])",
    )  # fmt: skip
    assert code == 0
    ids = [int(x) for x in out.split()]
    assert [_run(server, token, "logs", str(j))[1] for j in ids] == ["0\n", "1\n", "2\n"]
    jobs = {j["id"]: j for j in json.loads(_run(server, token, "jobs", "--json")[1])}
    spans = sorted((jobs[j]["started_at"], jobs[j]["ended_at"]) for j in ids)
    # %1: one member at a time, each starting after the one before ended.
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
    lines = [ln for ln in server.log.read_text().splitlines() if ln.startswith("{")]
    assert lines and all({"ts", "level", "logger", "msg"} <= json.loads(ln).keys() for ln in lines)
