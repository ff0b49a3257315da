"""Per-GPU power limits: the actuator interface the control plane's power policy acts through,
its production implementation (NVML's power-limit API) and a recording one for tests.

Tests never change a real device's settings: they use `RecordingActuator`, which writes each
call to memory (and to a JSON-lines file when given one, so a test can read what a `cortex
serve` subprocess did) and can be told to fail.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Protocol


class PowerCapError(RuntimeError):
    """A device's power limit could not be set (the message names the GPU)."""


class CapActuator(Protocol):
    """Sets and reads per-device power. `watts` None restores the device's default limit."""

    name: str

    def set_cap_w(self, device: int, watts: float | None) -> None: ...

    def draw_w(self, device: int) -> float | None:
        """The device's measured draw now, or None when this actuator cannot measure it."""
        ...


class NvmlActuator:
    """NVML: nvmlDeviceSetPowerManagementLimit (milliwatts, needs root) within the device's
    constraints, nvmlDeviceGetPowerUsage to measure. pynvml (nvidia-ml-py) is imported lazily:
    a machine without it, or without GPUs, never builds one."""

    name = "nvml"

    def __init__(self) -> None:
        import pynvml

        self._nv: Any = pynvml
        self._lock = threading.Lock()  # NVML handles are shared; calls are cheap
        pynvml.nvmlInit()

    def _handle(self, device: int) -> Any:
        return self._nv.nvmlDeviceGetHandleByIndex(device)

    def set_cap_w(self, device: int, watts: float | None) -> None:
        nv = self._nv
        try:
            with self._lock:
                h = self._handle(device)
                lo_mw, hi_mw = nv.nvmlDeviceGetPowerManagementLimitConstraints(h)
                if watts is None:
                    mw = int(nv.nvmlDeviceGetPowerManagementDefaultLimit(h))
                else:
                    mw = round(watts * 1000.0)
                    if not lo_mw <= mw <= hi_mw:
                        raise PowerCapError(
                            f"GPU {device}: cap {watts:.0f} W outside the device's "
                            f"{lo_mw / 1000:.0f}-{hi_mw / 1000:.0f} W range"
                        )
                nv.nvmlDeviceSetPowerManagementLimit(h, mw)
        except PowerCapError:
            raise
        except Exception as err:  # NVMLError: no permission, lost device, not supported
            raise PowerCapError(f"GPU {device}: cannot set its power limit: {err}") from None

    def draw_w(self, device: int) -> float | None:
        try:
            with self._lock:
                return float(self._nv.nvmlDeviceGetPowerUsage(self._handle(device))) / 1000.0
        except Exception:
            return None


class RecordingActuator:
    """Records every call instead of touching a device. `fail_devices`: devices whose limit
    cannot be set (None: none; an empty set: every device)."""

    name = "record"

    def __init__(self, path: Path | None = None, fail_devices: set[int] | None = None) -> None:
        self.path = path
        self.fail_devices = fail_devices
        self.calls: list[tuple[int, float | None, bool]] = []  # (device, watts, succeeded)
        self.caps: dict[int, float | None] = {}
        self._lock = threading.Lock()

    def _fails(self, device: int) -> bool:
        return self.fail_devices is not None and (
            not self.fail_devices or device in self.fail_devices
        )

    def set_cap_w(self, device: int, watts: float | None) -> None:
        ok = not self._fails(device)
        with self._lock:
            self.calls.append((device, watts, ok))
            if ok:
                self.caps[device] = watts
            if self.path is not None:
                with self.path.open("a") as f:
                    f.write(json.dumps({"device": device, "watts": watts, "ok": ok}) + "\n")
        if not ok:
            raise PowerCapError(f"GPU {device}: cannot set its power limit (recording actuator)")

    def draw_w(self, device: int) -> float | None:
        return None


def actuator_from_spec(spec: str, uses_gpus: bool) -> CapActuator | None:
    """`auto`: NVML where the machine has GPUs, none on CPU slots; `nvml`; `none`;
    `record:PATH` (a test's recording actuator); `fail:PATH` (one that fails every device)."""
    kind, _, arg = spec.partition(":")
    if kind == "auto":
        return NvmlActuator() if uses_gpus else None
    if kind == "nvml" and not arg:
        return NvmlActuator()
    if kind == "none" and not arg:
        return None
    if kind in ("record", "fail") and arg:
        return RecordingActuator(Path(arg), set() if kind == "fail" else None)
    raise ValueError(f"unknown actuator {spec!r}; known: auto, nvml, none, record:PATH, fail:PATH")
