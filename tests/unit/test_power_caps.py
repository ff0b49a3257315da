"""The power-limit actuators (executors/local/power_caps.py). NVML is replaced by an in-test
module: no test changes a real device's settings."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from cortex.executors.local.power_caps import (
    NvmlActuator,
    PowerCapError,
    RecordingActuator,
    actuator_from_spec,
)


class _NvmlError(Exception):
    pass


def _fake_pynvml(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """pynvml's calls the actuator makes, over two devices with a 200-700 W range."""
    state = types.SimpleNamespace(limits_mw={0: 700_000, 1: 700_000}, draw_mw={0: 546_000})
    mod = types.ModuleType("pynvml")

    def handle(i: int) -> int:
        if i not in state.limits_mw:
            raise _NvmlError("Invalid Argument")
        return i

    def set_limit(h: int, mw: int) -> None:
        if h == 1:
            raise _NvmlError("Insufficient Permissions")
        state.limits_mw[h] = mw

    mod.nvmlInit = lambda: None  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = handle  # type: ignore[attr-defined]
    mod.nvmlDeviceGetPowerManagementLimitConstraints = lambda h: (200_000, 700_000)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetPowerManagementDefaultLimit = lambda h: 700_000  # type: ignore[attr-defined]
    mod.nvmlDeviceSetPowerManagementLimit = set_limit  # type: ignore[attr-defined]
    mod.nvmlDeviceGetPowerUsage = lambda h: state.draw_mw[h]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    return state


def test_nvml_actuator_sets_milliwatts_and_restores_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = _fake_pynvml(monkeypatch)
    act = NvmlActuator()
    act.set_cap_w(0, 455.0)
    assert state.limits_mw[0] == 455_000  # NVML takes milliwatts
    act.set_cap_w(0, None)
    assert state.limits_mw[0] == 700_000  # the device's default
    assert act.draw_w(0) == 546.0
    assert act.draw_w(1) is None  # no reading for that device: not measured


def test_nvml_actuator_errors_name_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _fake_pynvml(monkeypatch)
    act = NvmlActuator()
    with pytest.raises(PowerCapError, match=r"^GPU 0: cap 150 W outside the device's 200-700 W"):
        act.set_cap_w(0, 150.0)
    assert state.limits_mw[0] == 700_000  # refused before NVML was asked
    with pytest.raises(PowerCapError, match=r"^GPU 1: cannot set its power limit: Insufficient"):
        act.set_cap_w(1, 455.0)
    with pytest.raises(PowerCapError, match=r"^GPU 7: cannot set its power limit: Invalid"):
        act.set_cap_w(7, 455.0)


def test_recording_actuator_records_and_fails_as_told(tmp_path: Path) -> None:
    act = RecordingActuator(tmp_path / "calls.jsonl", fail_devices={1})
    act.set_cap_w(0, 420.0)
    with pytest.raises(PowerCapError, match=r"^GPU 1: "):
        act.set_cap_w(1, 420.0)
    assert act.calls == [(0, 420.0, True), (1, 420.0, False)]
    assert act.caps == {0: 420.0}
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("spec", "uses_gpus", "kind"),
    [("auto", False, None), ("none", True, None), ("record:/tmp/x", True, RecordingActuator)],
)
def test_actuator_specs(spec: str, uses_gpus: bool, kind: type | None) -> None:
    got = actuator_from_spec(spec, uses_gpus)
    assert (type(got) if got is not None else None) is kind


@pytest.mark.parametrize("spec", ["gpio", "record", "record:", "none:x", "nvml:x"])
def test_unknown_actuator_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown actuator"):
        actuator_from_spec(spec, False)
