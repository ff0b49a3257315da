"""The cycle's walk over pending jobs as it was before it read free GPUs and reservations only
after a job that moved them (scheduler/cycle.py, main 7f1d218, with full5's power stop after
a reservation), kept as the reference that tests/unit/test_walk_fast.py compares the walk with."""

from __future__ import annotations

from collections.abc import Sequence

from cortex.scheduler.cycle import Policies, _Cycle, _power_blocks
from cortex.scheduler.placement import alloc_size
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Snapshot

# ruff: noqa


def _walk(c: _Cycle, snap: Snapshot, pol: Policies, deep: bool, explain: bool = True) -> None:
    """Steps 1-6 over the pending jobs, into c.plan, with tentative moves on c.stmt."""
    plan = c.plan
    st = c.st
    free = st.free_gpus
    gpn = st.gpn
    n_flavors = len(free)
    reserved = c.reserved
    blockers = plan.blockers
    every_flavor = c.every_flavor
    max_examined = pol.max_examined
    try_flavor = c.try_flavor
    capacity_reason = c.capacity_reason
    capacity_reasons = c.capacity_reasons
    estimate_s = snap.estimate_s
    now = snap.now_s
    flavor_order = pol.flavor_order
    # 1. Walk pending jobs in the ordering policy's order.
    for job in pol.ordering.order(snap):
        if plan.examined >= max_examined:
            plan.rest_reason = Reason(Code.NOT_EXAMINED, why="examined limit reached")
            break
        if (c.tries <= 0 or not deep) and not any(free):
            plan.rest_reason = Reason(Code.NOT_EXAMINED, why="no free GPUs left")
            break
        plan.examined += 1
        gpus = job.gpus
        emin = job.elastic_min
        smallest = emin or gpus
        if not explain and len(reserved) == n_flavors and smallest > max(free):
            plan.capacity_blocked += 1  # the branch below, without the reason
            continue
        flavors: Sequence[int] = (
            job.flavor_ids or every_flavor
            if flavor_order is None
            else flavor_order.flavors(snap, job)
        )
        if len(reserved) == n_flavors and smallest > max(free):
            # Every flavor waits for its head and this job needs more than any has free.
            f0 = flavors[0]
            blockers[job.id] = [capacity_reason(f0, alloc_size(smallest, gpn[f0]))]
            continue
        gangs = (gpus, emin) if emin is not None and emin < gpus else (gpus,)
        reasons: list[Reason] = []
        short: list[int] = []  # flavors where capacity or topology blocked it
        started = False
        for f in flavors:
            res = reserved.get(f)
            for gang in gangs:
                if res is not None:
                    # try_flavor's first two checks, inlined: they stop most jobs behind a
                    # reserved head, and a pass walks hundreds of such jobs.
                    g = gpn[f]
                    alloc = gang if gang <= g else -(-gang // g) * g
                    if alloc > free[f]:
                        r = capacity_reasons.get((f, alloc, free[f]))  # capacity_reason's cache
                        reasons.append(capacity_reason(f, alloc) if r is None else r)
                        continue
                    if alloc > res.extra_gpus and now + estimate_s(job, f, gang) > res.shadow_s:
                        reasons.append(res.reason or c.reserved_reason(f, res))
                        continue
                if try_flavor(job, f, gang, reasons, short):
                    started = True
                    break
            if started:
                break
        if started or (deep and short and c.try_preempt(job, short)):
            continue
        blockers[job.id] = reasons
        if short:
            c.reserve(job, short)
        if snap.power is not None and _power_blocks(snap, plan, job, reasons):
            break
        if not deep and len(reserved) == n_flavors:
            plan.rest_reason = Reason(Code.NOT_EXAMINED, why="behind blocked heads")
            break
