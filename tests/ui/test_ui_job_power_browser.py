"""A job's power chart in a real browser (Debian's Chromium through Playwright): the live loop
samples its draw (every 0.5 s here, instead of 15 s, so the test does not wait) and the job
page draws it with uPlot. No console error; screenshots go to tmp/artifacts/ui."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uikit import ADMIN, LiveUi, Page, UiEnv, cell_pixel, cell_screen, serving

from cortex.control import power_history

WAIT_MS = 60_000  # generous: see uikit.Page
POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveUi]:
    monkeypatch.setattr(power_history, "SAMPLE_S", 0.5)
    env = UiEnv(f"sqlite:///{tmp_path / 'cortex.db'}", tmp_path, **POWER)
    with serving(env) as srv:
        yield srv


def test_a_running_jobs_page_charts_its_draw_over_time(browser: Any, live: LiveUi) -> None:
    env = live.env
    jid = env.submit(env.fsd, gpus=8, name="draws-power")
    page = Page(browser, live.base)
    try:
        for _ in range(600):  # the live loop launches it
            if env.ex.is_alive(jid):
                break
            page.page.wait_for_timeout(100)
        assert env.ex.is_alive(jid)
        page.page.wait_for_timeout(2000)  # a few samples
        page.login(env.fsd)
        page.goto(f"/ui/jobs/{jid}")
        page.page.wait_for_selector("#power-chart[data-drawn]", timeout=WAIT_MS)
        drawn = page.page.evaluate("() => window.cortexJobPower.points")
        assert drawn >= 2
        assert page.page.evaluate("() => window.cortexJobPower.measured") == 0  # no meter here
        assert page.page.locator("#power-chart canvas").count() >= 1
        assert "modelled W" in page.page.inner_text("#power-chart")
        assert page.page.is_hidden("#power-empty")
        page.page.evaluate("() => window.cortexJobPower.refresh()")
        page.page.wait_for_function(
            f"() => window.cortexJobPower.points > {drawn}", timeout=WAIT_MS
        )
        page.shot("job-power")
        page.assert_clean()
    finally:
        page.close()
        env.ex.finish(jid)


def test_the_heatmap_colors_nodes_by_gpu_temperature(page: Page) -> None:
    """Nothing runs: every H100 idles at 96 W, 28.0 + 0.0426 x 96 = 32.09 C, byte 32. On the
    temperature ramp (static/heatmap.js: 25 C (49, 54, 149) to 55 C (254, 224, 144)) that is
    (32 - 25) / 30 = 0.2333 of the way: (49 + 205 x 0.2333, 54 + 170 x 0.2333, 149 - 5 x
    0.2333) = (96.8, 93.7, 147.8), rounded (97, 94, 148)."""
    page.login(ADMIN)
    page.page.wait_for_selector("#heatmap[data-drawn]")
    page.page.select_option("#heat-color", "temp")
    page.page.wait_for_function("() => window.cortexHeatmap.dataMode === 'temp'", timeout=WAIT_MS)
    assert page.page.evaluate("() => Array.from(window.cortexHeatmap.states)") == [32] * 8
    assert cell_pixel(page, 5) == (97, 94, 148)
    assert page.page.is_visible(".legend[data-mode='temp']")
    x, y = cell_screen(page, 5)
    page.page.mouse.move(x, y)
    assert "GPUs 32 °C (modelled from draw)" in page.page.inner_text("#heat-tip")
    page.shot("heatmap-temp")
    page.assert_clean()


@pytest.fixture
def live_battery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveUi]:
    from cortex.control import live_battery

    monkeypatch.setattr(live_battery, "STEP_S", 0.5)  # the dispatch's step, so no wait here
    battery = {"battery_mwh": 0.01, "battery_mw": 0.05}
    env = UiEnv(f"sqlite:///{tmp_path / 'cortex.db'}", tmp_path, **POWER, **battery)
    with serving(env) as srv:
        yield srv


def test_the_power_page_shows_the_battery_and_charts_its_charge(
    browser: Any, live_battery: LiveUi
) -> None:
    """Nothing runs and the idle draw is flat: the battery stays at its 50% target."""
    page = Page(browser, live_battery.base)
    try:
        page.page.wait_for_timeout(1500)  # a few 0.5 s steps
        page.login(live_battery.env.fsd)
        page.goto("/ui/power")
        assert page.page.inner_text("#battery-soc") == "50.0%"
        page.page.wait_for_selector("#battery-chart[data-drawn]", timeout=WAIT_MS)
        assert page.page.evaluate("() => window.cortexBatteryChart.points") >= 1
        assert page.page.locator("#battery-chart canvas").count() >= 1
        page.shot("power-battery")
        page.assert_clean()
    finally:
        page.close()
