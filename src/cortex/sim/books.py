"""The GPU-hour books: every installed GPU-second of a twin run in exactly one category.

installed = down + idle + allocated + the victims' checkpoint writes on devices already freed,
and allocated time is split by what it was spent on (sim/runs.py). Lost to power caps and lost
to heat are the throughput a run gave up while it held its GPUs: with `--power-policy none`
nothing is capped, but hot hours still slow every run (power/cooling.py's heat loss).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cortex.drive.goodput import CATEGORIES
from cortex.sim.flavor_books import ALLOCATED, IN_PROGRESS, ROW_CATEGORY, UNALLOCATED_WRITE

if TYPE_CHECKING:
    from cortex.sim.twin import Twin


def books_gpu_s(tw: Twin) -> dict[str, float]:
    """GPU-seconds per category (CATEGORIES order) plus `installed`; the categories sum to
    `installed` up to floating-point rounding."""
    m = tw.metrics
    installed = float(tw.topo.total_gpus) * tw.cfg.horizon_s
    up = float(m.up_bins.sum())
    out = {
        "productive": m.productive_gpu_s,
        "rework_after_failures": m.rework_failure_gpu_s,
        "rework_after_preemptions": m.rework_preempt_gpu_s,
        "restart_overhead": m.restart_gpu_s,
        "checkpoint_writes": m.checkpoint_gpu_s,
        "lost_to_power_caps": m.cap_loss_gpu_s,
        "lost_to_heat": m.heat_loss_gpu_s,
        "gang_rounding": m.fragment_gpu_s,
        "idle": up - m.alloc_gpu_s - m.unallocated_write_gpu_s,
        "down": installed - up,
    }
    if tw.spares is not None:  # held out of service as down nodes are, but on purpose
        out["hot_spare"] = tw.spares.gpu_s
        out["down"] -= tw.spares.gpu_s
    out["installed"] = installed
    return out


def categories(tw: Twin) -> tuple[str, ...]:
    """The run's categories: CATEGORIES, and `hot_spare` when it keeps spares."""
    return CATEGORIES + (("hot_spare",) if tw.spares is not None else ())


def books_gpu_s_by_flavor(tw: Twin) -> dict[str, dict[str, float]]:
    """The books per flavor (sim/flavor_books.py): for each flavor, GPU-seconds per category
    (the run's categories) plus `installed`, and the memo lines `allocated` and
    `in_progress_at_end`. Each flavor's categories sum to its installed GPU-seconds, and each
    category summed over the flavors is the fleet's, up to floating-point rounding."""
    horizon = tw.cfg.horizon_s
    fb = tw.flavor_books
    up = fb.up_gpu_s(horizon)
    spare = tw.spares.gpu_s_by_flavor if tw.spares is not None else {}
    out: dict[str, dict[str, float]] = {}
    for f, (name, gpus) in enumerate(zip(tw.topo.flavors, tw.topo.flavor_gpus(), strict=True)):
        row = fb.rows[f]
        installed = float(gpus) * horizon
        b = {cat: row[i] for i, cat in ROW_CATEGORY}
        b["idle"] = up[f] - row[ALLOCATED] - row[UNALLOCATED_WRITE]
        b["down"] = installed - up[f]
        if tw.spares is not None:
            b["hot_spare"] = spare.get(f, 0.0)
            b["down"] -= b["hot_spare"]
        b["installed"] = installed
        b["allocated"] = row[ALLOCATED]
        b["in_progress_at_end"] = row[IN_PROGRESS]
        out[name] = b
    return out
