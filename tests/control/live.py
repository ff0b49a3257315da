"""A real `cortex serve` in a subprocess on 127.0.0.1 and a random port, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from cortex.control import db
from cortex.control import models as m

ADMIN = "ctx_e2e-admin-token"
WAIT_S = 60.0


class LiveServer:
    def __init__(self, home: Path, url: str, *, slots: int = 2, grace_s: float = 10.0) -> None:
        self.home, self.url, self.slots, self.grace_s = home, url, slots, grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log = home / "serve.log"
        self._clients: list[httpx.Client] = []
        self.extra_env: dict[str, str] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # The first start binds port 0 and reads the port the OS chose from uvicorn's log, so no
        # other process can take it between a probe and the bind; a restart keeps the address.
        fresh = self.port == 0
        logged = self.log.stat().st_size if self.log.exists() else 0
        env = {
            **os.environ,
            "CORTEX_ADMIN_TOKEN": ADMIN,
            "CORTEX_DATABASE_URL": self.url,
            "CORTEX_MIN_RUNTIME_S": "0",
            "CORTEX_TICK_S": "0.1",
            "CORTEX_MAX_RETRIES": "1",
            # Tests (root in CI) run jobs as their own user unless they map teams to users.
            "CORTEX_ALLOW_SAME_USER": "1",
            # Tests' working dirs lie under the temp dir.
            "CORTEX_WORKDIR_ROOTS": json.dumps({"*": [tempfile.gettempdir()]}),
            **self.extra_env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cortex.cli.main",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--home",
                    str(self.home),
                    "--slots",
                    str(self.slots),
                    "--grace-s",
                    str(self.grace_s),
                    "--log-level",
                    "info" if fresh else "warning",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cortex serve exited: {self.log.read_text()[-3000:]}")
            if self.port == 0:
                self.port = _logged_port(self.log, logged)
                if self.port == 0:
                    time.sleep(0.05)
                    continue
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("cortex serve did not come up")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup_runs(self) -> None:
        """Close clients; kill any job process a test left behind (they run detached)."""
        for c in self._clients:
            c.close()
        from cortex.executors.local.executor import LocalExecutor

        ex = LocalExecutor(self.home / "runs")
        for h in ex.live_handles():
            ex.kill(h)

    # ---- API helpers ---------------------------------------------------------------------
    def client(self, token: str = ADMIN) -> httpx.Client:
        c = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self._clients.append(c)
        return c

    def team_token(self, team: str) -> str:
        with httpx.Client(base_url=self.base, timeout=30) as c:
            r = c.post(
                "/v1/tokens", json={"team": team}, headers={"Authorization": f"Bearer {ADMIN}"}
            )
            r.raise_for_status()
            return str(r.json()["token"])

    def rows(self, model: Any, *where: Any) -> list[Any]:
        engine = db.make_engine(self.url)
        try:
            with db.sessions(engine)() as s:
                return list(s.scalars(select(model).where(*where)).all())
        finally:
            engine.dispose()

    def active_allocations(self) -> list[m.Allocation]:
        return self.rows(m.Allocation, m.Allocation.active.is_(True))


def _logged_port(log: Path, offset: int) -> int:
    """The port in uvicorn's "Uvicorn running on http://127.0.0.1:PORT" line, or 0 (not yet)."""
    with log.open("rb") as f:
        f.seek(offset)
        m = re.search(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)", f.read())
    return int(m.group(1)) if m else 0


def wait_for(fn: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
