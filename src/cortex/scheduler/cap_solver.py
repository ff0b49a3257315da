"""The cap solver: `solve_caps` re-divides the site's IT budget (over idle) among running jobs
(raise caps when watts are free; lower them, then pause the lowest priorities, when the budget
shrinks), and `make_room` re-divides it with a pending job short of watts as a member. Pure
functions over `CapJob`s that both drivers build from their books (drive/power_jobs.py);
re-exported by cortex.scheduler.power, whose admission policies read the `target` levels a
solve leaves. Split out of scheduler/power.py to keep modules under 600 lines.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from itertools import compress
from operator import add, attrgetter, eq, or_, sub
from typing import Any

# A class of running jobs shares one cap level: same kind, flavor, priority and main hall.
ClassKey = tuple[str, int, int, int]


# The solver adds watts and throughputs as integers: a job's IT increment in units of 2**-30 W
# (about a nanowatt) and its gain-weighted throughput in units of 2**-60. Integer sums are exact
# in any order, so the books can keep each class's sums as its jobs start and stop
# (drive/power_jobs.py) and a solve reads them instead of adding every running job again: a
# float sum kept under removals would differ in its last bits from one over the running set.
# x * 2**k is exact for a double, so rounding to the unit is the only rounding (under 1e-9 W
# and 1e-18 GPU per job), and a comparison of an integer with a budget scaled the same way is
# exact (Python compares int and float exactly).
W_UNIT = 2**30
G_UNIT = 2**60


def quantize(inc_w: Sequence[float], kept: Sequence[float], g: float) -> tuple[int, ...]:
    """A ladder in the solver's units: the IT increment per level, then the throughput per level
    (fraction kept x `g`, the job's GPUs x gain)."""
    return (*[round(x * W_UNIT) for x in inc_w], *[round(k * g * G_UNIT) for k in kept])


def hall_ladder(inc_w: Sequence[float], share: float) -> tuple[int, ...]:
    """The IT increment per level that a job with `share` of its GPUs in a hall adds there."""
    return tuple(round(x * share * W_UNIT) for x in inc_w)


@dataclass(slots=True)
class CapJob:
    """A running job as the solver sees it. `gain` is its useful throughput per GPU at level 0
    (speed relative to the reference flavor); `kept[l]` the fraction kept at level l;
    `inc_w[l]` its IT increment over idle at level l; `halls` its GPU share per hall."""

    id: int
    key: ClassKey
    priority: int
    start_s: float
    gpus: int
    gain: float
    kept: tuple[float, ...]
    inc_w: tuple[float, ...]
    halls: tuple[tuple[int, float], ...]
    # `quantized`: quantize's answer for this ladder and gain where the caller has it (the books'
    # memo, the same integers); left out, it is made here.
    quantized: InitVar[tuple[int, ...]] = ()
    # In the solver's units, derived once (the books build a running job's CapJob once): `q`,
    # its ladder (quantize); `qh`, its IT increment per level in each of its halls.
    q: tuple[int, ...] = field(init=False, repr=False, compare=False)
    qh: tuple[tuple[int, tuple[int, ...]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self, quantized: tuple[int, ...]) -> None:
        # A ladder has at least one level, so a quantized one is never empty.
        q = self.q = quantized or quantize(self.inc_w, self.kept, float(self.gpus * self.gain))
        n = len(self.inc_w)
        halls = self.halls
        if len(halls) == 1:  # one hall (nearly every job): its entry without a generator
            [(h, sh)] = halls
            self.qh = ((h, q[:n] if sh == 1.0 else hall_ladder(self.inc_w, sh)),)
        else:
            self.qh = tuple(
                (h, q[:n] if sh == 1.0 else hall_ladder(self.inc_w, sh)) for h, sh in halls
            )


@dataclass(slots=True)
class CapClass:
    """A class of running jobs as the solver sees it: `q`, its members' ladders summed
    (quantize's layout and units); `halls`, their IT increments per level summed per hall they
    have GPUs in (hall order); `members`, the members in order (read only for the class the
    greedy loop stops in). The books keep these as jobs start and stop; `cap_classes` makes
    them from a list of jobs: the same integers."""

    key: ClassKey
    priority: int
    q: list[int]
    halls: list[tuple[int, list[int]]]
    members: Callable[[], Sequence[CapJob]]
    steps: Steps | None = None  # class_steps(q, halls), where the maker keeps it


# Per level l (index l, 1..n-1) of a class: the site watts a raise from l to l-1 adds, minus its
# throughput per watt (the heap's order), and the watts it adds in each of the class's halls;
# then per level l (0..n-1) the level a class at l reaches by the raises above it that add no
# watts anywhere (l itself when the raise from l adds some, or l is 0); then the class's one
# hall, or -1. A class in one hall (nearly all) has its hall's watts per level as plain ints
# (no list of one (hall, watts) pair per level); a class in several halls, a list of (hall,
# watts) per level.
Steps = tuple[list[int], list[float], list, list[int], int]

_NEG_INF = -math.inf


def class_steps(q: Sequence[int], halls: Sequence[tuple[int, Sequence[int]]], n: int) -> Steps:
    # Per level l >= 1 the differences l-1 less l, taken by C-level maps over the ladder's
    # slices (a solve makes these for every class whose members moved since the last).
    d_site = [0, *map(sub, q[: n - 1], q[1:n])]
    if len(halls) == 1:  # a class in one hall (nearly all)
        h, w = halls[0]
        # Its hall's ladder is its site's whenever every member lies wholly in the hall (a
        # member's share there is then 1.0 exactly: quantize's integers), as in nearly all:
        # the same differences, and a raise adds watts where the site's difference is not 0.
        if w == q[:n]:
            d_halls: list = d_site
            nz = compress(range(n), d_site)
        else:
            d_halls = [0, *map(sub, w[: n - 1], w[1:n])]
            nz = compress(range(n), map(or_, d_site, d_halls))
        # Only the levels whose raise adds watts (~36% of a month's) are walked: the others
        # keep -inf (a raise that adds no site watts) and the level below's `up`.
        neg_ratio = [_NEG_INF] * n
        neg_ratio[0] = 0.0
        up = [0] * n
        for lv in nz:
            up[lv:] = [lv] * (n - lv)
            d = d_site[lv]
            if d > 0:
                neg_ratio[lv] = -((q[n + lv - 1] - q[n + lv]) / d)
        return d_site, neg_ratio, d_halls, up, h
    gains = map(sub, q[n : 2 * n - 1], q[n + 1 : 2 * n])
    neg_ratio = [
        0.0,
        *[-(g / w) if w > 0 else _NEG_INF for g, w in zip(gains, d_site[1:], strict=True)],
    ]
    # up[l]: see Steps. A ladder's top levels often draw the same (caps above the run's draw):
    # ~62% of a month's raises add no watts, and raise_classes takes them at once (see there).
    up = list(range(n))
    d_halls = [[] for _ in range(n)]
    for lv in range(1, n):
        d_halls[lv] = dh = [(h, w[lv - 1] - w[lv]) for h, w in halls]
        if not d_site[lv] and not any(d for _, d in dh):
            up[lv] = up[lv - 1]
    return d_site, neg_ratio, d_halls, up, -1


def _int_budget(b: float) -> int:
    """A budget in the solver's units as an integer bound: for an integer x, x <= b exactly when
    x <= _int_budget(b) (an infinite budget: a bound no sum reaches)."""
    if b == math.inf:
        return 1 << 400
    if b == -math.inf:
        return -(1 << 400)
    return math.floor(b)


@dataclass(slots=True)
class CapPlan:
    levels: dict[int, int]  # job id -> level
    paused: list[int]  # job ids to checkpoint and requeue (lowest priorities first)
    target: dict[ClassKey, int]  # level per class, for the next starts
    # Set where `levels` lists each class's members at its `target` level but these (the split
    # class's moved members): the books' kept solve. None: any levels (cap_moves reads them all).
    moved: dict[int, int] | None = None


def cap_classes(jobs: Sequence[CapJob]) -> tuple[list[CapClass], list[int]]:
    """The jobs' classes in the order of their first members, and each job's class index. A
    class's priority is its last member's."""
    keys: dict[ClassKey, int] = {}
    cls = [keys.setdefault(j.key, len(keys)) for j in jobs]
    members: list[list[CapJob]] = [[] for _ in keys]
    for j, c in zip(jobs, cls, strict=True):
        members[c].append(j)
    out = []
    for key, ms in zip(keys, members, strict=True):
        q = list(ms[0].q)
        halls: dict[int, list[int]] = {}
        for m in ms[1:]:
            q = list(map(add, q, m.q))
        for m in ms:
            for h, w in m.qh:
                got = halls.get(h)
                halls[h] = list(w) if got is None else list(map(add, got, w))
        out.append(CapClass(key, ms[-1].priority, q, sorted(halls.items()), ms.copy))
    return out, cls


def floor_sums(classes: Sequence[CapClass], n_halls: int, floor: int) -> tuple[int, list[int]]:
    """Site and hall IT increments (solver units) with every class at the floor."""
    site = sum(c.q[floor] for c in classes)
    halls = [0] * n_halls
    for c in classes:
        for h, w in c.halls:
            halls[h] += w[floor]
    return site, halls


def solve_caps(
    jobs: Sequence[CapJob], site_budget_w: float, hall_budget_w: Sequence[float], n_levels: int
) -> CapPlan:
    """Divide the IT budget (over idle) among running jobs.

    1. Everyone at the floor (the last level). If that does not fit a budget, pause jobs, lowest
       priority first and, within a priority, the most recently started (least sunk work since
       their start) until it does.
    2. Raise caps one level at a time, higher priorities first; within a priority, the move with
       the most throughput per extra watt first. The curve is concave (marginal throughput per
       watt falls as the cap rises, see data/cap_curve.csv), so this greedy order is the optimum
       of the continuous relaxation (water-filling), and no LP solver is needed. Jobs of one
       class (kind, flavor, priority, hall) move together; a class that does not fit as a whole
       moves its oldest jobs up one by one, so the last class may be split across two levels.
    Sums and comparisons are exact integers (quantize's units).
    """
    floor = n_levels - 1
    if not jobs:
        return CapPlan({}, [], {})
    for j in jobs:
        if len(j.q) != 2 * n_levels:
            raise ValueError(f"a CapJob's ladder has {len(j.q) // 2} levels, not {n_levels}")
    sb, hb = site_budget_w * W_UNIT, [b * W_UNIT for b in hall_budget_w]
    classes, cls = cap_classes(jobs)
    site, halls = floor_sums(classes, len(hb), floor)
    paused: list[int] = []
    alive = jobs
    if site > sb or any(w > b for w, b in zip(halls, hb, strict=True)):
        paused, site, halls = _pause_q(jobs, sb, hb, floor)
        gone = set(paused)
        alive = [j for j in jobs if j.id not in gone]
        if not alive:
            return CapPlan({}, paused, {})
        classes, cls = cap_classes(alive)
    c_level, moved = raise_classes(classes, site, halls, sb, hb, n_levels)
    levels = dict(zip(map(_id_of, alive), map(c_level.__getitem__, cls), strict=True))
    levels.update(moved)
    return CapPlan(levels, paused, {c.key: lv for c, lv in zip(classes, c_level, strict=True)})


def raise_classes(
    classes: Sequence[CapClass],
    site: int,
    halls: Sequence[int],
    sb: float,
    hb: Sequence[float],
    n_levels: int,
) -> tuple[list[int], dict[int, int]]:
    """Step 2 of solve_caps from the floor (`site`, `halls`: the classes' floor sums; `sb`,
    `hb`: the budgets times W_UNIT). Returns each class's level and the split class's members
    moved one level above it."""
    floor = n_levels - 1
    n_cls, n_halls = len(classes), len(hb)
    sbi, hbi = _int_budget(sb), [_int_budget(b) for b in hb]
    steps = [
        c.steps if c.steps is not None else class_steps(c.q, c.halls, n_levels) for c in classes
    ]
    prio = [-c.priority for c in classes]
    halls_a = list(halls)
    # Halls over budget before any raise: a raise must bring each of them under (a class adds
    # nothing to the halls it has no member in, so those stay as they are).
    over = {h for h in range(n_halls) if not halls_a[h] <= hbi[h]}
    c_level = [floor] * n_cls
    # (-priority, -throughput per watt, class, level): every entry differs in (class, level),
    # so the pops come in one order however the heap was built.
    # A raise that adds no watts (site or hall) fits whenever no hall is over and the site is
    # within budget, which then stays so (a raise that fits keeps them). Its entry's key is
    # (-priority, -inf, ...) and comes straight back from the heap after the raise below it
    # (nothing lies between the two entries' keys: one entry per class), so such raises are
    # taken at once, the class then pushed at the level they reach: the same pops of every
    # other raise in the same order, the same levels.
    free = not over and site <= sbi
    if free:
        c_level = [s[3][floor] for s in steps]
        heap = [(prio[c], steps[c][1][lv], c, lv) for c, lv in enumerate(c_level) if lv]
    else:
        heap = [(prio[c], steps[c][1][floor], c, floor) for c in range(n_cls)] if floor else []
    heapq.heapify(heap)
    split: tuple[int, int] | None = None
    # A class raised one level pushes its next raise and the loop pops the least entry: one
    # heappushpop, which hands the pushed entry straight back when it is the least (the same
    # pops in the same order as a push and a pop).
    item = heapq.heappop(heap) if heap else None
    while item is not None:
        _, _, c, level = item
        d_site_l, neg_ratio, d_halls_l, free_up, h = steps[c]
        d_site = d_site_l[level]
        if h >= 0:  # a class in one hall (nearly all): its hall's watts, the test for that hall
            d = d_halls_l[level]
            fits = (
                site + d_site <= sbi
                and halls_a[h] + d <= hbi[h]
                and (not over or (len(over) == 1 and h in over))
            )
            if fits:
                halls_a[h] += d
                over.discard(h)
        else:
            d_halls = d_halls_l[level]
            fits = (
                site + d_site <= sbi
                and all(halls_a[h] + d <= hbi[h] for h, d in d_halls)
                and (not over or over.issubset([h for h, _ in d_halls]))
            )
            if fits:
                for h, d in d_halls:
                    halls_a[h] += d
                    over.discard(h)
        if fits:
            site += d_site
            # A raise that fits empties `over` (it must hold every hall over budget, and each
            # comes under), so the raises above it that add no watts are taken with it.
            level = free_up[level - 1]
            c_level[c] = level
            if level:
                item = heapq.heappushpop(heap, (prio[c], neg_ratio[level], c, level))
                continue
        elif split is None:
            split = (c, level)  # the first class that does not fit as a whole; it stops here
        item = heapq.heappop(heap) if heap else None
    moved: dict[int, int] = {}
    if split is not None:
        # Move the split class's oldest members up one by one while they fit. Once the site's
        # room is below every member's step, no later member fits (the sums only grow), so the
        # walk stops there (~38% of the members a month's split classes list); a member in one
        # hall (nearly all) is tested without the per-hall list.
        c, level = split
        up = level - 1
        ms = sorted(classes[c].members(), key=_start_of)
        least = min([m.q[up] - m.q[level] for m in ms])
        if sbi - site >= least:
            for m in ms:
                q = m.q
                d = q[up] - q[level]
                qh = m.qh
                if len(qh) == 1:
                    h, w = qh[0]
                    x = w[up] - w[level]
                    if site + d <= sbi and halls_a[h] + x <= hbi[h]:
                        site += d
                        halls_a[h] += x
                        moved[m.id] = up
                        if sbi - site < least:
                            break
                    continue
                dh = [(h, w[up] - w[level]) for h, w in qh]
                if site + d <= sbi and all(halls_a[h] + x <= hbi[h] for h, x in dh):
                    site += d
                    for h, x in dh:
                        halls_a[h] += x
                    moved[m.id] = up
                    if sbi - site < least:
                        break
    return c_level, moved


_id_of = attrgetter("id")
_start_of = attrgetter("start_s")


def _pause_q(
    jobs: Sequence[CapJob], sb: float, hb: Sequence[float], floor: int
) -> tuple[list[int], int, list[int]]:
    """Step 1 of solve_caps: everyone at the floor; pause until the site and every hall fit.
    Returns the paused ids and the kept jobs' site and hall increments (solver units)."""
    site = sum(j.q[floor] for j in jobs)
    halls = [0] * len(hb)
    for j in jobs:
        for h, w in j.qh:
            halls[h] += w[floor]
    paused: list[int] = []
    over = site > sb or any(w > b for w, b in zip(halls, hb, strict=True))
    if over:
        for j in sorted(jobs, key=lambda j: (j.priority, -j.start_s)):
            site_over = site > sb
            halls_over = {h for h, (w, b) in enumerate(zip(halls, hb, strict=True)) if w > b}
            if not site_over and not halls_over:
                break
            if not site_over and not any(h in halls_over for h, _ in j.halls):
                continue  # pausing it would not relieve the hall that is over
            paused.append(j.id)
            site -= j.q[floor]
            for h, w in j.qh:
                halls[h] -= w[floor]
    return paused, site, halls


def _pause_to_fit(
    jobs: Sequence[CapJob], site_budget_w: float, hall_budget_w: Sequence[float], floor: int
) -> tuple[dict[int, int], list[int], float, list[float]]:
    """_pause_q in watts: the levels of the jobs kept, the paused ids, the site and hall watts."""
    hb = [b * W_UNIT for b in hall_budget_w]
    paused, site, halls = _pause_q(jobs, site_budget_w * W_UNIT, hb, floor)
    gone = set(paused)
    levels = {j.id: floor for j in jobs if j.id not in gone}
    return levels, paused, site / W_UNIT, [w / W_UNIT for w in halls]


def make_room(
    running: Sequence[CapJob],
    head: CapJob,
    current: dict[int, int],
    site_budget_w: float,
    hall_budget_w: Sequence[float],
    n_levels: int,
    ramp_headroom_w: float = math.inf,
) -> CapPlan | None:
    """A pending job is short of watts. If it outranks some running work, re-divide the budget
    with it as a member (lower priorities are capped, then paused, first). Returns the plan for
    the running jobs (their levels and pauses), or None when the head would still not fit, when
    the ramp window could not take it anyway, or when nothing would change. `current` is each
    running job's level now."""
    if not running:
        return None
    return make_room_with(
        min(j.priority for j in running),
        head,
        current,
        ramp_headroom_w,
        lambda: solve_caps([*running, head], site_budget_w, hall_budget_w, n_levels),
    )


def make_room_with(
    lowest_priority: int,
    head: CapJob,
    current: Mapping[int, int],
    ramp_headroom_w: float,
    solve: Callable[[], CapPlan],
) -> CapPlan | None:
    """make_room's rule over a solve given as `solve` (solve_caps of the running jobs and the
    head, last): the books call it with their kept class sums, the same integers, and their
    jobs' levels as `LevelsOf` (read only for the ids the check below reaches)."""
    if head.priority <= lowest_priority:
        return None
    if head.inc_w[-1] > ramp_headroom_w:
        return None  # pausing others now would be waste: the ramp holds the head back
    plan = solve()
    if head.id in plan.paused:
        return None
    # C-level copy (a re-solve lists every running job, hundreds): the plan's levels in its
    # order less the head's; none moved when each (job, level) is current's.
    levels = dict(plan.levels)
    levels.pop(head.id, None)
    if not plan.paused and _all_current(levels, current):
        return None
    return CapPlan(levels, plan.paused, plan.target, plan.moved)


def _all_current(levels: dict[int, int], current: Mapping[int, int]) -> bool:
    """levels.items() <= current.items(): every job at its current level (an id `current`
    lacks is a KeyError: not current). Asked id by id from the plan's last and stopping at the
    first that moved: a re-solve always moves someone, mostly among the last classes of its
    order (a month's first moved job: 65 ids from the end of ~589 on average, 223 from the
    start), so the books' levels are read for a few ids, not all. C-level but for the reads."""
    try:
        return all(map(eq, map(current.__getitem__, reversed(levels)), reversed(levels.values())))
    except KeyError:
        return False


class LevelsOf(Mapping[int, int]):
    """The level of each of `booked` (job id -> its books' entry, which has `.level`), read
    when asked: make_room_with's `current` without a dict of every running job."""

    __slots__ = ("_booked",)

    def __init__(self, booked: Mapping[int, Any]) -> None:
        self._booked = booked

    def __getitem__(self, job_id: int) -> int:
        return self._booked[job_id].level

    def __iter__(self) -> Iterator[int]:
        return iter(self._booked)

    def __len__(self) -> int:
        return len(self._booked)
