"""A client command imports no server stack: no FastAPI, SQLAlchemy, numpy, scheduler or twin
(each costs a user hundreds of milliseconds on every `cortex jobs`). Checked by the modules
loaded, in a fresh process, not by timing (bench/cli_start.py measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_STACK = (
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "numpy", "scipy", "highspy",
    "prometheus_client", "pydantic_settings", "cortex.scheduler", "cortex.sim", "cortex.fleet",
    "cortex.workload", "cortex.drive", "cortex.control.service", "cortex.control.store",
    "cortex.control.api", "cortex.executors", "cortex.power", "cortex.planner",
)  # fmt: skip

PROBE = r"""
import json, sys
sys.argv = ["cortex", *json.loads(sys.argv[1])]
from cortex.cli.main import main
try:
    main()
except SystemExit:
    pass
print("\n" + json.dumps(sorted(sys.modules)))
"""


def _loaded(args: list[str]) -> set[str]:
    # Port 9 (discard) on loopback: nothing listens, so the command runs to its request and
    # fails there, having imported all it imports before talking to the server.
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env={"CORTEX_URL": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def _stack(mods: set[str]) -> list[str]:
    return sorted(m for m in mods if any(m == s or m.startswith(s + ".") for s in SERVER_STACK))


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "-o", "wide"],
        ["job", "1"],
        ["cancel", "1", "2"],
        ["submit", "--duration-s", "5", "--", "python3", "-c", "pass"],
        ["queues", "--json"],
        ["why", "1"],
        ["events", "--parsable"],
        ["--version"],
        ["--help"],
    ],
)
def test_client_commands_import_no_server_stack(args: list[str]) -> None:
    mods = _loaded(args)
    assert "cortex.cli.main" in mods  # the probe ran
    assert _stack(mods) == []


def test_the_probe_sees_a_server_import() -> None:
    """The check can fail: `cortex sim --help` loads the twin and the scheduler."""
    mods = _loaded(["sim", "--help"])
    assert "cortex.scheduler" in _stack(mods) or any(
        m.startswith("cortex.scheduler.") for m in _stack(mods)
    )
