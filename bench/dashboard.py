"""The web dashboard at full scale (issue 15's targets): `cortex-2024`, a modelled 100k-GPU fleet
(12,500 nodes), about 95% busy with a few thousand jobs, 1% of nodes down, a queue waiting;
served by uvicorn on 127.0.0.1 and loaded in headless Chromium (Debian's, via Playwright).

- first paint: navigation start to the heatmap's first draw (`performance.mark` in
  static/heatmap.js: the overview rendered, the fleet's shape and the binary snapshot
  fetched, 12,500 cells drawn), and to the first contentful paint; target <= 1 s.
  Baseline in the same run: the login page's first contentful paint (no data, no script
  work), so a loaded machine shows as a ratio too.
- redraw: `cortexHeatmap.redraw()` on the loaded page, the canvas drawn again from the state
  bytes, nodes in order and grouped by pod; target <= 100 ms.
- largest response: every response the pages load, plus the biggest fragment pages (200 jobs
  a page); target <= 1 MB.
- the operator's views (the `cap` power policy under the fleet's 130 MW site cap): the power
  and goodput pages' first contentful paint (and the goodput page's books on screen), the
  heatmap redrawn grouped by hall and colored by power, and the server's time for them, the
  why panel with its blocking jobs and a busy node's detail with its blast radius, the power
  forecast, the heatmap's cooling snapshot and a running job's page with its efficiency.

To compare with an older tree in the same session, run this file against its source:
`PYTHONPATH=/path/to/old/src python bench/dashboard.py` (views it lacks are left out).

    python bench/dashboard.py          # about a minute on 2 cores; bench/out/dashboard.json
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
ADMIN = "ctx_bench-dashboard-admin"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
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
LOADS = 5  # page loads measured (after one warm-up)
REDRAWS = 20
SIZES = (8, 8, 16, 32, 64, 64, 128, 256)  # GPUs of the running jobs (drawn, seeded)
SMALL = (1, 2, 4)  # a few small jobs leave nodes partly used
FILL = 0.95
QUEUED = 2000
DOWN_SHARE = 0.01
TEAMS = ("fsd", "optimus", "research", "infra")


class StandIn:
    """Executor stand-in: launches nothing, never exits; reports some nodes lost once."""

    def __init__(self, lost: list[str]) -> None:
        self.lost = lost

    def launch(self, spec: Any) -> Any:
        return SimpleNamespace(to_dict=lambda: {"job_id": spec.job_id, "attempt": spec.attempt})

    def terminate(self, job_id: int, attempt: int, reason: str = "preempt") -> None:
        pass

    def poll(self) -> list[Any]:
        return []

    def node_changes(self) -> list[tuple[str, bool]]:
        out, self.lost = [(n, False) for n in self.lost], []
        return out

    def adopt(self, handle: Any) -> bool:
        return True

    def kill(self, handle: Any) -> None:
        pass

    def live_handles(self) -> list[Any]:
        return []

    def log_paths(self, job_id: int, attempt: int) -> tuple[Path, Path]:
        return Path("/dev/null"), Path("/dev/null")


def build_service(home: Path) -> Any:
    from cortex.control import store
    from cortex.control.config import Settings
    from cortex.control.schemas import SubmitRequest
    from cortex.control.service import Service
    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build

    spec = load_fleet_spec("cortex-2024")
    topo = build(spec)
    names = [f"node-{i:05d}" for i in range(topo.n_nodes)]
    rng = random.Random(1)
    lost = rng.sample(names, int(DOWN_SHARE * topo.n_nodes))
    inv = SimpleNamespace(
        kind="gpu",
        flavor=topo.flavors[0],
        count=topo.total_gpus,
        devices=list(range(topo.total_gpus)),
        spec=spec,
        names=names,
    )
    assert spec.site.power_cap_mw is not None
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'cortex.db'}",
        admin_token=ADMIN,
        tick_s=1.0,
        power_policy="cap",
        site_cap_kw=spec.site.power_cap_mw * 1e3,
        power_actuator="none",
    )
    svc = Service(settings, executor=StandIn(lost), inventory=inv, node_name="bench")

    def body(gpus: int, cls: str = "normal") -> SubmitRequest:
        return SubmitRequest.model_validate(
            {
                "name": f"job-{gpus}",
                "team": rng.choice(TEAMS),
                "gpus": gpus,
                "duration_s": rng.uniform(3600, 86400),
                "command": ["true"],
                "priority_class": cls,
            }
        )

    now = time.time()
    with svc.sessions.begin() as s:
        for t in TEAMS:
            store.ensure_team(s, t, now)
        total, running = 0, []
        while total < FILL * topo.total_gpus:
            g = rng.choice(SIZES) if rng.random() > 0.1 else rng.choice(SMALL)
            running.append(body(g))
            total += g
        store.insert_jobs(s, running, now)
    svc.loop.queues_dirty = True
    t0 = time.perf_counter()
    for _ in range(10):  # nodes lost, the fleet filled (a tick launches a bounded number)
        before = len(svc.loop.view.devices)
        svc.loop.tick()
        if len(svc.loop.view.devices) == before:
            break
    fill_s = time.perf_counter() - t0
    with svc.sessions.begin() as s:
        store.insert_jobs(s, [body(rng.choice(SIZES)) for _ in range(QUEUED)], now)
    svc.loop.tick()
    print(
        f"fleet: {topo.n_nodes} nodes, {topo.total_gpus} GPUs, {len(running)} jobs submitted, "
        f"{len(svc.loop.view.devices)} running ({svc.loop.view.gpus_used} GPUs) after "
        f"{fill_s:.1f} s of ticks, {QUEUED} more queued",
        file=sys.stderr,
    )
    return svc


def serve(svc: Any) -> tuple[Any, threading.Thread, str]:
    import uvicorn

    config = uvicorn.Config(
        svc.app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, th, f"http://127.0.0.1:{port}"


def paint_ms(page: Any) -> dict[str, float]:
    return page.evaluate(
        """() => {
            const fcp = performance.getEntriesByName('first-contentful-paint')[0];
            const hm = performance.getEntriesByName('heatmap-drawn')[0];
            return {fcp: fcp ? fcp.startTime : null, heatmap: hm ? hm.startTime : null};
        }"""
    )


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 1), "max": round(max(xs), 1)}


def measure(base: str) -> dict[str, Any]:
    OUT.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    sizes: dict[str, int] = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = b.new_context(viewport={"width": 1280, "height": 900})
        page = ctx.new_page()

        def sized(resp: Any) -> None:
            path = resp.url.replace(base, "")
            with contextlib.suppress(PlaywrightError):  # a redirect has no body
                sizes[path] = max(sizes.get(path, 0), len(resp.body()))

        page.on("response", sized)
        # When the goodput page's books first show (rendered with the page or swapped in by
        # its fragment), taken in the page itself: a Playwright round trip after the wait
        # would add its own latency.
        page.add_init_script(
            """new MutationObserver((_, obs) => {
                if (document.getElementById('goodput-total')) {
                    window.__goodputShown = performance.now(); obs.disconnect();
                }
            }).observe(document, {childList: true, subtree: true});"""
        )
        login_fcp = []
        for _ in range(LOADS):
            page.goto(base + "/ui/login")
            page.wait_for_function(
                "() => performance.getEntriesByName('first-contentful-paint').length"
            )
            login_fcp.append(paint_ms(page)["fcp"])
        page.fill("#token", ADMIN)
        page.click("button[type=submit]")
        page.wait_for_selector("#heatmap[data-drawn]")
        loads = []
        for _ in range(LOADS):
            page.goto(base + "/ui/")
            page.wait_for_selector("#heatmap[data-drawn]")
            loads.append(paint_ms(page))
        redraws = [page.evaluate("() => window.cortexHeatmap.redraw()") for _ in range(REDRAWS)]
        page.select_option("#heat-layout", "pods")
        page.wait_for_function("() => window.cortexHeatmap.layout.how === 'pods'")
        pods = [page.evaluate("() => window.cortexHeatmap.redraw()") for _ in range(REDRAWS)]
        page.screenshot(path=str(OUT / "dashboard-pods.png"), full_page=True)
        page.select_option("#heat-layout", "halls")
        page.wait_for_function("() => window.cortexHeatmap.layout.how === 'halls'")
        page.select_option("#heat-color", "power")
        page.wait_for_function("() => window.cortexHeatmap.dataMode === 'power'")
        halls = [page.evaluate("() => window.cortexHeatmap.redraw()") for _ in range(REDRAWS)]
        page.screenshot(path=str(OUT / "dashboard-halls-power.png"), full_page=True)
        views: dict[str, list[float]] = {"/ui/power": [], "/ui/goodput": []}
        figures: list[float] = []  # the goodput page's books on screen, not only its shell
        for path, xs in views.items():
            for i in range(LOADS):
                # Each goodput load asks another window: its books are never the cached ones.
                page.goto(base + path + (f"?hours={24 - i}" if "goodput" in path else ""))
                page.wait_for_function(
                    "() => performance.getEntriesByName('first-contentful-paint').length"
                )
                xs.append(paint_ms(page)["fcp"])
                if "goodput" in path:
                    page.wait_for_function("() => window.__goodputShown", timeout=60_000)
                    figures.append(page.evaluate("() => window.__goodputShown"))
            page.screenshot(
                path=str(OUT / f"dashboard{path.replace('/', '-')}.png"), full_page=True
            )
        for path in (
            "/ui/jobs?state=all&per_page=200",
            "/ui/fragments/jobs?state=waiting&per_page=200",
            "/ui/quotas",
            "/ui/incidents",
        ):
            page.goto(base + path)
        b.close()
    heat = [x["heatmap"] for x in loads]
    fcp = [x["fcp"] for x in loads]
    return {
        "first_paint_heatmap_ms": _stats(heat),
        "first_contentful_paint_ms": _stats(fcp),
        "baseline_login_fcp_ms": _stats(login_fcp),
        "ratio_heatmap_to_login_fcp": round(
            statistics.median(heat) / statistics.median(login_fcp), 2
        ),
        "redraw_ms": _stats(redraws),
        "redraw_grouped_by_pod_ms": _stats(pods),
        "redraw_by_hall_power_ms": _stats(halls),
        "power_page_fcp_ms": _stats(views["/ui/power"]),
        "goodput_page_fcp_ms": _stats(views["/ui/goodput"]),  # uncached: a new window each
        "goodput_figures_shown_ms": _stats(figures),  # navigation start to the books shown
        "largest_response": max(sizes.items(), key=lambda kv: kv[1]),
        "responses_bytes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:8]),
    }


def server_ms(base: str, svc: Any) -> dict[str, dict[str, float]]:
    """Time to a whole response for the first paint's own requests (no browser), so a slow
    first paint can be told apart from a slow server (the scheduler loop shares the GIL); and
    for the operator's views, with their sizes."""
    import httpx

    loop = svc.loop
    waiting = next(iter(loop.why.current.blockers), None)
    busy = next(n for n, jobs in enumerate(list(loop.mirror.state.node_jobs)) if jobs)
    paths = ["/ui/", "/ui/heatmap/meta", "/ui/heatmap.bin", "/ui/static/heatmap.js"]
    paths += ["/ui/power", "/ui/goodput", "/ui/heatmap.bin?color=power"]
    paths += ["/ui/power/forecast.json", "/ui/heatmap.bin?color=cooling"]
    running = next(iter(loop.mirror.placement), None)
    paths += [f"/ui/jobs/{running}"] if running is not None else []
    paths += [f"/ui/fragments/node?index={busy}"]
    paths += [f"/ui/fragments/why/{waiting}"] if waiting is not None else []
    from cortex.control.ui.goodput_view import goodput_page

    out = {}
    books = []
    for _ in range(LOADS):  # the goodput page's booking itself, never cached
        with svc.sessions() as s:
            t0 = time.perf_counter()
            goodput_page(svc, s, None, 24.0)
            books.append((time.perf_counter() - t0) * 1e3)
    out["goodput books (in process, uncached)"] = _stats(books)
    with httpx.Client(base_url=base, timeout=30) as c:
        c.post("/ui/login", data={"token": ADMIN})
        cookie = {"Cookie": f"cortex_ui_token={ADMIN}"}  # Secure: httpx keeps it for HTTPS
        for path in paths:
            xs = []
            for _ in range(LOADS * 2):
                t0 = time.perf_counter()
                r = c.get(path, headers=cookie)
                xs.append((time.perf_counter() - t0) * 1e3)
                if r.status_code in (404, 422):  # a view the code measured does not have
                    break
                assert r.status_code == 200, (path, r.status_code)
            if r.status_code == 200:
                out[path] = {**_stats(xs), "bytes": len(r.content)}
    return out


def main() -> None:
    if not Path(CHROMIUM).exists():
        sys.exit(f"error: {CHROMIUM}: not found (apt-get install -y chromium fonts-liberation)")
    home = Path(tempfile.mkdtemp(prefix="cortex-bench-ui-"))
    svc = build_service(home)
    server, th, base = serve(svc)
    try:
        res = measure(base)
        res["server_ms"] = server_ms(base, svc)
    finally:
        server.should_exit = True
        th.join(timeout=10)
        svc.close()
        shutil.rmtree(home, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dashboard.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
