"""Accelerator catalog: one row per flavor, each with its source (data/accelerators.csv)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Accelerator:
    """A flavor of accelerator (Kueue's ResourceFlavor) with its power and compute figures."""

    name: str
    vendor: str
    tdp_w: float
    idle_w: float
    busy_w: float
    node_overhead_w: float
    memory_gb: float
    bf16_dense_tflops: float
    scale_up_domain: int
    source: str


def _num(raw: str) -> float:
    return float(raw) if raw.strip() else 0.0


@cache
def load_catalog() -> dict[str, Accelerator]:
    """Load the shipped catalog, keyed by flavor name."""
    text = resources.files("cortex.fleet").joinpath("data/accelerators.csv").read_text()
    out: dict[str, Accelerator] = {}
    for row in csv.DictReader(text.splitlines()):
        out[row["name"]] = Accelerator(
            name=row["name"],
            vendor=row["vendor"],
            tdp_w=_num(row["tdp_w"]),
            idle_w=_num(row["idle_w"]),
            busy_w=_num(row["busy_w"]),
            node_overhead_w=_num(row["node_overhead_w"]),
            memory_gb=_num(row["memory_gb"]),
            bf16_dense_tflops=_num(row["bf16_dense_tflops"]),
            scale_up_domain=int(_num(row["scale_up_domain"])),
            source=row["source"],
        )
    return out
