"""JSON-lines progress for the control plane, and GPU power from NVML when present.

One line per logging step: `step`, `loss`, `samples_per_s`, `step_s`, `lr`, `gpu_power_w`
(null without NVML), ... and one line per event (`event`: start, resume, checkpoint, preempted,
done), each with `step` and `ts` (Unix seconds). Lines are flushed as written so a reader tailing
the file sees progress live, and the file is opened in append mode so a resumed run continues it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any


class GpuPower:
    """Board power of one GPU through pynvml (nvidia-ml-py); `read_w()` is None when unavailable."""

    def __init__(self, index: int | None) -> None:
        self._nvml: Any = None
        self._handle: Any = None
        if index is None:
            return
        try:
            import pynvml  # optional: present on GPU machines, absent here

            pynvml.nvmlInit()
            self._handle = _nvml_handle(pynvml, index)
            self._nvml = pynvml
        except Exception:  # no library, no driver or no device: report null, do not fail the job
            self._nvml = None

    def read_w(self) -> float | None:
        if self._nvml is None:
            return None
        try:
            return float(self._nvml.nvmlDeviceGetPowerUsage(self._handle)) / 1000.0
        except Exception:
            return None


def _nvml_handle(pynvml: Any, cuda_index: int) -> Any:
    """NVML numbers all GPUs of the machine, CUDA only the visible ones: with
    CUDA_VISIBLE_DEVICES=3,5 (as executors set it), cuda:0 is NVML device 3."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible:
        entry = visible.split(",")[cuda_index].strip()
        if entry.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(entry))
        return pynvml.nvmlDeviceGetHandleByUUID(entry)  # GPU-... or MIG-... identifiers
    return pynvml.nvmlDeviceGetHandleByIndex(cuda_index)


class MetricsWriter:
    def __init__(self, path: Path | None, common: dict[str, Any]) -> None:
        self._common = common
        self._f: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115  (lives as long as the run)

    def write(self, **fields: Any) -> None:
        if self._f is None:
            return
        line = {"ts": round(time.time(), 3), **self._common, **fields}
        self._f.write(json.dumps(line) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
