"""This machine's GPUs, through NVML (nvidia-ml-py), named as the fleet catalog names them.

NVML is the driver's own management library: it sees every GPU whether or not CUDA is installed,
and it numbers them by PCI bus id, which is why jobs get CUDA_DEVICE_ORDER=PCI_BUS_ID (CUDA's
default order, fastest first, may differ on a mixed machine)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int  # NVML index == CUDA index under CUDA_DEVICE_ORDER=PCI_BUS_ID
    name: str  # as NVML reports it, e.g. "NVIDIA H100 80GB HBM3"
    uuid: str
    memory_gb: float  # GiB (2**30 bytes), as nvidia-smi shows it


# NVML product names -> fleet catalog flavors (src/cortex/fleet/data/accelerators.csv). First match
# wins, so the more specific patterns come first. "H100 80GB HBM3" is how NVML names the SXM5
# board; the PCIe and NVL boards have other power and memory figures, so they are not mapped to it.
_FLAVOR_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bGB200\b"), "B200-GB200"),
    (re.compile(r"\bB200\b"), "B200-HGX"),
    (re.compile(r"\bH200\b"), "H200-SXM"),
    (re.compile(r"\bH100\b.*(\bSXM|\bHBM3\b)"), "H100-SXM5"),
)


def flavor_for(nvml_name: str) -> str:
    """The catalog flavor for an NVML product name; a name the catalog lacks is kept, tidied
    ("NVIDIA A100-SXM4-80GB" -> "A100-SXM4-80GB"), so the control plane can show it and reject
    jobs that ask for a flavor the machine does not have."""
    for pattern, flavor in _FLAVOR_PATTERNS:
        if pattern.search(nvml_name):
            return flavor
    name = re.sub(r"^NVIDIA\s+", "", nvml_name.strip())
    return re.sub(r"\s+", "-", name) or "GPU"


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
