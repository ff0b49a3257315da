"""Builders for the dashboard's tests: a service on a modelled 8-node GPU fleet (2 pods of 4
nodes, 8 GPUs each) with the control-plane tests' fake executor, two teams with tokens, and
for the browser tests the same service behind a real uvicorn on 127.0.0.1 and a random port,
driven by Debian's Chromium through Playwright (shared/STACK.md; never `playwright install`)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

# The control-plane tests' fake executor and builders (tests/control has no package).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "control"))
from fakeexec import FakeExecutor, Spec

from cortex.control import store
from cortex.control.clock import SYSTEM, Clock
from cortex.control.config import Settings
from cortex.control.service import Service
from cortex.fleet.spec import FleetSpec, HallSpec, NodeGroup

ADMIN = "ctx_admin-secret-for-ui-tests"
FLAVOR = "H100-SXM5"
NODES, GPN = 8, 8
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "tmp" / "artifacts" / "ui"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


@dataclass
class FleetExecutor(FakeExecutor):
    """The fake executor, plus the multi-node executor's node reports (loop_fleet.py)."""

    changes: list[tuple[str, bool]] = field(default_factory=list)
    # The browser tests script exits from the test's thread while the live loop polls.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def node_changes(self) -> list[tuple[str, bool]]:
        with self.lock:
            out, self.changes = self.changes, []
        return out

    def report(self, node: str, alive: bool) -> None:
        with self.lock:
            self.changes.append((node, alive))

    def launch(self, spec: Any) -> Any:
        with self.lock:
            return super().launch(spec)

    def terminate(self, job_id: int, attempt: int, reason: str = "preempt") -> None:
        """The process exits on SIGTERM at once (a preempted one checkpointed)."""
        with self.lock:
            super().terminate(job_id, attempt, reason)
            outcome = "preempted" if reason == "preempt" else "cancelled"
            super().finish(job_id, outcome, None)

    def finish(self, job_id: int, outcome: str = "completed", code: int | None = 0) -> None:
        with self.lock:
            super().finish(job_id, outcome, code)

    def poll(self) -> list[Any]:
        with self.lock:
            return super().poll()

    def metrics_file(self, job_id: int) -> Path:
        """Where a job's metrics lines go (the local executor's CORTEX_METRICS_FILE): tests
        write them as the job would."""
        return Path(self.root) / f"metrics-{job_id}.jsonl"

    def is_alive(self, job_id: int) -> bool:
        with self.lock:
            return any(jid == job_id for jid, _ in self.alive)


def fleet(
    nodes: int = NODES, gpn: int = GPN, per_pod: int = 4, halls: int = 1, **hall: Any
) -> FleetSpec:
    """`halls` halls of `nodes` nodes each (named h1, h2, ...); `hall`: the last hall's
    HallSpec fields (power_cap_mw, cooling_mw)."""
    return FleetSpec(
        name="ui-test",
        halls=[
            HallSpec(
                name=f"h{i + 1}",
                groups=[
                    NodeGroup(
                        flavor=FLAVOR,
                        nodes=nodes,
                        gpus_per_node=gpn,
                        nodes_per_pod=per_pod,
                        nodes_per_rack=2,
                    )
                ],
                **(hall if i == halls - 1 else {}),
            )
            for i in range(halls)
        ],
    )


def make_service(
    url: str, home: Path, spec: FleetSpec, clock: Clock = SYSTEM, **kw: Any
) -> tuple[Service, Any]:
    n = sum(g.nodes for h in spec.halls for g in h.groups)
    gpn = spec.halls[0].groups[0].gpus_per_node
    inv = SimpleNamespace(
        kind="gpu",
        flavor=FLAVOR,
        count=n * gpn,
        devices=list(range(n * gpn)),
        spec=spec,
        names=[f"gpu-{i:05d}" for i in range(n)],
    )
    settings = Settings(
        home=home,
        database_url=url,
        admin_token=ADMIN,
        min_runtime_s=0.0,
        max_retries=0,
        tick_s=0.1,
        **kw,
    )
    ex = FleetExecutor(home / "runs")
    svc = Service(
        settings,
        executor=ex,
        inventory=inv,
        node_name="ui",
        launch_spec=Spec,
        handle_from_dict=lambda d: d,
        clock=clock,
    )
    svc.loop.retry_backoff_base_s = 0.0
    return svc, ex


class UiEnv:
    """A service with teams `fsd` and `red` (half the fleet guaranteed to fsd, a quarter to
    red), their tokens, and a TestClient over HTTPS (the cookie is Secure)."""

    def __init__(
        self,
        url: str,
        home: Path,
        spec: FleetSpec | None = None,
        clock: Clock = SYSTEM,
        **settings: Any,
    ) -> None:
        self.svc, self.ex = make_service(url, home, spec or fleet(), clock, **settings)
        self.client = TestClient(self.svc.app, base_url="https://testserver")
        now = clock.time()
        with self.svc.sessions.begin() as s:
            self.fsd, _ = store.create_token(s, "fsd", at=now)
            self.red, _ = store.create_token(s, "red", at=now)
            for q in store.queues(s):
                q.nominal_share = {"fsd": 0.5, "red": 0.25}.get(q.name, 0.0)
        self.svc.loop.queues_dirty = True
        self.svc.loop.tick()

    def api(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def submit(self, token: str, **kw: Any) -> int:
        body = {"name": "train", "gpus": 1, "duration_s": 3600, "command": ["true"], **kw}
        r = self.client.post("/v1/jobs", json=body, headers=self.api(token))
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def login(self, token: str) -> TestClient:
        """A fresh client signed in with `token` through the login form."""
        c = TestClient(self.svc.app, base_url="https://testserver")
        r = c.post("/ui/login", data={"token": token}, follow_redirects=False)
        assert r.status_code == 303, r.text
        return c


# ---- the browser -------------------------------------------------------------------------------
class LiveUi:
    """The service behind a real uvicorn in this process (its loop ticking), on 127.0.0.1."""

    def __init__(self, env: UiEnv) -> None:
        import uvicorn

        self.env = env
        config = uvicorn.Config(
            env.svc.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            # Open event streams would hold a shutdown up to their 25 s lifetime.
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def require_chromium() -> None:
    # CI sets CORTEX_REQUIRE_CHROMIUM: there a missing browser fails the run, not skips it.
    missing = pytest.fail if os.environ.get("CORTEX_REQUIRE_CHROMIUM") else pytest.skip
    if not Path(CHROMIUM).exists():
        missing(f"{CHROMIUM} not found (apt-get install -y chromium fonts-liberation)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")


class Page:
    """A browser page that records console errors and failed requests; the test asserts none
    happened (`assert_clean`) and saves a screenshot under tmp/artifacts/ui."""

    def __init__(self, browser: Any, base: str) -> None:
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        # Generous waits (Playwright's default is 30 s): Chromium beside the suite on a loaded
        # 2-core machine; failing slowly is fine, failing by chance is not.
        self.ctx.set_default_timeout(60_000)
        self.page = self.ctx.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else 0)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def login(self, token: str) -> None:
        self.goto("/ui/login")
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(self.base + "/ui/")

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors

    def assert_clean_except_status(self, *status: int) -> None:
        """No console error but the browser's own line for a page answered with one of
        `status` (a refused login is a 401, a bad filter a 422: meant, and shown in the page)."""
        other = [e for e in self.errors if not any(f"status of {s} " in e for s in status)]
        assert other == [], other

    def close(self) -> None:
        self.ctx.close()


def cell_pixel(page: Page, index: int, corner: bool = False) -> tuple[int, int, int]:
    """The color at the middle (or the top-left corner) of node `index`'s cell, read back
    from the canvas (`cortexHeatmap.origin`: the cell's top-left pixel in the layout drawn)."""
    return tuple(
        page.page.evaluate(
            """([i, corner]) => {
                const h = window.cortexHeatmap, c = document.getElementById('heatmap');
                const off = corner ? 0 : Math.floor(h.layout.cell / 2);
                const [x, y] = h.origin(i);
                const d = c.getContext('2d').getImageData(x + off, y + off, 1, 1).data;
                return [d[0], d[1], d[2]];
            }""",
            [index, corner],
        )
    )


def cell_screen(page: Page, index: int) -> tuple[float, float]:
    """Where on the screen the middle of node `index`'s heatmap cell is."""
    x, y = page.page.evaluate(
        """(i) => { const h = window.cortexHeatmap, [x, y] = h.origin(i);
                    const r = document.getElementById('heatmap').getBoundingClientRect();
                    return [r.left + x + h.layout.cell / 2, r.top + y + h.layout.cell / 2]; }""",
        index,
    )
    return float(x), float(y)


@contextmanager
def serving(env: UiEnv) -> Iterator[LiveUi]:
    """`env`'s service behind a live server; stopped, and the service closed, after."""
    srv = LiveUi(env)
    try:
        yield srv
    finally:
        srv.stop()
        env.svc.close()


@contextmanager
def browsing(browser: Any, base: str) -> Iterator[Page]:
    """A fresh page on `base`, closed after."""
    p = Page(browser, base)
    try:
        yield p
    finally:
        p.close()
