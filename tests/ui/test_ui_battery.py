"""The site battery through the live loop, GET /v1/power, /metrics and the power page: its
charge follows the modelled facility draw with the twin's dispatch; a site without one reads
"none"."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeclock import FakeClock
from uikit import ADMIN, UiEnv

BATTERY = {
    "power_policy": "cap",
    "site_cap_kw": 1000.0,
    "power_actuator": "none",
    "battery_mwh": 0.01,  # 10 kWh
    "battery_mw": 0.05,  # 50 kW
    "battery_efficiency": 1.0,
    "grid_ramp_mw_per_min": 0.0006,  # 0.1 kW per 10 s step
}


def _site_mw(env: UiEnv) -> float:
    return float(env.client.get("/v1/power", headers=env.api(ADMIN)).json()["facility_kw"]) / 1e3


def test_a_load_step_discharges_the_modelled_battery(tmp_path: Path) -> None:
    """Idle draw L0 until a 32-GPU job starts, then L1. The first 10 s step is at L0 (the grid
    starts there); in the second the grid may rise 0.0006 MW/min x 10/60 = 0.0001 MW, so the
    lossless battery gives L1 - L0 - 0.0001 MW for 10 s: its charge falls from 0.005 MWh by
    that / 360."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock, **BATTERY)
    try:
        t0 = clock.time()
        idle = _site_mw(env)
        got = env.client.get("/v1/power", headers=env.api(env.fsd)).json()["battery"]
        assert got["soc_fraction"] == 0.5 and got["source"] == "modelled"
        env.submit(env.fsd, gpus=32, name="step-up")
        env.svc.loop.tick()  # launches it
        clock.advance(10)
        env.svc.loop.tick()
        busy = _site_mw(env)
        assert busy - idle > 0.001  # a step well past what the grid may follow
        clock.advance(10)
        env.svc.loop.tick()
        bat = env.client.get("/v1/power", headers=env.api(env.fsd)).json()["battery"]
        give = busy - idle - 0.0001
        assert bat["steps"] == 2
        assert bat["battery_mw"] == pytest.approx(give)
        assert bat["grid_mw"] == pytest.approx(idle + 0.0001)
        assert bat["soc_mwh"] == pytest.approx(0.005 - give / 360)
        soc = bat["soc_fraction"]
        metrics = env.client.get("/metrics", headers=env.api(ADMIN)).text
        assert f'cortex_power_battery{{what="soc_fraction"}} {soc}' in metrics
        page = env.login(env.fsd).get("/ui/power").text
        assert f'id="battery-soc" data-soc="{soc}">{soc * 100:.1f}%' in page
        assert "discharging" in page
        frag = env.login(env.red).get("/ui/fragments/power").text
        assert 'id="battery-soc"' in frag  # site-wide: every team sees the site's battery
        # The charge's history: the first step (ended at t0 + 10) is kept; the second, 10 s
        # later, is not (one point a minute).
        hist = env.login(env.red).get("/ui/power/battery.json").json()
        assert hist["t"] == [t0 + 10] and hist["soc"] == [0.5]
        assert 'id="battery-chart"' in page
    finally:
        env.svc.close()


def test_a_site_without_a_battery_reads_none(tmp_path: Path) -> None:
    cfg = {k: v for k, v in BATTERY.items() if not k.startswith(("battery", "grid"))}
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, **cfg)
    try:
        assert env.client.get("/v1/power", headers=env.api(ADMIN)).json()["battery"] is None
        metrics = env.client.get("/metrics", headers=env.api(ADMIN))
        assert metrics.status_code == 200 and "cortex_power_site_watts" in metrics.text
        assert "cortex_power_battery" not in metrics.text
        page = env.login(env.fsd).get("/ui/power").text
        assert '<p class="big" id="battery-none">none</p>' in page
        assert 'id="battery-soc"' not in page and 'id="battery-chart"' not in page
        r = env.login(env.fsd).get("/ui/power/battery.json")
        assert r.status_code == 404
    finally:
        env.svc.close()
