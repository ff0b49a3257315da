"""The client commands against a real `cortex serve` (SQLite): submit a YAML job, list, show,
logs, cancel, queues, nodes, events and token create, with --json on every listing."""

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
    srv = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'cli.db'}", slots=1)
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def _run(server: LiveServer, token: str, *args: str) -> tuple[int, str, str]:
    env = {"CORTEX_URL": server.base, "CORTEX_TOKEN": token}
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_client_commands(server: LiveServer, tmp_path: Path) -> None:
    code, out, _ = _run(server, ADMIN, "token", "create", "--team", "fsd")
    assert code == 0
    token = out.strip()
    assert token.startswith("ctx_")
    job = tmp_path / "job.yaml"
    job.write_text(
        "jobs:\n"
        f"  - {{name: quick, gpus: 1, duration_s: 5, command: [{sys.executable}, -c, "
        "'print(42)']}\n"
        f"  - {{name: slow, gpus: 1, duration_s: 60, command: [{sys.executable}, -c, "
        "'import time; time.sleep(60)']}\n"
    )
    code, out, err = _run(server, token, "submit", str(job), "--json")
    assert code == 0, err
    quick, slow = (j["id"] for j in json.loads(out))

    def state(job_id: int) -> str:
        return str(json.loads(_run(server, token, "job", str(job_id), "--json")[1])["state"])

    wait_for(lambda: state(quick) == "completed", "quick job")
    assert _run(server, token, "logs", str(quick))[1] == "42\n"
    assert _run(server, token, "logs", str(quick), "-f")[1] == "42\n"
    wait_for(lambda: state(slow) == "running", "slow job")
    code, out, _ = _run(server, token, "cancel", str(slow))
    assert code == 0 and "cancel requested" in out
    wait_for(lambda: state(slow) == "cancelled", "cancel")
    listed = json.loads(_run(server, token, "jobs", "--json")[1])
    assert [(j["id"], j["state"]) for j in listed] == [(slow, "cancelled"), (quick, "completed")]
    assert (
        json.loads(_run(server, token, "jobs", "--state", "completed", "--json")[1])[0]["id"]
        == quick
    )
    code, out, _ = _run(server, token, "jobs")
    assert code == 0 and "quick" in out and "slow" in out  # the Rich table
    assert json.loads(_run(server, token, "queues", "--json")[1])[0]["name"] == "fsd"
    [node] = json.loads(_run(server, token, "nodes", "--json")[1])
    assert (node["flavor"], node["gpus"], node["healthy"]) == ("CPU-SLOT", 1, True)
    kinds = {e["kind"] for e in json.loads(_run(server, token, "events", "--json")[1])}
    assert {"start", "exit", "cancel"} <= kinds
    code, out, _ = _run(server, token, "job", str(quick))
    assert code == 0 and "history" in out and "completed" in out


def test_client_errors(server: LiveServer, tmp_path: Path) -> None:
    code, _, err = _run(server, "wrong", "jobs")
    assert code == 1 and "unauthorized" in err
    token = _run(server, ADMIN, "token", "create", "--team", "fsd")[1].strip()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ngpus: -1\nduration_s: 5\ncommand: [true]\n")
    code, _, err = _run(server, token, "submit", str(bad))
    assert code == 2 and "gpus: Input should be greater than 0" in err
    code, _, err = _run(server, token, "job", "12345")
    assert code == 1 and "not found" in err
    code, _, err = _run(server, token, "token", "create", "--team", "x")
    assert code == 1 and "admin" in err


def test_logs_follow_streams_a_run_from_queued_to_done(server: LiveServer, tmp_path: Path) -> None:
    token = _run(server, ADMIN, "token", "create", "--team", "fsd")[1].strip()
    job = tmp_path / "ticker.yaml"
    code = (
        "import time\\nfor i in range(3):\\n    print('tick', i, flush=True)\\n    time.sleep(0.3)"
    )
    job.write_text(
        f'name: ticker\ngpus: 1\nduration_s: 5\ncommand: [{sys.executable}, -c, "{code}"]\n'
    )
    out = json.loads(_run(server, token, "submit", str(job), "--json")[1])
    # Followed from submission on: the stream waits for the start and ends with the run.
    code_, text, err = _run(server, token, "logs", str(out[0]["id"]), "-f")
    assert code_ == 0, err
    assert text == "tick 0\ntick 1\ntick 2\n"
