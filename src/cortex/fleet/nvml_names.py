"""NVML product names -> fleet catalog flavors: the one map, used by the control plane's GPU
discovery and by the calibration run (both name a device as the catalog does)."""

from __future__ import annotations

import re

# First match wins, so the more specific patterns come first. "H100 80GB HBM3" is how NVML names
# the SXM5 board; the PCIe and NVL boards have other power and memory figures, so they are not
# mapped to it.
_FLAVOR_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bGB200\b"), "B200-GB200"),
    (re.compile(r"\bB200\b"), "B200-HGX"),
    (re.compile(r"\bH200\b"), "H200-SXM"),
    (re.compile(r"\bH100\b.*(\bSXM|\bHBM3\b)"), "H100-SXM5"),
)


def catalog_flavor(nvml_name: str) -> str | None:
    """The catalog flavor of an NVML product name, or None when the catalog has no such board."""
    for pattern, flavor in _FLAVOR_PATTERNS:
        if pattern.search(nvml_name):
            return flavor
    return None


def flavor_for(nvml_name: str) -> str:
    """The catalog flavor for an NVML product name; a name the catalog lacks is kept, tidied
    ("NVIDIA A100-SXM4-80GB" -> "A100-SXM4-80GB"), so the control plane can show it and reject
    jobs that ask for a flavor the machine does not have."""
    flavor = catalog_flavor(nvml_name)
    if flavor is not None:
        return flavor
    name = re.sub(r"^NVIDIA\s+", "", nvml_name.strip())
    return re.sub(r"\s+", "-", name) or "GPU"
