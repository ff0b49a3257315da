"""The power forecast, the heatmap's temperature coloring and a job's efficiency in a real
browser (Debian's Chromium through Playwright), on a live server with the `cap` power policy
over two halls of 8 nodes x 8 H100, the second with 0.1 MW of rated cooling. No console error
anywhere; screenshots go to tmp/artifacts/ui. The tests share one live server and run in
order: the first two leave nothing running."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uikit import ADMIN, LiveUi, Page, UiEnv, cell_pixel, cell_screen, fleet, serving

WAIT_MS = 60_000  # generous: see uikit.Page
POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[LiveUi]:
    home: Path = tmp_path_factory.mktemp("ui-power-live")
    env = UiEnv(f"sqlite:///{home / 'cortex.db'}", home, fleet(halls=2, cooling_mw=0.1), **POWER)
    with serving(env) as srv:
        yield srv


def test_the_power_page_charts_the_forecast_and_says_there_is_no_battery(
    page: Page, live: LiveUi
) -> None:
    page.login(ADMIN)
    page.goto("/ui/power")
    page.page.wait_for_selector("#forecast-chart[data-drawn]", timeout=WAIT_MS)
    # 24 hours every 5 minutes: 24 x 12 + 1 = 289 samples, drawn by uPlot into a canvas.
    assert page.page.evaluate("() => window.cortexPowerChart.points") == 289
    assert page.page.locator("#forecast-chart canvas").count() >= 1
    span = page.page.evaluate(
        "() => { const t = window.cortexPowerChart.body.t; return t.at(-1) - t[0]; }"
    )
    assert span == pytest.approx(24 * 3600)
    assert "0 running jobs in it" in page.page.inner_text("#forecast-summary")
    assert page.page.inner_text("#battery-none") == "none"
    page.page.select_option("#forecast-hours", "6")
    page.page.wait_for_function(
        "() => { const t = window.cortexPowerChart.body.t; return t.at(-1) - t[0] === 6 * 3600; }",
        timeout=WAIT_MS,
    )
    # The htmx refresh of the page's figures (every 5 s) leaves the chart in place.
    page.page.wait_for_timeout(5500)
    assert page.page.locator("#forecast-chart canvas").count() >= 1
    page.shot("power-forecast")
    page.assert_clean()


def test_the_heatmap_colors_nodes_by_their_halls_modelled_cooling_load(
    page: Page, live: LiveUi
) -> None:
    """Nothing runs: h2 (nodes 8-15) draws its idle base, 64 x 96 W idle GPUs + 8 nodes x
    3,400 W overhead (fleet catalog) = 33,344 W, against 100,000 W of cooling at 20 C (under
    its 35 C rating): 33,344 / 100,000 x 200 = 66.7, byte 67. On the cooling ramp
    (static/heatmap.js: (49, 54, 149) to (254, 224, 144) over 0..100) that is 0.67 of the
    way: (49 + 205 x 0.67, 54 + 170 x 0.67, 149 - 5 x 0.67) = (186.4, 167.9, 145.7), rounded
    (186, 168, 146). h1 has no rated cooling: byte 254, drawn (66, 66, 66)."""
    page.login(ADMIN)
    page.page.wait_for_selector("#heatmap[data-drawn]")
    page.page.select_option("#heat-color", "cooling")
    page.page.wait_for_function(
        "() => window.cortexHeatmap.dataMode === 'cooling'", timeout=WAIT_MS
    )
    states = page.page.evaluate("() => Array.from(window.cortexHeatmap.states)")
    assert states == [254] * 8 + [67] * 8
    assert cell_pixel(page, 3) == (66, 66, 66)
    assert cell_pixel(page, 12) == (186, 168, 146)
    assert page.page.is_visible(".legend[data-mode='cooling']")
    assert page.page.inner_text("#outdoor-c") == "20.0"
    x, y = cell_screen(page, 12)
    page.page.mouse.move(x, y)
    tip = page.page.inner_text("#heat-tip")
    assert "hall cooling at 34% of capacity at 20.0 °C outdoor (modelled)" in tip
    page.shot("heatmap-cooling")
    page.assert_clean()


def test_a_running_jobs_page_charts_samples_per_s_and_shows_its_efficiency(
    page: Page, live: LiveUi
) -> None:
    """Its metrics file reports 200 then 240 samples/s: 240 / 8 GPUs = 30.00 per GPU."""
    env = live.env
    jid = env.submit(env.fsd, gpus=8, name="measures-itself")
    for _ in range(600):  # the live loop launches it
        if env.ex.is_alive(jid):
            break
        page.page.wait_for_timeout(100)
    assert env.ex.is_alive(jid)
    now = time.time()
    lines = [
        {"ts": now - 2, "attempt": 1, "step": 10, "loss": 3.0, "samples_per_s": 200.0},
        {"ts": now - 1, "attempt": 1, "step": 20, "loss": 2.5, "samples_per_s": 240.0},
    ]
    path = env.ex.metrics_file(jid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    page.login(env.fsd)
    page.goto(f"/ui/jobs/{jid}")
    page.page.wait_for_selector("#progress-chart[data-drawn]", timeout=WAIT_MS)
    assert page.page.evaluate("() => window.cortexJobChart.points") == 2
    legend = page.page.inner_text("#progress-chart")
    assert "samples/s" in legend
    assert page.page.inner_text("#eff-per-gpu") == "30.00 over 8 GPUs"
    assert "per kW, modelled draw" in page.page.inner_text("#job-efficiency")
    page.shot("job-efficiency")
    page.assert_clean()
    env.ex.finish(jid)
