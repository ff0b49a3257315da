"""Named scheduling profiles: `--policy NAME` and the control plane's settings both resolve
here, so no code ever branches on a policy's name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cortex.scheduler.admission import QuotaCheck
from cortex.scheduler.cycle import Policies
from cortex.scheduler.ordering import Fifo, LeastAttainedService, PriorityFairShare
from cortex.scheduler.power import AdmitUncapped, CapToFit, PowerPolicy
from cortex.scheduler.preemption import LasDemotion, NoPreemption, PriorityReclaim


def _fifo(backfill: bool) -> Policies:
    return Policies(ordering=Fifo(), preemption=NoPreemption(), backfill=backfill)


def _priority(backfill: bool) -> Policies:
    return Policies(ordering=PriorityFairShare(), preemption=PriorityReclaim(), backfill=backfill)


def _las(backfill: bool) -> Policies:
    las = LeastAttainedService()
    return Policies(ordering=las, preemption=LasDemotion(las), backfill=backfill)


def _hetero(backfill: bool, per_class: bool = False) -> Policies:
    # Imported here: the hetero profiles' module (and its LP's) is ~25 ms of every `cortex sim`
    # start-up that does not run them (bench/RESULTS.md section 85).
    from cortex.scheduler.hetero import (
        EqFairShare,
        HeteroAllocator,
        TargetFlavorOrder,
        TargetShareCheck,
    )

    return Policies(
        ordering=EqFairShare(),
        admission=(QuotaCheck(), TargetShareCheck()),
        # A queue's nominal quota is a guarantee across priority classes, as in Kueue: it
        # reclaims from higher classes of borrowing queues, and while within its nominal no
        # other queue's job preempts it (docs/hetero.md; bench/RESULTS.md section 65).
        preemption=PriorityReclaim(reclaim_any=True),
        backfill=backfill,
        flavor_order=TargetFlavorOrder(),
        allocator=HeteroAllocator(per_class=per_class),
        # A head blocked on several flavors reserves only the one where it starts first: one
        # gang no longer drains H100, H200 and GB200 at once (bench/RESULTS.md section 79).
        reserve_earliest=True,
    )


def _hetero_class(backfill: bool) -> Policies:
    return _hetero(backfill, per_class=True)


#: fifo: arrival order, no preemption (the classic baseline); priority: priority classes, then
#: weighted DRF between queues, with preemption of lower classes and reclaim of borrowed quota;
#: las: Tiresias' discretized least-attained-service with demotion preemption; hetero: as
#: priority, but flavors and fair shares follow a periodic throughput LP (scheduler/hetero.py),
#: and a queue's nominal quota is a guarantee across priority classes (Kueue's reclaim Any:
#: PriorityReclaim(reclaim_any=True));
#: hetero-class: hetero planning per class (demand as work, gang packing, per-class shares),
#: measured in bench/RESULTS.md section 53 and not better than hetero there.
PROFILES: dict[str, Callable[[bool], Policies]] = {
    "fifo": _fifo,
    "priority": _priority,
    "las": _las,
    "hetero": _hetero,
    "hetero-class": _hetero_class,
}


def policies(name: str, *, backfill: bool = True) -> Policies:
    """Build a named profile; KeyError lists the known names."""
    try:
        return PROFILES[name](backfill)
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(PROFILES)}") from None


# ---- power policies -------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerProfile:
    """What a power policy's name means to a driver (`--power-policy NAME` in the twin and in
    `cortex serve`): the admission policy it plugs into the cycle and how its books are set up.
    Drivers read these flags; none branches on the name."""

    make: Callable[[], PowerPolicy] | None  # the cycle's power policy; None: nothing enforced
    capped_starts: bool = False  # starts may take levels below TDP (else TDP only)
    static: bool = False  # every GPU at one fixed cap, set once
    ramp: bool = False  # the grid's ramp limit applies unless one is given
    needs_site_cap: bool = True  # meaningless without a site cap
    live: bool = True  # `cortex serve` runs it (static and full are the twin's studies)


#: none: model only (the report says how far the site crosses its cap); static: every GPU at
#: one cap; admit: admission at the uncapped draw; cap: admission with per-job caps and the cap
#: solver; full: cap plus the grid ramp limit, staggered starts and a battery (twin only).
POWER_PROFILES: dict[str, PowerProfile] = {
    "none": PowerProfile(None, needs_site_cap=False),
    "static": PowerProfile(None, static=True, live=False),
    "admit": PowerProfile(AdmitUncapped),
    "cap": PowerProfile(CapToFit, capped_starts=True),
    "full": PowerProfile(CapToFit, capped_starts=True, ramp=True, live=False),
}


def power_profile(name: str, *, live: bool = False) -> PowerProfile:
    """The named power profile; KeyError lists the known names (for `live`: those the control
    plane runs)."""
    known = [n for n, p in POWER_PROFILES.items() if p.live or not live]
    if name not in known:
        raise KeyError(f"unknown power policy {name!r}; known: {', '.join(known)}")
    return POWER_PROFILES[name]
