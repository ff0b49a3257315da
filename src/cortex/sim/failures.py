"""Failure model, in two parts.

Node failures: per-cause rates from the Llama 3 census, with detection, job-recovery and
node-repair times (data/failures.csv). Nodes differ: each has a rate multiplier drawn from a
lognormal whose spread puts Kokolis et al.'s lemon share of failures on their lemon share of
nodes (data/reliability.csv), normalized to a fleet mean of 1 so that the census totals hold.
Node failures are drawn up front for the whole horizon: the superposition of per-node Poisson
processes is one Poisson process whose events land on a node chosen in proportion to its
accelerators times its multiplier.

Job failures: research jobs (every priority class but production) also fail for reasons of
their own (user code, system software: data/job_failures.csv), at a rate per job that grows
with its size as c * (gpus / 8) ** alpha, fitted so that node and job failures together give
Kokolis et al.'s mean time to failure at 8 and 1,024 GPUs. Production runs are the Llama 3
regime, whose own software causes are already rows of the census.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from cortex.errors import InputError, columns_once, read_text

GPUS_PER_NODE = 8  # the studies' node: 8 A100 (Meta RSC) or 8 H100 (Llama 3)


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
    node_mult: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Failure times (sorted), node indices and cause indices over [0, horizon_s). A node's
    share of the failures is its accelerators times `node_mult` (default: all 1)."""
    causes = load_causes()
    rates = np.array([c.rate_per_gpu_s for c in causes]) * scale
    total_rate = float(rates.sum()) * float(node_gpus.sum())
    if total_rate <= 0 or horizon_s <= 0:
        empty = np.empty(0)
        return empty, empty.astype(np.int64), empty.astype(np.int64)
    weight = node_gpus if node_mult is None else node_gpus * node_mult
    n = int(rng.poisson(total_rate * horizon_s * float(weight.sum() / node_gpus.sum())))
    times = np.sort(rng.uniform(0.0, horizon_s, n))
    nodes = rng.choice(len(node_gpus), size=n, p=weight / weight.sum())
    kinds = rng.choice(len(causes), size=n, p=rates / rates.sum())
    return times, nodes.astype(np.int64), kinds.astype(np.int64)


# ---- node spread ------------------------------------------------------------------------------
def node_multipliers(rng: np.random.Generator, n_nodes: int) -> np.ndarray:
    """Per-node failure-rate multipliers, mean exactly 1: a heavy-tailed two-class mixture.
    A seeded `lemon_node_share` of the nodes (rounded at random) are lemons; every node's rate
    is lognormal (`node_rate_log_sd`), then the lemons' rates are scaled so that they carry
    `lemon_failure_share` of the fleet's node failures. (One lognormal with that tail would
    need a log-sd near 2.8 and put a third of a 12,500-node fleet's failures on one node.)"""
    if n_nodes <= 0:
        return np.ones(0)
    r = load_reliability()
    share = r["lemon_failure_share"]
    m = rng.lognormal(0.0, r["node_rate_log_sd"], n_nodes)
    n_lemon = math.floor(r["lemon_node_share"] * n_nodes + rng.random())
    if 0 < n_lemon < n_nodes:
        lemon = rng.choice(n_nodes, size=n_lemon, replace=False)
        lemons = float(m[lemon].sum())
        m[lemon] *= share * (float(m.sum()) - lemons) / ((1.0 - share) * lemons)
    return m / m.mean()


# ---- job failures -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobCause:
    """A cause of job failures of its own (not a node's): the share of a class's job failures."""

    name: str
    category: str
    applies_to: str
    share: float
    detect_s: float
    recover_s: float


JOB_CLASSES = ("research", "production")


def load_job_causes(path: str | Path | None = None) -> tuple[JobCause, ...]:
    """Job-failure causes (data/job_failures.csv, or `path`). Raises InputError naming the row
    and field for a negative or non-numeric value, an unknown class, or shares of a class that
    do not sum to 1."""
    if path is None:
        src = "sim/data/job_failures.csv"
        text = resources.files("cortex.sim").joinpath("data/job_failures.csv").read_text()
    else:
        src = str(path)
        text = read_text(path, src)
    reader = csv.DictReader(text.splitlines())
    columns_once(reader.fieldnames, src)
    rows = list(reader)
    need = ("cause", "category", "applies_to", "share", "detect_s", "recover_s")
    if not rows or any(c not in rows[0] for c in need):
        raise InputError(src, "row 1", f"expected columns {', '.join(need)}")
    out = []
    for line, row in enumerate(rows, start=2):
        vals = {}
        for col in ("share", "detect_s", "recover_s"):
            try:
                vals[col] = float(row[col] or "")
            except ValueError:
                raise InputError(src, f"row {line}: {col}", f"not a number: {row[col]!r}") from None
            if not math.isfinite(vals[col]) or vals[col] < 0:
                raise InputError(
                    src, f"row {line}: {col}", f"must be a finite number >= 0, got {row[col]}"
                )
        if row["applies_to"] not in JOB_CLASSES:
            raise InputError(
                src, f"row {line}: applies_to", f"{row['applies_to']!r} is not one of {JOB_CLASSES}"
            )
        out.append(
            JobCause(
                row["cause"], row["category"], row["applies_to"], vals["share"],
                vals["detect_s"], vals["recover_s"],
            )
        )  # fmt: skip
    for cls in JOB_CLASSES:
        # A class with no rows has no causes of its own; one with rows must split them all
        # (shares of 0 all round still sent every failure to the class's last cause).
        total = sum(c.share for c in out if c.applies_to == cls)
        if any(c.applies_to == cls for c in out) and abs(total - 1.0) > 1e-6:
            raise InputError(src, "share", f"the {cls} causes' shares sum to {total:g}, not 1")
    return tuple(out)


@cache
def load_reliability() -> dict[str, float]:
    """Calibration targets and node-spread figures (data/reliability.csv)."""
    text = resources.files("cortex.sim").joinpath("data/reliability.csv").read_text()
    return {row["name"]: float(row["value"]) for row in csv.DictReader(text.splitlines())}


@cache
def job_rate_law() -> tuple[float, float]:
    """(c per hour, alpha): a research job of g GPUs fails for causes of its own at
    c * (g / 8) ** alpha per hour. Fitted through Kokolis et al.'s two mean times to failure
    less the census's node failures at the fleet's mean rate (2 equations, 2 unknowns)."""
    r = load_reliability()
    per_gpu_h = rate_per_gpu_s() * 3600.0
    pts = [(8.0, r["research_mttf_8gpu_h"]), (1024.0, r["research_mttf_1024gpu_h"])]
    own = [(g / GPUS_PER_NODE, 1.0 / mttf - g * per_gpu_h) for g, mttf in pts]
    (n1, r1), (n2, r2) = own
    alpha = math.log(r2 / r1) / math.log(n2 / n1)
    return r1 / n1**alpha, alpha


def job_rate_per_s(gpus: int, priority_class: str, scale: float = 1.0) -> float:
    """A job's rate of failures of its own, per second of its run."""
    if priority_class == "production":
        return 0.0
    c, alpha = job_rate_law()
    return scale * c * (gpus / GPUS_PER_NODE) ** alpha / 3600.0
