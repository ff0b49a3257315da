"""A preemption try on the cycle's statement: evict the cheapest eligible victims, then admit and
place the preemptor, or undo it all. `_Cycle.try_preempt` (cycle.py) calls it per flavor; kept
apart so that the cycle module stays within its size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cortex.scheduler.placement import alloc_size
from cortex.scheduler.power import AdmitUncapped, CapToFit, PowerPolicy, PowerView, Watts
from cortex.scheduler.reasons import Reason
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import Placement
from cortex.scheduler.statement import Statement
from cortex.scheduler.victims import find_victims
from cortex.workload.job import Job

if TYPE_CHECKING:
    from cortex.scheduler.cycle import Policies


def admit(snap: Snapshot, pol: Policies, job: Job, f: int, alloc: int) -> Reason | None:
    for check in pol.admission:
        r = check.check(snap, job, f, alloc)
        if r is not None:
            return r
    return None


def try_preempt(
    snap: Snapshot, pol: Policies, stmt: Statement, job: Job, f: int, gang: int
) -> tuple[Placement, list[Job]] | bool:
    """Evict the cheapest eligible victims on the statement; keep them if the job then passes
    admission and placement, else roll back. Returns the placement and victims, or whether a
    victim search ran at all (False: the policy's cheap check ruled it out)."""
    st = snap.state
    alloc = alloc_size(gang, st.gpn[f])
    if not pol.preemption.may_preempt(snap, job, f, alloc):
        return False
    # The summaries show the fleet before the statement's first eviction (Statement.evict).
    ids = find_victims(snap, pol.preemption, gang, f, job, summaries_exact=not stmt.evicted)
    if not ids:
        return True
    victims = [st.running[i] for i in ids]
    if _power_refuses(snap, pol, stmt, job, f, gang, victims):
        # What the cycle's power admission would say after the evictions and the placement:
        # a refusal, which rolls them back (RESULTS.md, section 152).
        return True
    held = {v.id: st.allocations[v.id].placement for v in victims}
    got = evict_and_place(snap, pol, stmt, job, f, gang, alloc, victims)
    if got is None:
        return True
    # The placement policy chooses among all free nodes, not only the victims': a victim none
    # of whose nodes it took would lose its work for nothing. Retry without such victims.
    taken = {n for n, _ in got[0]}
    needed = [v for v in victims if any(n in taken for n, _ in held[v.id])]
    if len(needed) < len(victims):
        stmt.rollback(got[2])
        fewer = evict_and_place(snap, pol, stmt, job, f, gang, alloc, needed)
        if fewer is not None:
            return fewer[0], needed
        got = evict_and_place(snap, pol, stmt, job, f, gang, alloc, victims)
        if got is None:
            return True
    return got[0], victims


def evict_and_place(
    snap: Snapshot,
    pol: Policies,
    stmt: Statement,
    job: Job,
    f: int,
    gang: int,
    alloc: int,
    victims: list[Job],
) -> tuple[Placement, list[Job], int] | None:
    """Evict `victims` on the statement and place the job; roll back if it does not fit.
    Returns the placement, the victims and the statement mark to undo the evictions."""
    mark = stmt.mark()
    for v in victims:
        stmt.evict(v)
    if admit(snap, pol, job, f, alloc) is None:
        placement = pol.placement.place(snap.state, f, gang)
        if placement is not None:
            return placement, victims, mark
    stmt.rollback(mark)
    return None


def _power_refuses(
    snap: Snapshot, pol: Policies, stmt: Statement, job: Job, f: int, gang: int, victims: list[Job]
) -> bool:
    """Whether the cycle's power admission (`_Cycle.try_preempt`) surely refuses this start
    with whichever of the victims `try_preempt` keeps (all, or those whose nodes the placement
    took) and wherever it is placed, so that the evictions, the placement and their undo can
    be skipped: the search's answer, "searched, nothing started", is the same.

    The credit of the victims kept lies between two bounds known before any eviction: at most
    that of all of them (the same float sum in the same order, over fewer terms none negative),
    and at least the cheapest watts per GPU over the GPUs the placement must take from victims
    (its `gang` GPUs less the flavor's free ones: a victim is kept if it holds any node the
    placement takes, and gives at most its own GPUs there). With them, `_levels_refuse` walks
    the levels as `CapToFit.admit` and `AdmitUncapped.admit` do. On cortex-2024's month under
    `full` it catches all 35 searches refused on the site and 11 of the 15 giants refused on
    the ramp (RESULTS.md, section 152)."""
    view = snap.power
    room = stmt.watts
    power = pol.power
    if view is None or room is None or power is None:
        return False
    walk = _first_levels(power, view, room, job, f)
    if walk is None:
        return False
    firsts, last = walk
    high_w = room.credit(view, victims)[0]
    low_w = 0.0
    if room.ramp_w < view.ramp_limit_w:  # the low bound matters only on the ramp (below)
        low_w = _credit_low_w(snap, view, room, f, gang, victims)
    return _levels_refuse(view, room, job, f, gang, firsts, last, low_w, high_w)


def _first_levels(
    power: PowerPolicy, view: PowerView, room: Watts, job: Job, f: int
) -> tuple[set[int], int] | None:
    """The levels `power.admit` may try first (for any placement) and the last it tries; None
    for a policy whose walk is not known here."""
    if isinstance(power, CapToFit):
        target = view.target
        floor = view.floor
        # The level tried first is the class's in the placement's hall: any hall.
        firsts = {
            min(target.get((job.kind, f, job.priority, h), 0), floor)
            for h in range(len(room.hall_w))
        }
        return firsts, floor
    if isinstance(power, AdmitUncapped):
        return {0}, 0
    return None


def _credit_low_w(
    snap: Snapshot, view: PowerView, room: Watts, f: int, gang: int, victims: list[Job]
) -> float:
    """A lower bound on the credit of the victims a placement of `gang` GPUs keeps (see
    `_power_refuses`), less a margin for the float sums' order; 0 if any gives back less than
    nothing."""
    st = snap.state
    short = gang - st.free_gpus[f]
    if short <= 0:
        return 0.0
    released = room.released
    allocations = st.allocations
    per_gpu: list[tuple[float, int]] = []
    for v in victims:
        w = 0.0 if v.id in released else view.job_inc_w(v.id)[0]
        if not w >= 0.0:
            return 0.0
        k = allocations[v.id].gpus
        if k > 0:
            per_gpu.append((w / k, k))
    per_gpu.sort()
    low = 0.0
    for w, k in per_gpu:
        take = k if k < short else short
        low += w * take
        short -= take
        if short <= 0:
            break
    return max(0.0, low * (1.0 - 1e-9) - 1.0)


def _levels_refuse(
    view: PowerView,
    room: Watts,
    job: Job,
    f: int,
    gang: int,
    firsts: set[int],
    last: int,
    low_w: float,
    high_w: float,
) -> bool:
    """Whether an admission that tries one of `firsts` first, then each lower cap down to
    `last`, with a credit between `low_w` and `high_w` and any placement, refuses. Admission
    (`_fits` at each level) goes to the next level when the site or a hall refuses, and stops
    at the first level they take: granted unless the window is not clear and the step is more
    than it has left. A level passes on when the site refuses even its least step (the most
    capped racks) with the most credit; a level whose least step the window refuses either
    passes on or stops refused, and surely stops when the site (with the least credit) and
    every hall (with none) take its largest step (uncapped); past `last` admission refuses.
    Any other level may grant. As `scheduler/power.py`'s `_ramp_refuses`, with the credit."""
    if view.min_node_cap_w < math.inf:
        # Under rack caps a level's draw is not monotone in the node cap (the books' ladder
        # keeps only its concave hull: a level off it takes the level above's draw), so the
        # steps at the least cap and uncapped bound no placement's: not told here.
        return False
    clear = room.ramp_w >= view.ramp_limit_w
    idle = view.idle_w[f]
    hall_w = min(room.hall_w, default=math.inf)
    site_w = room.site_w
    for first in firsts:
        level = first
        while True:
            low = gang * (view.per_gpu_w(job.kind, f, level, view.min_node_cap_w) - idle)
            if low > site_w + high_w:
                pass  # the site refuses this level: the next one is tried
            elif not clear and low > room.ramp_w:
                high = gang * (view.per_gpu_w(job.kind, f, level, math.inf) - idle)
                if high <= site_w + low_w and high <= hall_w:
                    break  # it stops here, refused on the ramp
            else:
                return False
            if level >= last:
                break  # refused at the floor
            level += 1
    return True
