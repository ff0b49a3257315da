"""EASY backfill: the reservation a blocked head holds, its shadow time (when its GPUs will be
free if running jobs end as estimated), and the checks that stop a job behind reserved heads.
Also the watts a blocked job holds back (`power_blocks`: no power backfill). Split from
cycle.py (which reserves with them) to keep modules small."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from cortex.scheduler.power import POWER_CODES
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Plan, Snapshot
from cortex.scheduler.state import ClusterState
from cortex.scheduler.statement import Statement
from cortex.workload.job import Job

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


class Reservation:
    """EASY backfill: the head blocked on a flavor starts at `shadow_s`; `extra_gpus` are free
    then beyond its need, so jobs that end later may use only those."""

    __slots__ = ("extra_gpus", "head", "reason", "shadow_s")

    def __init__(self, head: int, shadow_s: float, extra_gpus: int) -> None:
        self.head = head
        self.shadow_s = shadow_s
        self.extra_gpus = extra_gpus
        self.reason: Reason | None = None  # shared by every job it holds back


PASSES = Code.NOT_EXAMINED  # first_blocked's answer for a job the checks do not stop


def first_blocked(
    job: Job,
    flavors: Sequence[int],
    gangs: tuple[int, ...],
    free: list[int],
    gpn: list[int],
    reserved: dict[int, Reservation],
    estimate_s: Callable[[Job, int, int], float],
    now: float,
) -> Code | None:
    """The code of the first reason the walk's inlined checks give a job whose every flavor is
    reserved (INSUFFICIENT_CAPACITY: too few GPUs free; RESERVED_FOR_HEAD: it would delay the
    head), None without flavors, or PASSES when some flavor and gang passes both checks."""
    first = None
    for f in flavors:
        res = reserved[f]
        fr = free[f]
        g = gpn[f]
        for gang in gangs:
            alloc = gang if gang <= g else -(-gang // g) * g
            if alloc > fr:
                code = Code.INSUFFICIENT_CAPACITY
            elif alloc > res.extra_gpus and now + estimate_s(job, f, gang) > res.shadow_s:
                code = Code.RESERVED_FOR_HEAD
            else:
                return PASSES
            if first is None:
                first = code
    return first


def widest(gpus: int, gpn: int) -> int:
    """The widest gang whose whole-node allocation fits in `gpus` GPUs: for any gang,
    alloc_size(gang, gpn) > gpus exactly when gang > widest(gpus, gpn) (allocations are the
    gang up to a node, whole nodes beyond)."""
    return gpus if gpus < gpn else gpus - gpus % gpn


def blocked_judge(
    snap: Snapshot,
    flavor_order: Any,
    every_flavor: tuple[int, ...],
    reserved: dict[int, Reservation],
    first_codes: dict[Code, int],
    judged: list[int],
) -> tuple[Callable[[Job], bool], Callable[[], None] | None]:
    """A skip request's judge (scheduler/ordering.py) for a deep pass whose every flavor has a
    reserved head: what the walk does with a job that fits under the top free count, without
    walking it. True when `first_blocked` stops the job (its first code counted in
    `first_codes`, and one in `judged[0]`); False when it passes (the walk then takes it).
    Nothing moves while it says True, so the free counts and reservations it reads stand.

    With it, `fresh` (or None): a judge that keeps what it reads of the free counts and the
    reservations' extra GPUs between calls reads them again when `fresh()` is called; the walk
    calls it at every skip request after the first (only a job the walk takes between two
    requests moves them)."""
    st = snap.state
    free = st.free_gpus
    gpn = st.gpn
    estimate_s = snap.estimate_s
    now = snap.now_s

    insufficient = Code.INSUFFICIENT_CAPACITY
    held_back = Code.RESERVED_FOR_HEAD

    def judge(job: Job) -> bool:
        # first_blocked, inlined (the month asks ~500k jobs): the same checks in the same order.
        gpus = job.gpus
        emin = job.elastic_min
        gangs = (gpus, emin) if emin is not None and emin < gpus else (gpus,)
        first = None
        for f in (
            job.flavor_ids or every_flavor
            if flavor_order is None
            else flavor_order.flavors(snap, job)
        ):
            res = reserved[f]
            fr = free[f]
            g = gpn[f]
            for gang in gangs:
                alloc = gang if gang <= g else -(-gang // g) * g
                if alloc > fr:
                    code = insufficient
                elif alloc > res.extra_gpus and now + estimate_s(job, f, gang) > res.shadow_s:
                    code = held_back
                else:
                    return False  # it passes: the walk takes it
                if first is None:
                    first = code
        if first is not None:
            first_codes[first] = first_codes.get(first, 0) + 1
        judged[0] += 1
        return True

    if flavor_order is not None:
        return judge, None
    if len(every_flavor) != 1:
        # Several flavors without a flavor order (cortex-2024: H100 and H200): a job that names
        # no flavors and has one gang tries every flavor in the fleet's order, one check each.
        # Each flavor's reservation stays its object for the pass (every flavor is reserved
        # before the first skip request), so (flavor, reservation, GPUs a node) are bound once.
        rows = tuple((f, reserved[f], gpn[f]) for f in every_flavor)

        def judge_plain(job: Job) -> bool:
            emin = job.elastic_min
            if job.flavor_ids or (emin is not None and emin < job.gpus):
                return judge(job)
            gpus = job.gpus
            # The driver's estimates for this whole gang by flavor, where it keeps them (the
            # twin: Job.est_gang_s): one list read instead of a call that builds and hashes a
            # (flavor, gang) key, ~2 a judged job (RESULTS.md section 112). None: ask.
            ests = job.est_gang_s
            first = None
            for f, res, g in rows:
                alloc = gpus if gpus <= g else -(-gpus // g) * g
                if alloc > free[f]:
                    code = insufficient
                elif alloc > res.extra_gpus:
                    est = None if ests is None else ests[f]
                    if est is None:
                        est = estimate_s(job, f, gpus)
                    if not now + est > res.shadow_s:
                        return False  # it passes: the walk takes it
                    code = held_back
                else:
                    return False  # it passes: the walk takes it
                if first is None:
                    first = code
            assert first is not None  # every_flavor is never empty
            first_codes[first] = first_codes.get(first, 0) + 1
            judged[0] += 1
            return True

        if len(rows) != 2:
            return judge_plain, None
        # Two flavors (cortex-2024's H100 and H200, ~320k judged jobs in ten days): judge_plain
        # with its loop unrolled, the second flavor's code never counted (the first one's is).
        # Each flavor's free count and extra GPUs are kept as the widest gang they take
        # (`widest`), read again at each skip request (`fresh`): the whole-node rounding and
        # three reads a flavor go from every judged job (RESULTS.md section 117).
        (f0, r0, g0), (f1, r1, g1) = rows
        cap0 = ext0 = cap1 = ext1 = 0

        def fresh() -> None:
            nonlocal cap0, ext0, cap1, ext1
            cap0 = widest(free[f0], g0)
            ext0 = widest(r0.extra_gpus, g0)
            cap1 = widest(free[f1], g1)
            ext1 = widest(r1.extra_gpus, g1)

        fresh()

        def judge_two(job: Job) -> bool:
            emin = job.elastic_min
            if job.flavor_ids or (emin is not None and emin < job.gpus):
                return judge(job)
            gpus = job.gpus
            ests = job.est_gang_s
            if gpus > cap0:
                code = insufficient
            elif gpus > ext0:
                est = None if ests is None else ests[f0]
                if est is None:
                    est = estimate_s(job, f0, gpus)
                if not now + est > r0.shadow_s:
                    return False  # it passes: the walk takes it
                code = held_back
            else:
                return False
            if gpus <= cap1:
                if gpus <= ext1:
                    return False
                est = None if ests is None else ests[f1]
                if est is None:
                    est = estimate_s(job, f1, gpus)
                if not now + est > r1.shadow_s:
                    return False
            first_codes[code] = first_codes.get(code, 0) + 1
            judged[0] += 1
            return True

        return judge_two, fresh
    # One flavor (a one-SKU fleet): the same checks without the loops over flavors and gangs. Its
    # reservation stays this object for the pass; its extra GPUs and the free count are read at
    # each call (a job the judge passes may start and spend them).
    res0 = reserved[0]
    g0 = gpn[0]
    one = (0,)

    def judge_one(job: Job) -> bool:
        flavors = job.flavor_ids
        if flavors and flavors != one:
            return judge(job)
        gpus = job.gpus
        fr = free[0]
        alloc = gpus if gpus <= g0 else -(-gpus // g0) * g0
        if alloc > fr:
            code = insufficient
        elif alloc > res0.extra_gpus and now + estimate_s(job, 0, gpus) > res0.shadow_s:
            code = held_back
        else:
            return False  # it passes: the walk takes it
        emin = job.elastic_min
        if emin is not None and emin < gpus:
            alloc = emin if emin <= g0 else -(-emin // g0) * g0
            if alloc <= fr and (
                alloc <= res0.extra_gpus or not now + estimate_s(job, 0, emin) > res0.shadow_s
            ):
                return False  # its smaller gang passes
        first_codes[code] = first_codes.get(code, 0) + 1
        judged[0] += 1
        return True

    return judge_one, None


def power_blocks(snap: Snapshot, plan: Plan, job: Job, reasons: list[Reason]) -> bool:
    """Watts block this job on some flavor, and it would fit once running work frees them: the
    next watts freed are its own, so nothing behind it may take them (no power backfill: it
    would starve large jobs). Also when GPUs block it on another flavor: its reservation there
    guards GPUs, not watts, and small starts behind it would take its freed GPUs and keep the
    ramp window from clearing (bench/RESULTS.md, section 52). Sets the plan's rest reason."""
    assert snap.power is not None
    for r in reasons:
        if r.code in POWER_CODES and r.detail.get("domain", "site") == "site":
            if r.detail.get("need_mw", 0.0) * 1e6 <= snap.power.site_budget_w:
                plan.rest_reason = Reason(r.code, job=job.id, **r.detail)
                return True
            return False
    return False
