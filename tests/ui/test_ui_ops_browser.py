"""The operator's views in a real browser (Debian's Chromium through Playwright), on a live
server with the `cap` power policy over two halls of 8 nodes x 8 H100 (the second hall capped
at 0.05 MW of IT power): the power page and its refresh, the goodput page and its window
form, the heatmap grouped by hall and colored by modelled power, a node's blast radius from a
click, and the jobs blocking a waiting one in its why panel. No console error anywhere;
screenshots go to tmp/artifacts/ui."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uikit import ADMIN, LiveUi, Page, UiEnv, cell_pixel, cell_screen, fleet, serving

WAIT_MS = 60_000  # generous: see uikit.Page
POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[LiveUi]:
    home: Path = tmp_path_factory.mktemp("ui-ops-live")
    spec = fleet(halls=2, power_cap_mw=0.05)
    env = UiEnv(f"sqlite:///{home / 'cortex.db'}", home, spec, **POWER)
    with serving(env) as srv:
        yield srv


def _running(page: Page, env: UiEnv, jid: int) -> None:
    for _ in range(600):  # the live loop launches it (at most 60 s on a loaded machine)
        if env.ex.is_alive(jid):
            return
        page.page.wait_for_timeout(100)
    raise AssertionError(f"job {jid} did not start")


def _state(env: UiEnv, jid: int) -> str:
    return str(env.client.get(f"/v1/jobs/{jid}", headers=env.api(ADMIN)).json()["state"])


def _until(page: Page, env: UiEnv, jid: int, state: str) -> None:
    for _ in range(600):
        if _state(env, jid) == state:
            return
        page.page.wait_for_timeout(100)
    raise AssertionError(f"job {jid} is {_state(env, jid)}, not {state}")


def test_power_and_goodput_pages_render_refresh_and_filter(page: Page, live: LiveUi) -> None:
    env = live.env
    page.login(ADMIN)
    page.goto("/ui/power")
    page.page.wait_for_selector("#halls")
    assert "(IT cap)" in page.page.inner_text("#halls tr[data-hall='h2']")
    assert page.page.inner_text("#halls tr[data-hall='h1'] td.limit") == "none"
    assert page.page.inner_text("#held-jobs") == "0 jobs"
    jid = env.submit(env.fsd, gpus=8, name="draws-power")
    _running(page, env, jid)
    # The page refreshes itself (htmx, every 5 s): the job appears among the caps in force.
    page.page.wait_for_selector("#cap-levels tr[data-level='0']", timeout=WAIT_MS)
    assert page.page.inner_text("#cap-levels tr[data-level='0']").split() == ["0", "100%", "1", "8"]
    page.shot("power")
    env.ex.finish(jid)  # completes with no progress report: all of its held time productive
    _until(page, env, jid, "completed")
    page.goto("/ui/")  # the overview's goodput card loads after the page
    page.page.wait_for_selector("#overview-goodput", timeout=WAIT_MS)
    page.goto("/ui/goodput?hours=1")
    assert page.page.inner_text("#goodput-total") == "100.0%"
    width = page.page.get_attribute("#goodput svg.split rect[data-k='productive']", "width")
    assert width is not None and float(width) == 600.0  # the whole bar
    assert "no job lost GPU-time" in page.page.inner_text("#goodput-worst")
    page.page.select_option("#goodput-filter select[name=hours]", "6")
    page.page.click("#goodput-filter button[type=submit]")
    page.page.wait_for_selector("#goodput[hx-get*='hours=6']", timeout=WAIT_MS)
    assert page.page.inner_text("#goodput-total") == "100.0%"
    page.shot("goodput")
    page.assert_clean()


def test_heatmap_grouped_by_hall_colored_by_power_and_a_nodes_blast_radius(
    page: Page, live: LiveUi
) -> None:
    env = live.env
    loop = env.svc.loop
    jid = env.submit(env.fsd, gpus=8, name="fills-a-node")
    _running(page, env, jid)
    full = loop.mirror.placement[jid][0][0]
    idle = next(n for n in range(16) if n != full and not loop.mirror.state.node_jobs[n])
    page.login(ADMIN)
    page.page.wait_for_selector("#heatmap[data-drawn]")
    page.page.select_option("#heat-color", "power")
    page.page.wait_for_function("() => window.cortexHeatmap.dataMode === 'power'", timeout=WAIT_MS)
    states = page.page.evaluate("() => Array.from(window.cortexHeatmap.states)")
    # An idle H100 draws 96 W of its 700 W TDP (fleet/data/accelerators.csv): 96 / 700 x 200
    # = 27.4, byte 27. A full node draws its job's booked watts per GPU (GET /v1/power).
    assert states[idle] == 27
    site = env.client.get("/v1/power", headers=env.api(ADMIN)).json()
    per_gpu_w = next(j["modelled_w"] / 8 for j in site["jobs"] if j["job_id"] == jid)
    assert states[full] == round(per_gpu_w / 700 * 200)
    # The power ramp at 27 (static/heatmap.js: indigo (26, 35, 126) to purple (156, 39, 176)
    # over 0..100): 27 / 100 of the way, (26 + 130 x 0.27, 35 + 4 x 0.27, 126 + 50 x 0.27)
    # = (61.1, 36.1, 139.5), rounded (61, 36, 140).
    assert cell_pixel(page, idle) == (61, 36, 140)
    assert cell_pixel(page, full) != cell_pixel(page, idle)
    # Grouped by hall: every cell maps back to its node, and the tooltip names the hall.
    page.page.select_option("#heat-layout", "halls")
    page.page.wait_for_function("() => window.cortexHeatmap.layout.how === 'halls'")
    assert page.page.evaluate(
        """() => { const L = window.cortexHeatmap.layout, out = [];
                   for (let i = 0; i < L.n; i++) {
                       const [c, r] = L.origin(i); out.push(L.at(c, r)); }
                   return out; }"""
    ) == list(range(16))
    for node, hall in ((0, "h1"), (8, "h2")):
        x, y = cell_screen(page, node)
        page.page.mouse.move(x, y)
        assert f"node #{node} · {hall} ·" in page.page.inner_text("#heat-tip")
    page.shot("heatmap-halls-power")
    # Grouped by rack (2 nodes a rack here: 8 racks): the layout maps back, and nodes 0 and 1
    # (rack 0) sit in one block, node 2 (rack 1) in the next one, a gap column between.
    page.page.select_option("#heat-layout", "racks")
    page.page.wait_for_function("() => window.cortexHeatmap.layout.how === 'racks'")
    cells = page.page.evaluate(
        """() => { const L = window.cortexHeatmap.layout, out = [];
                   for (let i = 0; i < L.n; i++) {
                       const [c, r] = L.origin(i); out.push([c, r, L.at(c, r)]); }
                   return out; }"""
    )
    assert [x[2] for x in cells] == list(range(16))
    (c0, r0, _), (c1, r1, _), (c2, _, _) = cells[:3]
    assert r0 == r1 and c1 == c0 + 1  # one block of 2 x 1 cells
    assert c2 == c1 + 2  # the next block, after a one-cell gap
    page.page.select_option("#heat-layout", "halls")
    page.page.wait_for_function("() => window.cortexHeatmap.layout.how === 'halls'")
    x, y = cell_screen(page, full)
    page.page.mouse.click(x, y)
    row = page.page.wait_for_selector(f"#blast tr[data-job='{jid}']", timeout=WAIT_MS)
    assert row is not None and "fills-a-node" in row.inner_text()
    assert page.page.inner_text("#blast-total").startswith("1 jobs, 8 GPUs")
    page.shot("node-blast-radius")
    env.client.post(f"/v1/jobs/{jid}/cancel", headers=env.api(ADMIN))
    _until(page, env, jid, "cancelled")
    page.assert_clean()


def test_the_why_panel_names_the_jobs_that_block(page: Page, live: LiveUi) -> None:
    """h2's 0.05 MW cap leaves room for about 32 busy GPUs there: a 64-GPU job fills h1 and a
    32-GPU job half of h2; a 40-GPU job then finds 32 free and waits for capacity, and the
    jobs whose end would free the 8 more it needs are among those two."""
    env = live.env
    fillers = [env.submit(env.fsd, gpus=64, name="filler-64")]
    _running(page, env, fillers[0])
    fillers.append(env.submit(env.fsd, gpus=32, name="filler-32"))
    _running(page, env, fillers[1])
    jid = env.submit(env.fsd, gpus=40, name="waits")
    page.login(env.fsd)
    page.goto("/ui/jobs?state=all")
    page.page.wait_for_selector(f"#job-{jid}.state-queued button.link", timeout=WAIT_MS)
    page.page.click(f"#job-{jid} button.link >> text=why")
    page.page.wait_for_selector(f"#blocking-{jid} tr[data-job]", timeout=WAIT_MS)
    assert "InsufficientCapacity" in page.page.inner_text(f"#why-{jid}")
    listed = page.page.eval_on_selector_all(
        f"#blocking-{jid} tr[data-job]", "rows => rows.map(r => Number(r.dataset.job))"
    )
    assert listed and set(listed) <= set(fillers)
    assert "filler-" in page.page.inner_text(f"#blocking-{jid}")
    page.shot("why-blocking")
    for j in (jid, *fillers):
        env.client.post(f"/v1/jobs/{j}/cancel", headers=env.api(ADMIN))
    page.assert_clean()


def test_the_job_page_charts_its_progress(page: Page, live: LiveUi) -> None:
    import json
    import time

    env = live.env
    jid = env.submit(env.fsd, gpus=1, name="learns")
    _running(page, env, jid)
    now = time.time()
    lines = [{"ts": now + i, "attempt": 1, "step": 10 * i, "loss": 5.0 - i} for i in range(4)]
    path = env.ex.metrics_file(jid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    page.login(env.fsd)
    page.goto(f"/ui/jobs/{jid}")
    page.page.wait_for_selector("#progress-chart[data-drawn='4'] canvas", timeout=WAIT_MS)
    assert page.page.is_hidden("#progress-empty")
    assert "loss" in page.page.inner_text("#progress-chart")  # uPlot's legend
    page.shot("job-progress")
    env.client.post(f"/v1/jobs/{jid}/cancel", headers=env.api(ADMIN))
    _until(page, env, jid, "cancelled")
    page.assert_clean()


def test_the_timeline_lanes_by_pod_in_the_browser(page: Page, live: LiveUi) -> None:
    env = live.env
    jid = env.submit(env.fsd, gpus=8, name="in-a-pod")
    _running(page, env, jid)
    pod = env.svc.loop.topo.node_pod[env.svc.loop.mirror.placement[jid][0][0]]
    page.login(env.fsd)
    page.goto("/ui/timeline")
    page.page.wait_for_selector("#timeline[data-drawn]")
    page.page.select_option("#timeline-by", "pod")
    page.page.wait_for_function("() => window.cortexTimeline.data.by === 'pod'", timeout=WAIT_MS)
    lanes = page.page.evaluate(
        "(id) => { const t = window.cortexTimeline;"
        " return t.rows.filter(r => r.job.id === id).map(r => t.laneOf(r.job)); }",
        jid,
    )
    assert lanes == [f"pod {pod}"]
    page.shot("timeline-pods")
    env.client.post(f"/v1/jobs/{jid}/cancel", headers=env.api(ADMIN))
    _until(page, env, jid, "cancelled")
    page.assert_clean()
