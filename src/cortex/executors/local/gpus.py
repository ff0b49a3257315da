"""This machine's GPUs, through NVML (nvidia-ml-py), named as the fleet catalog names them.

NVML is the driver's own management library: it sees every GPU whether or not CUDA is installed,
and it numbers them by PCI bus id, which is why jobs get CUDA_DEVICE_ORDER=PCI_BUS_ID (CUDA's
default order, fastest first, may differ on a mixed machine)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cortex.fleet.nvml_names import flavor_for

# flavor_for is re-exported: the executor names discovered GPUs through this module
__all__ = ["GpuInfo", "discover_gpus", "flavor_for", "nvml_gpus", "visible"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int  # NVML index == CUDA index under CUDA_DEVICE_ORDER=PCI_BUS_ID
    name: str  # as NVML reports it, e.g. "NVIDIA H100 80GB HBM3"
    uuid: str
    memory_gb: float  # GiB (2**30 bytes), as nvidia-smi shows it


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_gpus() -> list[GpuInfo]:
    """Every GPU NVML sees; [] when nvidia-ml-py is not installed, there is no driver, or NVML
    fails in any other way (a machine without GPUs is normal, not an error)."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        log.info("NVML unavailable (%s): no GPUs", e)
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            out.append(
                GpuInfo(
                    index=i,
                    name=_text(pynvml.nvmlDeviceGetName(h)),
                    uuid=_text(pynvml.nvmlDeviceGetUUID(h)),
                    memory_gb=round(pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30, 1),
                )
            )
        return out
    except pynvml.NVMLError as e:
        log.warning("NVML failed while listing GPUs (%s): no GPUs", e)
        return []
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def visible(gpus: list[GpuInfo], env: Mapping[str, str]) -> list[GpuInfo]:
    """The GPUs the service itself was allowed: its CUDA_VISIBLE_DEVICES, when set, by index or
    by UUID (prefix), as CUDA reads it. Unset: all of them; set but empty: none."""
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return gpus
    out: list[GpuInfo] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.isdigit():
            match = [g for g in gpus if g.index == int(item)]
        else:
            match = [g for g in gpus if g.uuid.startswith(item)]
        if not match:
            # CUDA stops at the first entry it cannot resolve; do the same.
            break
        if match[0] not in out:
            out.append(match[0])
    return out


def discover_gpus() -> list[GpuInfo]:
    return visible(nvml_gpus(), os.environ)
