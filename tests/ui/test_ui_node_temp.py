"""The heatmap's GPU temperature snapshot (`heatmap.bin?color=temp`): modelled from each
node's draw through power/data/gpu_thermal.csv's fit (28.0 C + 0.0426 C/W), measured where the
service reads its own GPUs, and refused without a power policy."""

from __future__ import annotations

from pathlib import Path

from fakeclock import FakeClock
from uikit import ADMIN, UiEnv, fleet

POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


def _bytes(env: UiEnv, token: str) -> tuple[list[int], str]:
    r = env.login(token).get("/ui/heatmap.bin?color=temp")
    assert r.status_code == 200, r.text
    return list(r.content), r.headers["X-Cortex-Temp-Measured"]


def test_modelled_from_each_nodes_draw(tmp_path: Path) -> None:
    """Idle H100s draw 96 W (fleet catalog): 28.0 + 0.0426 x 96 = 32.09, byte 32. The node
    running the 8-GPU job draws its booked per-GPU watts w (GET /v1/power's 8-GPU figure / 8):
    28.0 + 0.0426 x w."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock, **POWER)
    try:
        got, measured = _bytes(env, env.fsd)
        assert got == [32] * 8 and measured == "0"
        a = env.submit(env.fsd, gpus=8)
        env.svc.loop.tick()
        site = env.client.get("/v1/power", headers=env.api(ADMIN)).json()
        w = next(j["modelled_w"] for j in site["jobs"] if j["job_id"] == a) / 8
        assert w > 96
        ((node, _),) = env.svc.loop.mirror.placement[a]
        got, _ = _bytes(env, env.red)  # site-wide bytes: no job is named
        want = [32] * 8
        want[node] = round(28.0 + 0.0426 * w)
        assert got == want
    finally:
        env.svc.close()


class _Thermometer:
    """An NVML stand-in (this machine has no GPU): GPU d reads 60 + d C; draws unread."""

    name = "thermo"

    def set_cap_w(self, device: int, watts: float | None) -> None:
        pass

    def draw_w(self, device: int) -> float | None:
        return None

    def temp_c(self, device: int) -> float | None:
        return 60.0 + device


def test_measured_where_the_service_reads_its_own_gpus(tmp_path: Path) -> None:
    """One node of 8 GPUs reading 60..67 C: the node shows its hottest, 67, measured."""
    spec = fleet(nodes=1, per_pod=1)
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, spec, **POWER)
    try:
        assert _bytes(env, env.fsd) == ([32], "0")  # modelled until something reads it
        env.svc.loop.power.actuator = _Thermometer()  # type: ignore[union-attr,assignment]
        assert _bytes(env, env.fsd) == ([67], "1")
        page = env.login(env.fsd).get("/ui/").text
        assert '<option value="temp">' in page and 'id="temp-note"' in page
    finally:
        env.svc.close()


def test_without_a_power_policy_temp_is_refused_naming_the_field(ui_env: UiEnv) -> None:
    r = ui_env.login(ui_env.fsd).get("/ui/heatmap.bin?color=temp")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "color"]
    assert '<option value="temp">' not in ui_env.login(ui_env.fsd).get("/ui/").text
