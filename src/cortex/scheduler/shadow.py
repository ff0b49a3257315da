"""EASY backfill's shadow time: when a blocked head's GPUs will be free if running jobs end as
estimated. Split from cycle.py (which reserves with it) to keep modules small."""

from __future__ import annotations

import math

from cortex.scheduler.state import ClusterState
from cortex.scheduler.statement import Statement

# The EASY shadow walks running jobs by expected end; past this many it stops and takes the end
# reached so far, which only moves the reserved start earlier (stricter for backfill, never later
# for the head).
SHADOW_WALK_MAX = 256


def shadow(st: ClusterState, stmt: Statement, f: int, need: int, now: float) -> tuple[float, int]:
    """When `need` GPUs of flavor f will be free if running jobs end as estimated, and how many
    GPUs beyond the head's need are free then (EASY's "extra")."""
    acc = st.free_gpus[f]
    fragmented = acc >= need
    if fragmented and need > st.gpn[f]:
        # Blocked by topology, not count: count whole nodes freed from the next end on.
        acc = 0
    evicted = stmt.evicted
    if not evicted:
        # The answer depends only on the first SHADOW_WALK_MAX + 1 ends, `acc` and `need`: a
        # flavor whose soonest ends have not moved since its last reservation (the same tuples,
        # compared in C) gets the last answer. On cortex-2026 deep passes reserve the H100 and
        # H200 flavors on nearly every pass, each walk 257 ends long (RESULTS.md, section 57).
        head = st.ends[f][: SHADOW_WALK_MAX + 1]
        memo = st.shadow_memo.get(f)
        if memo is not None and memo[0] == (acc, need, fragmented) and memo[1] == head:
            end_s, extra = memo[2]
        else:
            end_s, extra = walk_ends(head, acc, need, fragmented)
            st.shadow_memo[f] = ((acc, need, fragmented), head, (end_s, extra))
        return max(end_s, now), extra
    for i, (end_s, job_id, gpus) in enumerate(st.ends[f]):
        if job_id in evicted:
            continue
        acc += gpus
        if acc >= need:
            # Counts cannot say where a fragmented head will fit, so it leaves no extra.
            return max(end_s, now), 0 if fragmented else acc - need
        if i >= SHADOW_WALK_MAX:
            return max(end_s, now), 0
    return math.inf, 0


def walk_ends(
    head: list[tuple[float, int, int]], acc: int, need: int, fragmented: bool
) -> tuple[float, int]:
    """`shadow`'s walk over the soonest ends with nothing evicted: the end at which `need`
    GPUs are free (not yet bounded below by now), and the extra then."""
    for i, (end_s, _, gpus) in enumerate(head):
        acc += gpus
        if acc >= need:
            # Counts cannot say where a fragmented head will fit, so it leaves no extra.
            return end_s, 0 if fragmented else acc - need
        if i >= SHADOW_WALK_MAX:
            return end_s, 0
    return math.inf, 0
