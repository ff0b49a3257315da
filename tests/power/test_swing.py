"""The power swing tool: amplitudes by hand, remedies, battery physics, sizing, and the CLI."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from cortex.errors import InputError
from cortex.power import swing as sw

GPUS = 1000
H100 = "H100-SXM5"


def _profile(**kw: object) -> sw.Profile:
    args: dict = {"gpus": GPUS, "flavor": H100, "iteration_s": 8.0, "comm_fraction": 0.3}
    args.update(kw)
    seconds = args.pop("seconds", 80)
    hz = args.pop("sample_hz", 10)
    return sw.job_profile(sw.SwingJob(**args), seconds=seconds, sample_hz=hz)


def test_baseline_amplitude_mean_and_peak_by_hand() -> None:
    d = sw.swing_draw(H100)
    p = _profile(pue=1.0)
    r = sw.baseline(p)
    nodes = math.ceil(GPUS / d.gpus_per_node)  # 125 HGX nodes
    assert nodes == 125
    # Square wave: every GPU moves between the compute and the communication draw together.
    assert r.amplitude_mw == pytest.approx(GPUS * (d.compute_w - d.comm_w) / 1e6)
    # Phases last 5.6 s and 2.4 s, longer than a second, so the 1-s view keeps the full swing.
    assert r.amplitude_1s_mw == pytest.approx(r.amplitude_mw)
    peak = (GPUS * d.compute_w + nodes * d.node_overhead_w) / 1e6
    mean = (GPUS * (0.7 * d.compute_w + 0.3 * d.comm_w) + nodes * d.node_overhead_w) / 1e6
    assert float(r.grid_mw.max()) == pytest.approx(peak)
    assert r.mean_mw == pytest.approx(mean)
    assert r.energy_mwh == pytest.approx(mean * 80 / 3600)
    # The H100 figures are the measured ones: 674 W dense compute, 124 W waiting.
    assert r.amplitude_mw == pytest.approx(0.55)


def test_pue_scales_site_power() -> None:
    a = sw.baseline(_profile(pue=1.0))
    b = sw.baseline(_profile(pue=1.25))
    assert b.amplitude_mw == pytest.approx(1.25 * a.amplitude_mw)
    assert b.mean_mw == pytest.approx(1.25 * a.mean_mw)


def test_phase_timing_and_sub_second_edges() -> None:
    p = _profile(iteration_s=1.0, comm_fraction=0.4, sample_hz=20, seconds=10)
    # 0.6 s compute then 0.4 s communication each second: 12 + 8 samples per second.
    assert (p.phase[:20] == sw.COMPUTE).sum() == 12
    assert list(p.phase[12:20]) == [sw.COMM] * 8
    r = sw.baseline(p)
    # A one-second meter sees a flat line: the swing hides inside the second (as NVML's does).
    assert r.amplitude_1s_mw == pytest.approx(0.0, abs=1e-9)
    assert r.amplitude_mw > 0.5


def test_checkpoint_stalls_draw_stall_power_and_resume_the_iteration() -> None:
    p = _profile(checkpoint_every_s=16.0, checkpoint_stall_s=4.0, seconds=40)
    d = p.draw
    stalled = p.phase == sw.STALL
    assert stalled.mean() == pytest.approx(4.0 / 20.0)
    assert np.all(p.gpu_w[stalled] == d.stall_w)
    # After the stall (t = 20 s) the job resumes at the start of its third iteration: compute.
    assert p.phase[200] == sw.COMPUTE
    assert p.phase[20 * 10 + 56] == sw.COMM
    assert sw.baseline(p).details["stall_fraction"] == pytest.approx(0.2)


@pytest.mark.parametrize("floor_w", [0.0, 100.0, 124.0, 300.0, 546.0, 674.0, 700.0])
def test_floor_amplitude_and_waste_by_hand(floor_w: float) -> None:
    d = sw.swing_draw(H100)
    p = _profile(pue=1.0)
    r = sw.with_floor(p, floor_w)
    hi, lo = max(d.compute_w, floor_w), max(d.comm_w, floor_w)
    assert r.amplitude_mw == pytest.approx(GPUS * (hi - lo) / 1e6, abs=1e-12)
    comm_s, compute_s = 0.3 * 80, 0.7 * 80
    wasted_j = GPUS * (
        max(floor_w - d.comm_w, 0) * comm_s + max(floor_w - d.compute_w, 0) * compute_s
    )
    assert r.details["wasted_energy_mwh"] == pytest.approx(wasted_j / 3.6e9, abs=1e-6)
    assert r.main_throughput_rel == 1.0


@pytest.mark.parametrize("f", [0.0, 0.25, 0.5, 1.0])
def test_filler_raises_the_trough(f: float) -> None:
    p = _profile(pue=1.0)
    base = sw.baseline(p)
    r = sw.with_filler(p, f)
    assert r.amplitude_mw == pytest.approx((1 - f) * base.amplitude_mw, abs=1e-12)
    assert float(r.grid_mw.max()) == pytest.approx(float(base.grid_mw.max()))
    assert r.details["filler_gpu_h"] == pytest.approx(GPUS * f * 0.3 * 80 / 3600)
    assert r.main_throughput_rel == 1.0


def _energy_balance(load: np.ndarray, hz: int, bat: sw.Battery) -> sw.BatteryRun:
    run = sw.dispatch(load, hz, bat, window_s=8.0)
    dt_h = 1 / hz / 3600
    grid_mwh = float(run.grid_mw.sum() * dt_h)
    load_mwh = float(load.sum() * dt_h)
    net_discharge_mwh = run.soc_start_mwh - float(run.soc_mwh[-1])
    # Grid plus what the store gave up equals the load plus the round-trip losses.
    assert grid_mwh + net_discharge_mwh == pytest.approx(load_mwh + run.losses_mwh, rel=1e-12)
    return run


@pytest.mark.parametrize(
    ("power_mw", "energy_mwh", "eff"),
    [
        (0.3, 0.0005, 0.9),
        (0.3, 0.01, 0.85),
        (1.0, 0.002, 1.0),
        (0.05, 0.0001, 0.5),
        (2.0, 5.0, 0.9),
    ],
)
def test_battery_soc_bounds_and_energy_conservation(
    power_mw: float, energy_mwh: float, eff: float
) -> None:
    p = _profile(pue=1.2, seconds=240, checkpoint_every_s=40.0, checkpoint_stall_s=8.0)
    load = sw.baseline(p).grid_mw
    bat = sw.Battery(power_mw, energy_mwh, eff)
    run = _energy_balance(load, p.sample_hz, bat)
    assert run.soc_mwh.min() >= 0.0
    assert run.soc_mwh.max() <= energy_mwh
    assert np.all(np.abs(run.discharge_mw) <= power_mw + 1e-12)
    if eff == 1.0:
        assert run.losses_mwh == pytest.approx(0.0, abs=1e-15)
    else:
        assert run.losses_mwh > 0


def test_battery_smooths_and_a_zero_battery_does_nothing() -> None:
    p = _profile()
    base = sw.baseline(p)
    none = sw.with_battery(p, sw.Battery(0.0, 0.0, 0.9))
    np.testing.assert_allclose(none.grid_mw, base.grid_mw)
    big = sw.with_battery(p, sw.Battery(1.0, 1.0, 0.9))
    assert big.amplitude_mw < 0.05 * base.amplitude_mw
    assert big.details["soc_min_mwh"] > 0  # it never had to run empty


def test_smallest_battery_meets_the_target_and_is_monotone() -> None:
    p = _profile(seconds=120)
    base = sw.baseline(p)

    def meets(b: sw.Battery, target_mw: float) -> bool:
        # The documented criterion: the amplitude target, and at least half the starting
        # charge (50% of capacity) left at the end.
        r = sw.with_battery(p, b)
        return r.amplitude_mw <= target_mw and r.details["soc_end_mwh"] >= 0.25 * b.energy_mwh

    targets = [0.8, 0.5, 0.2, 0.1, 0.05]
    found = [sw.smallest_battery(p, t * base.amplitude_mw, 0.9) for t in targets]
    powers = [b.power_mw for b in found]
    assert powers == sorted(powers)  # a tighter target never needs less power
    assert powers[0] < powers[-1]
    for t, b in zip(targets, found, strict=True):
        target_mw = t * base.amplitude_mw
        assert meets(b, target_mw)
        # Smallest: 5% less power (with ample energy) or 20% less energy misses.
        assert not meets(sw.Battery(0.95 * b.power_mw, 10 * b.energy_mwh + 1, 0.9), target_mw)
        assert not meets(sw.Battery(b.power_mw, 0.8 * b.energy_mwh, 0.9), target_mw)
    assert sw.smallest_battery(p, base.amplitude_mw, 0.9).power_mw == 0.0


def test_units_needed() -> None:
    unit = sw.megapack()
    assert sw.units_needed(0.0, 0.0, unit) == 0
    assert sw.units_needed(unit.power_mw, 0.01, unit) == 1
    assert sw.units_needed(2.5 * unit.power_mw, 0.01, unit) == 3
    assert sw.units_needed(0.1, 3.5 * unit.energy_mwh, unit) == 4


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"gpus": 0}, "gpus"),
        ({"comm_fraction": 1.0}, "comm_fraction"),
        ({"comm_fraction": -0.1}, "comm_fraction"),
        ({"iteration_s": 0.0}, "iteration_s"),
        ({"pue": 0.9}, "pue"),
        ({"flavor": "H900"}, "flavor"),
        ({"checkpoint_stall_s": -1.0}, "checkpoint_stall_s"),
        ({"sample_hz": 0}, "sample_hz"),
        ({"seconds": 0}, "seconds"),
        ({"iteration_s": 1e-9}, "iteration_s"),  # printed a 0.0005 MW target error
        ({"iteration_s": 0.19, "sample_hz": 10}, "iteration_s"),  # under two samples
    ],
)
def test_bad_job_names_the_field(kw: dict, field: str) -> None:
    with pytest.raises(InputError) as err:
        _profile(**kw)
    assert err.value.field == field


def test_an_iteration_of_two_samples_is_resolved() -> None:
    prof = _profile(iteration_s=0.2, comm_fraction=0.5, sample_hz=10)
    assert set(prof.phase[:10].tolist()) == {sw.COMPUTE, sw.COMM}


def test_bad_remedy_names_the_field() -> None:
    p = _profile()
    with pytest.raises(InputError, match="floor_w"):
        sw.with_floor(p, -1.0)
    with pytest.raises(InputError, match="floor_w"):
        sw.with_floor(p, 701.0)
    with pytest.raises(InputError, match="filler_fraction"):
        sw.with_filler(p, 1.5)
    for eff in (0.0, 1.01, -0.5):
        with pytest.raises(InputError, match="battery_efficiency"):
            sw.with_battery(p, sw.Battery(1.0, 1.0, eff))
    with pytest.raises(InputError, match="battery_mw"):
        sw.with_battery(p, sw.Battery(-1.0, 1.0, 0.9))


# ---- CLI, in process through the real entry point (main() turns InputError into exit 2) ----

BASE_ARGS = ["power", "swing", "--gpus", "1000", "--flavor", H100, "--iteration-s", "8"]
BASE_ARGS += ["--comm-fraction", "0.3", "--seconds", "40"]


def _cli(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    from cortex.cli.main import main

    monkeypatch.setattr(sys, "argv", ["cortex", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as ex:
        main()
    return int(ex.value.code or 0)


@pytest.mark.parametrize(
    ("override", "option"),
    [
        (["--gpus", "0"], "--gpus"),
        (["--gpus", "-8"], "--gpus"),
        (["--comm-fraction", "1"], "--comm-fraction"),
        (["--comm-fraction", "-0.2"], "--comm-fraction"),
        (["--flavor", "H900"], "--flavor"),
        (["--battery-efficiency", "1.2"], "--battery-efficiency"),
        (["--battery-efficiency", "0"], "--battery-efficiency"),
        (["--floor-w", "-5"], "--floor-w"),
        (["--pue", "0.8"], "--pue"),
        (["--iteration-s", "0"], "--iteration-s"),
        (["--filler-fraction", "2"], "--filler-fraction"),
        (["--battery-mw", "3"], "--battery-mwh"),
        (["--seconds", "0"], "--seconds"),
        (["--target-amplitude-mw", "-1"], "--target-amplitude-mw"),
    ],
)
def test_cli_bad_input_exits_2_naming_the_option(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    override: list[str],
    option: str,
) -> None:
    assert _cli(monkeypatch, BASE_ARGS + override) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: ")
    assert f": {option}: " in err


def test_cli_writes_json_and_png(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    from pathlib import Path

    out = Path(str(tmp_path))
    args = [*BASE_ARGS, "--pue", "1.0", "--floor-w", "400"]
    args += ["--json", str(out / "r" / "swing.json"), "--plot", str(out / "swing.png")]
    assert _cli(monkeypatch, args) == 0
    printed = capsys.readouterr().out
    for name in ("baseline", "filler", "floor", "battery", "smallest battery"):
        assert name in printed
    report = json.loads((out / "r" / "swing.json").read_text())
    by_name = {r["name"]: r for r in report["remedies"]}
    assert list(by_name) == ["baseline", "filler", "floor", "battery"]
    d = sw.swing_draw(H100)
    assert by_name["baseline"]["amplitude_mw"] == pytest.approx(
        1000 * (d.compute_w - d.comm_w) / 1e6, abs=1e-4
    )
    assert by_name["floor"]["amplitude_mw"] == pytest.approx(
        1000 * (d.compute_w - 400) / 1e6, abs=1e-4
    )
    target = report["smallest_battery"]["target_amplitude_mw"]
    assert target == pytest.approx(0.1 * by_name["baseline"]["amplitude_mw"], abs=1e-4)
    assert by_name["battery"]["amplitude_mw"] <= target + 1e-4
    assert len(report["series_1s"]["baseline_mw"]) == 40
    png = (out / "swing.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000


def test_run_swing_with_checkpoints_reports_the_stall() -> None:
    from cortex.cli.power import run_swing

    report, results = run_swing(
        gpus=1000,
        flavor=H100,
        iteration_s=8.0,
        comm_fraction=0.3,
        pue=1.0,
        seconds=120,
        checkpoint_every_s=48.0,
        checkpoint_stall_s=12.0,
    )
    base, filler = report["remedies"][0], report["remedies"][1]
    assert base["stall_fraction"] == pytest.approx(0.2)
    d = sw.swing_draw(H100)
    # Filler does not run in a stall, so the stall trough still sets the amplitude.
    assert filler["amplitude_mw"] == pytest.approx(1000 * (d.compute_w - d.stall_w) / 1e6, abs=1e-4)
    assert [r.name for r in results] == ["baseline", "filler", "floor", "battery"]
