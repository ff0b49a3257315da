"""GPU temperatures through NVML (control/node_temps.py), over an in-test pynvml module (this
machine has no GPU), and the modelled fit read from power/data/gpu_thermal.csv."""

from __future__ import annotations

import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from cortex.control import node_temps


def _fake_nvml(temps: dict[int, float]) -> ModuleType:
    nv = ModuleType("pynvml")
    nv.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
    nv.nvmlInit = lambda: None  # type: ignore[attr-defined]
    nv.nvmlDeviceGetHandleByIndex = lambda i: ("handle", i)  # type: ignore[attr-defined]

    def temp(h: tuple[str, int], sensor: int) -> float:
        assert sensor == 0
        if h[1] not in temps:
            raise RuntimeError("NVMLError_NotFound")
        return temps[h[1]]

    nv.nvmlDeviceGetTemperature = temp  # type: ignore[attr-defined]
    return nv


def test_an_nvml_actuator_gets_an_nvml_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml({0: 54.0}))
    monkeypatch.setattr(node_temps, "_NVML", [])
    read = node_temps.temp_reader(SimpleNamespace(name="nvml"))
    assert read is not None
    assert read(0) == 54.0
    assert read(3) is None  # a device NVML does not know reads as unknown, never raises


def test_no_reader_without_something_that_measures() -> None:
    assert node_temps.temp_reader(None) is None
    assert node_temps.temp_reader(SimpleNamespace(name="record")) is None


def test_the_modelled_fit() -> None:
    """power/data/gpu_thermal.csv: 28.0 + 0.0426 x W. 96 W -> 32.0896; 700 W -> 57.82."""
    got = node_temps.modelled_c(np.array([96.0, 700.0]))
    assert got.tolist() == pytest.approx([32.0896, 57.82])
