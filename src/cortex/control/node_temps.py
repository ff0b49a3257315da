"""Each node's GPU temperature for the heatmap: measured where the control plane can read it,
modelled from the node's draw otherwise, and labelled as which.

- Measured: on a service that runs on the GPU machine itself (one node) with the NVML power
  actuator, each GPU's temperature through NVML (nvmlDeviceGetTemperature); a node shows its
  hottest GPU. Nodes elsewhere (a modelled fleet, a Ray cluster's nodes) report no temperature
  to the control plane.
- Modelled: temp_c = intercept_c + per_w x the node's mean GPU draw (power/data/gpu_thermal.csv,
  fitted to an H100's measured draw and temperature), the draw being the power books' (the
  running jobs' per-GPU watts at their cap levels, idle watts on free GPUs). A steady-state
  figure: it ignores thermal lag, the hall's inlet air and the plant's load.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from cortex.power.datafile import number, read_rows


@functools.cache
def thermal() -> tuple[float, float]:
    """(intercept_c, per_w) from power/data/gpu_thermal.csv."""
    rows = {r["name"]: r for r in read_rows("gpu_thermal.csv")}
    src = "cortex/power/data/gpu_thermal.csv"
    return (
        number(rows["intercept_c"], "value", src, "intercept_c"),
        number(rows["per_w"], "value", src, "per_w"),
    )


def modelled_c(gpu_w: np.ndarray) -> np.ndarray:
    intercept, per_w = thermal()
    return intercept + per_w * gpu_w


class NvmlTemps:
    """GPU temperatures through NVML (pynvml imported lazily, as the actuator does)."""

    def __init__(self) -> None:
        import pynvml

        self._nv: Any = pynvml
        self._lock = threading.Lock()
        pynvml.nvmlInit()

    def temp_c(self, device: int) -> float | None:
        nv = self._nv
        try:
            with self._lock:
                h = nv.nvmlDeviceGetHandleByIndex(device)
                return float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))
        except Exception:  # NVMLError: lost device, not supported
            return None


_NVML: list[NvmlTemps] = []  # built once, on first use
_NVML_LOCK = threading.Lock()


def temp_reader(actuator: Any) -> Callable[[int], float | None] | None:
    """A per-GPU temperature reader: the actuator's own `temp_c` where it has one, NVML's where
    the actuator is NVML's, else None (nothing measures)."""
    if actuator is None:
        return None
    own = getattr(actuator, "temp_c", None)
    if callable(own):
        return own
    if getattr(actuator, "name", None) != "nvml":
        return None
    with _NVML_LOCK:
        if not _NVML:
            try:
                _NVML.append(NvmlTemps())
            except Exception:
                return None
    return _NVML[0].temp_c


def node_temps_c(loop: Any, gpu_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per node, its GPU temperature (C) and whether it was measured (else modelled from
    `gpu_w`, each node's mean GPU draw)."""
    temps = modelled_c(gpu_w)
    measured = np.zeros(len(temps), dtype=bool)
    power = loop.power
    read = temp_reader(power.actuator if power is not None else None)
    if read is not None and len(loop.node_devices) == 1 and loop.node_devices[0]:
        got = [read(d) for d in loop.node_devices[0]]
        if all(x is not None for x in got):
            temps[0] = max(x for x in got if x is not None)
            measured[0] = True
    return temps, measured
