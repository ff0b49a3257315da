"""Named scheduling profiles: `--policy NAME` and the control plane's settings both resolve
here, so no code ever branches on a policy's name."""

from __future__ import annotations

from collections.abc import Callable

from cortex.scheduler.cycle import Policies
from cortex.scheduler.ordering import Fifo, LeastAttainedService, PriorityFairShare
from cortex.scheduler.preemption import LasDemotion, NoPreemption, PriorityReclaim


def _fifo(backfill: bool) -> Policies:
    return Policies(ordering=Fifo(), preemption=NoPreemption(), backfill=backfill)


def _priority(backfill: bool) -> Policies:
    return Policies(ordering=PriorityFairShare(), preemption=PriorityReclaim(), backfill=backfill)


def _las(backfill: bool) -> Policies:
    las = LeastAttainedService()
    return Policies(ordering=las, preemption=LasDemotion(las), backfill=backfill)


#: fifo: arrival order, no preemption (the classic baseline); priority: priority classes, then
#: weighted DRF between queues, with preemption of lower classes and reclaim of borrowed quota;
#: las: Tiresias' discretized least-attained-service with demotion preemption.
PROFILES: dict[str, Callable[[bool], Policies]] = {
    "fifo": _fifo,
    "priority": _priority,
    "las": _las,
}


def policies(name: str, *, backfill: bool = True) -> Policies:
    """Build a named profile; KeyError lists the known names."""
    try:
        return PROFILES[name](backfill)
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(PROFILES)}") from None
