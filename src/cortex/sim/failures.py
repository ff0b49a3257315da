"""Failure model: per-cause rates from the Llama 3 census, with detection, job-recovery and
node-repair times (data/failures.csv). Failures are drawn up front for the whole horizon: the
superposition of per-accelerator Poisson processes is one Poisson process whose events land on
a node chosen in proportion to its accelerators."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np


@dataclass(frozen=True, slots=True)
class Cause:
    """One root cause of unexpected interruptions."""

    name: str
    category: str
    rate_per_gpu_s: float
    detect_s: float
    recover_s: float
    repair_s: float


@cache
def load_causes() -> tuple[Cause, ...]:
    """Causes with rates per GPU-second (count / census exposure)."""
    text = resources.files("cortex.sim").joinpath("data/failures.csv").read_text()
    out = []
    for row in csv.DictReader(text.splitlines()):
        out.append(
            Cause(
                name=row["cause"],
                category=row["category"],
                rate_per_gpu_s=float(row["count"]) / (float(row["exposure_gpu_h"]) * 3600.0),
                detect_s=float(row["detect_s"]),
                recover_s=float(row["recover_s"]),
                repair_s=float(row["repair_s"]),
            )
        )
    return tuple(out)


@cache
def load_defaults() -> dict[str, float]:
    """Simulation defaults taken from the world (data/defaults.csv)."""
    text = resources.files("cortex.sim").joinpath("data/defaults.csv").read_text()
    return {row["name"]: float(row["value"]) for row in csv.DictReader(text.splitlines())}


def rate_per_gpu_s(scale: float = 1.0) -> float:
    """All causes together, per accelerator-second."""
    return scale * sum(c.rate_per_gpu_s for c in load_causes())


def draw_failures(
    rng: np.random.Generator,
    horizon_s: float,
    node_gpus: np.ndarray,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Failure times (sorted), node indices and cause indices over [0, horizon_s)."""
    causes = load_causes()
    rates = np.array([c.rate_per_gpu_s for c in causes]) * scale
    total_rate = float(rates.sum()) * float(node_gpus.sum())
    if total_rate <= 0 or horizon_s <= 0:
        empty = np.empty(0)
        return empty, empty.astype(np.int64), empty.astype(np.int64)
    n = int(rng.poisson(total_rate * horizon_s))
    times = np.sort(rng.uniform(0.0, horizon_s, n))
    nodes = rng.choice(len(node_gpus), size=n, p=node_gpus / node_gpus.sum())
    kinds = rng.choice(len(causes), size=n, p=rates / rates.sum())
    return times, nodes.astype(np.int64), kinds.astype(np.int64)
