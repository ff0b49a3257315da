"""`cortex serve --executor ray` as the Ray end-to-end tests start it (a real subprocess, see
tests/control/live.py): the same settings for every test that talks to a loopback cluster."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "control"))
from live import LiveServer


def ray_server(root: Path, ray_address: str) -> LiveServer:
    """A started service on SQLite under `root`, joined to the Ray cluster at `ray_address`."""
    srv = LiveServer(root / "home", f"sqlite:///{root / 'cortex.db'}", grace_s=5.0)
    srv.home.mkdir()
    srv.extra_env = {
        "CORTEX_EXECUTOR": "ray",
        "CORTEX_RAY_ADDRESS": ray_address,
        "CORTEX_RAY_PG_TIMEOUT_S": "120",  # generous: a timeout here is a new attempt
        "CORTEX_RETRY_BACKOFF_BASE_S": "0",
        "CORTEX_RETRY_BACKOFF_MAX_S": "0",
    }
    srv.start()
    return srv
