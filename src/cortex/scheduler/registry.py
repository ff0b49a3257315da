"""Named scheduling profiles: `--policy NAME` and the control plane's settings both resolve
here, so no code ever branches on a policy's name."""

from __future__ import annotations

from collections.abc import Callable

from cortex.scheduler.admission import QuotaCheck
from cortex.scheduler.cycle import Policies
from cortex.scheduler.hetero import (
    EqFairShare,
    HeteroAllocator,
    TargetFlavorOrder,
    TargetShareCheck,
)
from cortex.scheduler.ordering import Fifo, LeastAttainedService, PriorityFairShare
from cortex.scheduler.preemption import LasDemotion, NoPreemption, PriorityReclaim


def _fifo(backfill: bool) -> Policies:
    return Policies(ordering=Fifo(), preemption=NoPreemption(), backfill=backfill)


def _priority(backfill: bool) -> Policies:
    return Policies(ordering=PriorityFairShare(), preemption=PriorityReclaim(), backfill=backfill)


def _las(backfill: bool) -> Policies:
    las = LeastAttainedService()
    return Policies(ordering=las, preemption=LasDemotion(las), backfill=backfill)


def _hetero(backfill: bool) -> Policies:
    return Policies(
        ordering=EqFairShare(),
        admission=(QuotaCheck(), TargetShareCheck()),
        preemption=PriorityReclaim(),
        backfill=backfill,
        flavor_order=TargetFlavorOrder(),
        allocator=HeteroAllocator(),
    )


#: fifo: arrival order, no preemption (the classic baseline); priority: priority classes, then
#: weighted DRF between queues, with preemption of lower classes and reclaim of borrowed quota;
#: las: Tiresias' discretized least-attained-service with demotion preemption; hetero: as
#: priority, but flavors and fair shares follow a periodic throughput LP (scheduler/hetero.py).
PROFILES: dict[str, Callable[[bool], Policies]] = {
    "fifo": _fifo,
    "priority": _priority,
    "las": _las,
    "hetero": _hetero,
}


def policies(name: str, *, backfill: bool = True) -> Policies:
    """Build a named profile; KeyError lists the known names."""
    try:
        return PROFILES[name](backfill)
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(PROFILES)}") from None
