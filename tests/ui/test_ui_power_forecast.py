"""The power page's forecast and battery panel through the server (no browser): the site's
facility draw as the running jobs end at their estimated ends, against the cap; bounded
parameters; no battery figure where the control plane has no battery."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fakeclock import FakeClock
from uikit import ADMIN, UiEnv, fleet

POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


def test_the_forecast_steps_down_as_the_running_jobs_reach_their_estimated_ends(
    tmp_path: Path,
) -> None:
    """On a fake clock from t0: fsd's 8-GPU job of 3,600 s and red's 8-GPU job of 7,200 s
    start at t0 (H100, the throughput table's reference: speed 1.0, so their estimated ends
    are t0 + 3,600 and t0 + 7,200). Asked for 3 hours in 4 points (t0, +1 h, +2 h, +3 h): at
    t0 both draw (GET /v1/power's facility figure); at +1 h the first has ended (an end at a
    sample counts as over), at +2 h both, so +2 h and +3 h are the idle fleet's draw (GET
    /v1/power before any job). Facility power is linear in IT power at one temperature and
    the two jobs are booked alike, so +1 h is halfway between the two."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, fleet(halls=2), clock, **POWER)
    try:
        idle_w = env.client.get("/v1/power", headers=env.api(ADMIN)).json()["facility_kw"] * 1e3
        env.submit(env.fsd, gpus=8, duration_s=3600, name="one-hour")
        env.submit(env.red, gpus=8, duration_s=7200, name="two-hours")
        env.svc.loop.tick()
        assert len(env.svc.loop.mirror.placement) == 2
        now_w = env.client.get("/v1/power", headers=env.api(ADMIN)).json()["facility_kw"] * 1e3
        assert now_w > idle_w
        fsd = env.login(env.fsd)
        r = fsd.get("/ui/power/forecast.json?hours=3&points=4")
        assert r.status_code == 200, r.text
        body = r.json()
        t0 = clock.time()
        assert body["t"] == pytest.approx([t0, t0 + 3600, t0 + 7200, t0 + 10800])
        f = body["facility_w"]
        assert f[0] == pytest.approx(now_w)
        assert f[2] == pytest.approx(idle_w) and f[3] == pytest.approx(idle_w)
        assert f[1] == pytest.approx((now_w + idle_w) / 2)
        assert body["cap_w"] == pytest.approx(1_000_000.0)
        assert body["jobs"] == 2 and body["overdue"] == 0
        # Site-wide watts only: nothing in it names a job or a team.
        assert "two-hours" not in r.text and "red" not in r.text

        # Two hours on, the second job has overrun nothing yet; past its end it is overdue:
        # it ends now in the forecast, as the start estimator has it.
        clock.advance(7300)
        body = fsd.get("/ui/power/forecast.json?hours=1&points=2").json()
        assert body["overdue"] == 2
        assert body["facility_w"][1] == pytest.approx(idle_w)

        page = fsd.get("/ui/power").text
        assert 'id="forecast-chart"' in page and "/ui/static/powerchart.js" in page
        assert '<p class="big" id="battery-none">none</p>' in page
    finally:
        env.svc.close()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("hours=0", "hours"),
        ("hours=169", "hours"),
        ("hours=nan", "hours"),
        ("points=1", "points"),
        ("points=1001", "points"),
        ("points=x", "points"),
        ("team=red", "team"),
    ],
)
def test_bad_forecast_parameters_get_a_422_naming_the_field(
    tmp_path: Path, query: str, field: str
) -> None:
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, fleet(halls=2), **POWER)
    try:
        r = env.login(env.fsd).get(f"/ui/power/forecast.json?{query}")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", field]
    finally:
        env.svc.close()


def test_without_a_power_policy_there_is_no_forecast_to_chart(ui_env: UiEnv) -> None:
    c = ui_env.login(ui_env.fsd)
    r = c.get("/ui/power/forecast.json")
    assert r.status_code == 404
    page = c.get("/ui/power").text
    assert "forecast-chart" not in page and "powerchart.js" not in page
    # Signed out: no figures.
    r = ui_env.client.get("/ui/power/forecast.json", follow_redirects=False)
    assert r.status_code in (303, 401)


def _hall_w(text: str, hall: str, cls: str) -> float:
    row = re.search(rf'<tr data-hall="{hall}">(.*?)</tr>', text, re.S)
    assert row is not None, hall
    got = re.search(rf'class="{cls}" data-w="([^"]+)"', row.group(1))
    assert got is not None, (hall, cls)
    return float(got.group(1))


def test_the_heatmap_colors_each_node_by_its_halls_modelled_cooling_load(tmp_path: Path) -> None:
    """Two halls of 8 nodes x 8 GPUs; h2 has 0.1 MW of rated cooling, h1 none. Idle, a hall
    draws what it books (the power page's `booked`). At the design temperature (20 C, under
    the plant's 35 C rating: power/data/cooling.csv) h2's plant rejects its full 100,000 W, so
    its nodes' byte is booked / 100,000 x 200. At 45 C it derates 1% per C over 35: 10% less,
    90,000 W (the power page's limit for h2, by cooling). h1's nodes have no figure: 254."""
    spec = fleet(halls=2, cooling_mw=0.1)
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, spec, **POWER)
    try:
        fsd, admin = env.login(env.fsd), env.login(ADMIN)
        booked = _hall_w(admin.get("/ui/power").text, "h2", "booked")
        r = fsd.get("/ui/heatmap.bin?color=cooling")
        assert r.status_code == 200 and len(r.content) == 16
        assert r.headers["X-Cortex-Outdoor-C"] == "20.0"
        assert list(r.content[:8]) == [254] * 8
        assert list(r.content[8:]) == [round(booked / 100_000 * 200)] * 8
        assert 0 < r.content[8] < 200

        put = env.client.put("/v1/power", json={"outdoor_temp_c": 45}, headers=env.api(ADMIN))
        assert put.status_code == 200, put.text
        env.svc.loop.tick()
        page = admin.get("/ui/power").text
        assert _hall_w(page, "h2", "limit") == pytest.approx(90_000.0)
        booked = _hall_w(page, "h2", "booked")
        r = fsd.get("/ui/heatmap.bin?color=cooling")
        assert r.headers["X-Cortex-Outdoor-C"] == "45.0"
        assert list(r.content[8:]) == [round(booked / 90_000 * 200)] * 8
        overview = fsd.get("/ui/").text
        assert 'value="cooling"' in overview and "hall's modelled heat" in overview
        bad = fsd.get("/ui/heatmap.bin?color=temperature")
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "color"]
    finally:
        env.svc.close()


def test_cooling_colors_need_a_power_policy(ui_env: UiEnv) -> None:
    c = ui_env.login(ui_env.fsd)
    r = c.get("/ui/heatmap.bin?color=cooling")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "color"]
    assert 'value="cooling"' not in c.get("/ui/").text


def test_the_forecast_adds_the_waiting_jobs_held_at_the_cap(tmp_path: Path) -> None:
    """Policy `none` with a cap (watched, not enforced), one hall of 8 nodes x 8 H100. fsd's
    32-GPU job A of 3,600 s runs from t0; its 64-GPU job B of 3,600 s waits for the whole fleet,
    so the start estimator starts it when A ends, t0 + 1 h, until t0 + 2 h. Samples t0, +1 h,
    +2 h, +3 h. The floor: A's draw now_w, then the idle fleet's idle_w. With B: at +1 h the
    idle fleet plus B's increment, twice A's (64 GPUs against 32, booked alike uncapped; the
    facility is linear in IT at one temperature): idle_w + 2 (now_w - idle_w); at +2 h B has
    ended (an end at a sample is over). Then the cap is set to idle_w + 1.5 (now_w - idle_w):
    +1 h is held at it, one sample capped, t0 (A alone, under the cap) unchanged."""
    clock = FakeClock()
    watch = {"power_policy": "none", "site_cap_kw": 1000.0, "power_actuator": "none"}
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock, **watch)
    try:
        power = lambda: env.client.get("/v1/power", headers=env.api(ADMIN)).json()  # noqa: E731
        idle_w = power()["facility_kw"] * 1e3
        env.submit(env.fsd, gpus=32, duration_s=3600, name="a")
        env.svc.loop.tick()
        env.submit(env.fsd, gpus=64, duration_s=3600, name="b")
        env.svc.loop.tick()
        assert len(env.svc.loop.mirror.placement) == 1  # B waits
        now_w = power()["facility_kw"] * 1e3
        fsd = env.login(env.fsd)
        body = fsd.get("/ui/power/forecast.json?hours=3&points=4").json()
        assert body["facility_w"] == pytest.approx([now_w, idle_w, idle_w, idle_w])
        want = [now_w, idle_w + 2 * (now_w - idle_w), idle_w, idle_w]
        assert body["with_waiting_w"] == pytest.approx(want)
        assert body["waiting"] == 1 and body["waiting_in"] == 1 and body["capped"] == 0

        cap_w = idle_w + 1.5 * (now_w - idle_w)
        r = env.client.put("/v1/power", json={"site_cap_kw": cap_w / 1e3}, headers=env.api(ADMIN))
        assert r.status_code == 200, r.text
        env.svc.loop.tick()
        body = fsd.get("/ui/power/forecast.json?hours=3&points=4").json()
        assert body["with_waiting_w"] == pytest.approx([now_w, cap_w, idle_w, idle_w])
        assert body["capped"] == 1
    finally:
        env.svc.close()
