"""A preemption try on the cycle's statement: evict the cheapest eligible victims, then admit and
place the preemptor, or undo it all. `_Cycle.try_preempt` (cycle.py) calls it per flavor; kept
apart so that the cycle module stays within its size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cortex.scheduler.placement import alloc_size
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
