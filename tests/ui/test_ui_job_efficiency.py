"""A running job's efficiency on its page and the samples/s series of its progress chart,
through the server (no browser): throughput per GPU and per kW of its modelled draw (the power
books) and, where every GPU can be read, of its measured draw; another team sees nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fakeclock import FakeClock
from uikit import ADMIN, UiEnv

POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


def _by_id(text: str, el: str) -> str:
    got = re.search(rf'id="{el}"[^>]*>(.*?)</', text, re.S)
    assert got is not None, el
    return got.group(1).strip()


class _Meter:
    """Reads every GPU at 500 W (an NVML stand-in: this machine has no GPU)."""

    name = "meter"

    def set_cap_w(self, device: int, watts: float | None) -> None:
        pass

    def draw_w(self, device: int) -> float | None:
        return 500.0


def test_a_running_jobs_throughput_per_gpu_and_per_kw(tmp_path: Path) -> None:
    """fsd's 8-GPU job reports 400 samples/s through the API: 400 / 8 = 50.00 per GPU. Its
    modelled draw is GET /v1/power's figure for it, W: 400 / (W / 1,000) per kW. Measured at
    500 W on each of its 8 GPUs, 4,000 W: 400 / 4 = 100.00 per kW."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock, **POWER)
    try:
        a = env.submit(env.fsd, gpus=8, name="learns-fast")
        env.svc.loop.tick()
        c = env.login(env.fsd)
        page = c.get(f"/ui/jobs/{a}").text
        assert "No samples/s reported" in _by_id(page, "eff-none")
        clock.advance(60)
        body = {"attempt": 1, "step": 100, "samples_per_s": 400.0}
        r = env.client.post(f"/v1/jobs/{a}/progress", json=body, headers=env.api(env.fsd))
        assert r.status_code == 202, r.text
        site = env.client.get("/v1/power", headers=env.api(ADMIN)).json()
        watts = next(j["modelled_w"] for j in site["jobs"] if j["job_id"] == a)
        page = c.get(f"/ui/jobs/{a}").text
        assert _by_id(page, "eff-rate") == "400.0"
        assert _by_id(page, "eff-per-gpu") == "50.00 over 8 GPUs"
        assert _by_id(page, "eff-per-kw").startswith(f"{400 / (watts / 1e3):,.2f} (")
        assert 'id="eff-per-kw-measured"' not in page  # no actuator reads the GPUs
        env.svc.loop.power.actuator = _Meter()  # type: ignore[union-attr,assignment]
        page = c.get(f"/ui/jobs/{a}").text
        assert _by_id(page, "eff-per-kw-measured").startswith("100.00 (")
        # red cannot open it.
        red = env.login(env.red).get(f"/ui/jobs/{a}")
        assert red.status_code == 404 and "learns-fast" not in red.text
    finally:
        env.svc.close()


def test_without_a_power_policy_the_page_says_why_there_is_no_per_kw_figure(
    ui_env: UiEnv,
) -> None:
    env = ui_env
    a = env.submit(env.fsd, gpus=4, name="no-watts")
    env.svc.loop.tick()
    body = {"attempt": 1, "step": 1, "samples_per_s": 12.0}
    r = env.client.post(f"/v1/jobs/{a}/progress", json=body, headers=env.api(env.fsd))
    assert r.status_code == 202, r.text
    page = env.login(env.fsd).get(f"/ui/jobs/{a}").text
    assert _by_id(page, "eff-per-gpu") == "3.00 over 4 GPUs"  # 12 / 4
    assert "no power policy" in _by_id(page, "eff-no-power")
    assert 'id="eff-per-kw"' not in page


def test_the_progress_chart_carries_samples_per_s_from_the_metrics_file(tmp_path: Path) -> None:
    """Three lines of attempt 1: samples/s 100, none, 300; the series keeps the gap."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        t0 = clock.time()
        a = env.submit(env.fsd, gpus=1)
        env.svc.loop.tick()
        clock.advance(60)
        lines: list[dict[str, Any]] = [
            {"ts": t0 + 10, "attempt": 1, "step": 1, "samples_per_s": 100.0},
            {"ts": t0 + 20, "attempt": 1, "step": 2},
            {"ts": t0 + 30, "attempt": 1, "step": 3, "samples_per_s": 300.0},
        ]
        path = env.ex.metrics_file(a)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        got = env.login(env.fsd).get(f"/ui/jobs/{a}/progress.json").json()
        assert got["samples_per_s"] == [100.0, None, 300.0]
        page = env.login(env.fsd).get(f"/ui/jobs/{a}").text
        assert _by_id(page, "eff-rate") == "300.0"  # the newest line's
    finally:
        env.svc.close()
