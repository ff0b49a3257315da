"""A job's power over time through the server: GET /v1/jobs/{id}/power and the job page's
chart data, sampled by the live loop every 15 s; its own team and the admin only; bounded
parameters; a service without a power policy answers 404."""

from __future__ import annotations

from pathlib import Path

from fakeclock import FakeClock
from uikit import ADMIN, UiEnv

from cortex.control.power_history import SAMPLE_S

POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


class _Meter:
    """Reads every GPU at 500 W (an NVML stand-in: this machine has no GPU)."""

    name = "meter"

    def set_cap_w(self, device: int, watts: float | None) -> None:
        pass

    def draw_w(self, device: int) -> float | None:
        return 500.0


def test_a_jobs_draw_is_sampled_and_served_to_its_team_only(tmp_path: Path) -> None:
    """The tick at 0 s launches the 8-GPU job (it draws nothing before its processes start);
    ticks at 15, 30 and 45 s sample its modelled watts (GET /v1/power's figure for it); then
    the meter reads 500 W a GPU: 8 x 500 = 4,000 W, measured."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock, **POWER)
    try:
        a = env.submit(env.fsd, gpus=8, name="draws")
        t0 = clock.time()
        env.svc.loop.tick()
        for _ in range(3):
            clock.advance(SAMPLE_S)
            env.svc.loop.tick()
        site = env.client.get("/v1/power", headers=env.api(ADMIN)).json()
        watts = next(j["modelled_w"] for j in site["jobs"] if j["job_id"] == a)
        assert watts > 0
        got = env.client.get(f"/v1/jobs/{a}/power", headers=env.api(env.fsd)).json()
        assert got["t"] == [t0 + SAMPLE_S, t0 + 2 * SAMPLE_S, t0 + 3 * SAMPLE_S]
        assert got["watts"] == [watts] * 3
        assert got["measured"] == [False] * 3 and got["running"] is True
        env.svc.loop.power.actuator = _Meter()  # type: ignore[union-attr,assignment]
        clock.advance(SAMPLE_S)
        env.svc.loop.tick()
        got = env.login(env.fsd).get(f"/ui/jobs/{a}/power.json").json()
        assert got["watts"][-1] == 4000.0 and got["measured"][-1] is True
        assert env.client.get(f"/v1/jobs/{a}/power", headers=env.api(ADMIN)).status_code == 200
        # red sees neither the series nor that the job exists.
        r = env.client.get(f"/v1/jobs/{a}/power", headers=env.api(env.red))
        assert r.status_code == 404 and "draws" not in r.text
        assert env.login(env.red).get(f"/ui/jobs/{a}/power.json").status_code == 404
        # The job page carries the chart for its team.
        page = env.login(env.fsd).get(f"/ui/jobs/{a}").text
        assert f'data-src="/ui/jobs/{a}/power.json"' in page
        # Bounded: at most 2,000 points, at least 2; unknown parameters refused by the page route.
        r = env.client.get(f"/v1/jobs/{a}/power?points=2001", headers=env.api(env.fsd))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "points"]
        r = env.login(env.fsd).get(f"/ui/jobs/{a}/power.json?points=1")
        assert r.status_code == 422 and "points" in r.text
        r = env.login(env.fsd).get(f"/ui/jobs/{a}/power.json?color=x")
        assert r.status_code == 422
    finally:
        env.svc.close()


def test_a_job_not_yet_drawing_has_an_empty_series(tmp_path: Path) -> None:
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock, **POWER)
    try:
        a = env.submit(env.fsd, gpus=8, name="queued")  # no tick: never launched
        got = env.client.get(f"/v1/jobs/{a}/power", headers=env.api(env.fsd)).json()
        assert got["t"] == [] and got["watts"] == [] and got["running"] is False
    finally:
        env.svc.close()


def test_without_a_power_policy_there_is_no_series(ui_env: UiEnv) -> None:
    env = ui_env
    a = env.submit(env.fsd, gpus=1)
    env.svc.loop.tick()
    r = env.client.get(f"/v1/jobs/{a}/power", headers=env.api(env.fsd))
    assert r.status_code == 404 and "power policy" in r.text
    page = env.login(env.fsd).get(f"/ui/jobs/{a}").text
    assert 'id="power-chart"' not in page
