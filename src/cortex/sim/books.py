"""The GPU-hour books: every installed GPU-second of a twin run in exactly one category.

installed = down + idle + allocated + the victims' checkpoint writes on devices already freed,
and allocated time is split by what it was spent on (sim/runs.py). Lost to power caps and lost
to heat are the throughput a run gave up while it held its GPUs: with `--power-policy none`
nothing is capped, but hot hours still slow every run (power/cooling.py's heat loss).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cortex.drive.goodput import CATEGORIES

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
