"""Which modules a `cortex` command loads, run as a user runs it: a fresh interpreter, the
console script's `main()`, the modules listed after it returns. For the start-time guards
(tests/cli/test_cli_lazy_imports.py, tests/control/test_cli_start_imports.py): speed itself
is measured in bench/cli_start.py, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# What a client command must not load: the server stack and the twin (seconds of imports),
# pydantic (Typer builds an adapter per option; cli/fastparams.py answers plain values) and
# httpx (plain HTTP goes through the standard library: cli/http.py), Typer's Rich help
# (typer.rich_utils loads markdown-it and pygments: cli/main.py prints help in Click's layout).
SERVER_STACK = (
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "numpy", "scipy", "highspy",
    "prometheus_client", "pydantic_settings", "cortex.scheduler", "cortex.sim", "cortex.fleet",
    "cortex.workload", "cortex.drive", "cortex.control.service", "cortex.control.store",
    "cortex.control.api", "cortex.executors", "cortex.power", "cortex.planner",
)  # fmt: skip
CLIENT_FLOOR = (
    "pydantic", "pydantic_core", "typer._adapters", "click", "httpx", "httpcore", "h11", "anyio",
    "typer.rich_utils", "markdown_it", "pygments",
)  # fmt: skip

PROBE = r"""
import json, sys
sys.argv = ["cortex", *json.loads(sys.argv[1])]
from cortex.cli.main import main
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print("\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def run(args: list[str], env: dict[str, str]) -> tuple[object, str, set[str]]:
    """(exit code, stdout before the module list, modules loaded)."""
    keep = {k: os.environ[k] for k in ("PATH", "PYTHONPATH", "HOME") if k in os.environ}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**keep, "COLUMNS": "200", "NO_COLOR": "1", **env},
        timeout=120,
        check=False,
    )
    out, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    got = json.loads(last)
    return got["code"], out, set(got["modules"])


def heavy(mods: set[str]) -> list[str]:
    """The loaded modules a client command should not have loaded."""
    names = SERVER_STACK + CLIENT_FLOOR
    return sorted(m for m in mods if any(m == s or m.startswith(s + ".") for s in names))
