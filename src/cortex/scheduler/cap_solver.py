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
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np

# A class of running jobs shares one cap level: same kind, flavor, priority and main hall.
ClassKey = tuple[str, int, int, int]


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
    # Derived once at construction for the solver, which reads them at every solve while the
    # job runs (the books build a running job's CapJob once): `row`, its IT increment and its
    # gain-weighted throughput per level as one array (numpy copies rows several times faster
    # than it converts floats); `one_hall`, the hall it lies wholly in (-1: none, -2: several).
    row: np.ndarray = field(init=False, repr=False, compare=False)
    one_hall: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        g = float(self.gpus * self.gain)
        # k * g: the product the solver's numpy multiply made, double by double.
        self.row = np.array([*self.inc_w, *[k * g for k in self.kept]], dtype=float)
        hs = self.halls
        if len(hs) == 1 and hs[0][1] == 1.0:
            self.one_hall = hs[0][0]
        else:
            self.one_hall = -1 if not hs else -2


@dataclass(slots=True)
class CapPlan:
    levels: dict[int, int]  # job id -> level
    paused: list[int]  # job ids to checkpoint and requeue (lowest priorities first)
    target: dict[ClassKey, int]  # level per class, for the next starts


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
    """
    floor = n_levels - 1
    n_halls = len(hall_budget_w)
    if not jobs:
        return CapPlan({}, [], {})
    rows = np.array([j.row for j in jobs], dtype=float)  # jobs x (inc_w, gain * kept) per level
    if rows.shape[1] != 2 * n_levels:
        raise ValueError(f"a CapJob's ladder has {rows.shape[1] // 2} levels, not {n_levels}")
    # Step 1 (_pause_to_fit) when everyone fits at the floor, as it is at nearly every solve:
    # the same sums (np.cumsum and np.bincount add in order, as its loops do), no pauses.
    pairs = _hall_pairs(jobs)
    at, hall, share = pairs
    site = float(np.cumsum(rows[:, floor])[-1])
    halls = np.bincount(hall, weights=rows[at, floor] * share, minlength=n_halls).tolist()
    paused: list[int] = []
    if site > site_budget_w or any(w > b for w, b in zip(halls, hall_budget_w, strict=True)):
        _, paused, site, halls = _pause_to_fit(jobs, site_budget_w, hall_budget_w, floor)
    gone = set(paused)
    alive = [j for j in jobs if j.id not in gone] if gone else list(jobs)
    if not alive:
        return CapPlan({}, paused, {})
    if gone:
        rows = rows[[i for i, j in enumerate(jobs) if j.id not in gone]]
        pairs = _hall_pairs(alive)
    # Per-class sums over members: the greedy loop then runs per class and level, not per job
    # (a 100k-GPU fleet runs thousands of jobs in a few dozen classes). np.bincount adds a
    # class's members in order, as the per-level bincounts and the numpy loop before did, so
    # the sums are the same (one call: bin = class x column).
    keys: dict[ClassKey, int] = {}
    cls_l = [keys.setdefault(j.key, len(keys)) for j in alive]
    cls = np.array(cls_l, dtype=np.int64)
    n_cls, width = len(keys), 2 * n_levels
    sums = np.bincount(
        (cls[:, None] * width + np.arange(width)).ravel(),
        weights=rows.ravel(),
        minlength=n_cls * width,
    ).reshape(n_cls, width)
    prio_of = dict(zip(cls_l, map(_prio_of, alive), strict=True))  # a class's last member's
    prio = [prio_of[c] for c in range(n_cls)]
    # The greedy loop reads single elements: as Python floats (the same IEEE doubles, the same
    # sums and comparisons) it runs several times faster than on numpy scalars and slices.
    inc_l = sums[:, :n_levels].tolist()
    gk_l = sums[:, n_levels:].tolist()
    hall_l = _class_halls(alive, cls, rows[:, :n_levels], inc_l, n_halls, pairs)
    budget_h = [float(b) for b in hall_budget_w]
    halls_a = [float(w) for w in halls]
    # Halls over budget before any raise: a raise must bring each of them under (a class adds
    # nothing to the halls it has no member in, so those stay as they are).
    over = {h for h in range(n_halls) if not halls_a[h] <= budget_h[h]}
    c_level = [floor] * n_cls
    heap: list[tuple[int, float, int, int]] = []

    def push(c: int, level: int) -> None:
        if level == 0:
            return
        watts = inc_l[c][level - 1] - inc_l[c][level]
        gain = gk_l[c][level - 1] - gk_l[c][level]
        ratio = gain / watts if watts > 0 else math.inf
        heapq.heappush(heap, (-prio[c], -ratio, c, level))

    for c in range(n_cls):
        push(c, floor)
    split: tuple[int, int] | None = None
    while heap:
        _, _, c, level = heapq.heappop(heap)
        d_site = inc_l[c][level - 1] - inc_l[c][level]
        hc = hall_l[c]
        if len(hc) == 1:  # a class in one hall (nearly all): the test below for that hall
            h, w = hc[0]
            d = w[level - 1] - w[level]
            if (
                site + d_site <= site_budget_w
                and halls_a[h] + d <= budget_h[h]
                and (not over or (len(over) == 1 and h in over))
            ):
                site += d_site
                halls_a[h] += d
                over.discard(h)
                c_level[c] = level - 1
                push(c, level - 1)
            elif split is None:
                split = (c, level)
            continue
        d_halls = [(h, w[level - 1] - w[level]) for h, w in hc]
        if (
            site + d_site <= site_budget_w
            and all(halls_a[h] + d <= budget_h[h] for h, d in d_halls)
            and (not over or over.issubset([h for h, _ in d_halls]))
        ):
            site += d_site
            for h, d in d_halls:
                halls_a[h] += d
                over.discard(h)
            c_level[c] = level - 1
            push(c, level - 1)
        elif split is None:
            split = (c, level)  # the first class that does not fit as a whole; it stops here
    key_of = list(keys)
    # Every kept job in the order given (step 1's order less the paused), at its class's level.
    levels = dict(zip(map(_id_of, alive), map(c_level.__getitem__, cls_l), strict=True))
    if split is not None:
        # Move the split class's oldest members up one by one while they fit.
        c, level = split
        members = sorted(
            (j for j, ci in zip(alive, cls_l, strict=True) if ci == c),
            key=lambda m: m.start_s,
        )
        for m in members:
            d = m.inc_w[level - 1] - m.inc_w[level]
            dh = [(h, d * sh) for h, sh in m.halls]
            if site + d <= site_budget_w and all(halls_a[h] + x <= budget_h[h] for h, x in dh):
                site += d
                for h, x in dh:
                    halls_a[h] += x
                levels[m.id] = level - 1
    target = {key_of[c]: c_level[c] for c in range(n_cls)}
    return CapPlan(levels, paused, target)


def _hall_pairs(jobs: Sequence[CapJob]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (job index, hall, share) of the jobs' halls in the order a loop over the jobs and
    then their halls visits them: np.bincount over these adds each hall's watts in that order."""
    one = np.array([j.one_hall for j in jobs], dtype=np.int64)
    single = one >= 0
    at = np.flatnonzero(single)
    hall = one[single]
    share = np.ones(len(at))
    several = np.flatnonzero(one == -2).tolist()
    if several:  # a gang across halls (few): its pairs in place, its halls in their order
        m_at: list[int] = []
        m_hall: list[int] = []
        m_share: list[float] = []
        for i in several:
            for h, sh in jobs[i].halls:
                m_at.append(i)
                m_hall.append(h)
                m_share.append(sh)
        order = np.argsort(np.concatenate([at, m_at]), kind="stable")
        at = np.concatenate([at, m_at]).astype(np.int64)[order]
        hall = np.concatenate([hall, m_hall]).astype(np.int64)[order]
        share = np.concatenate([share, np.array(m_share, dtype=float)])[order]
    return at, hall, share


def _class_halls(
    alive: Sequence[CapJob],
    cls: np.ndarray,
    inc: np.ndarray,
    inc_l: list[list[float]],
    n_halls: int,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> list[list[tuple[int, list[float]]]]:
    """Per class, its IT watts per level in each hall it has members in. A class whose members
    all lie wholly in one hall (most: a class is a hall's) takes its site sums there (a share of
    1.0 adds the same doubles); any other adds its members' shares in order (`pairs`:
    _hall_pairs of `alive`), as np.bincount did over every hall (a hall where a member has no
    share got 0.0 added: no change)."""
    n_cls = len(inc_l)
    one = np.array([j.one_hall for j in alive], dtype=np.int64)
    lo = np.full(n_cls, n_halls, dtype=np.int64)
    hi = np.full(n_cls, -3, dtype=np.int64)
    np.minimum.at(lo, cls, one)
    np.maximum.at(hi, cls, one)
    whole_a = (lo == hi) & (lo >= 0)
    whole = whole_a.tolist()
    lo_l = lo.tolist()
    out: list[list[tuple[int, list[float]]]] = [
        [(lo_l[c], inc_l[c])] if whole[c] else [] for c in range(n_cls)
    ]
    if all(whole):
        return out
    # The other classes' members, hall by hall, in order: one bin per (class, hall, level).
    at, hall, share = pairs
    keep = ~whole_a[cls[at]]
    at, hall, share = at[keep], hall[keep], share[keep]
    if not len(at):
        return out
    n_levels = inc.shape[1]
    bins = cls[at] * n_halls + hall
    per = np.bincount(
        (bins[:, None] * n_levels + np.arange(n_levels)).ravel(),
        weights=(inc[at] * share[:, None]).ravel(),
        minlength=n_cls * n_halls * n_levels,
    ).reshape(n_cls, n_halls, n_levels)
    for bn in np.unique(bins).tolist():  # sorted: a class's halls in hall order
        c, h = divmod(bn, n_halls)
        out[c].append((h, per[c, h].tolist()))
    return out


_prio_of = attrgetter("priority")
_id_of = attrgetter("id")


def _pause_to_fit(
    jobs: Sequence[CapJob], site_budget_w: float, hall_budget_w: Sequence[float], floor: int
) -> tuple[dict[int, int], list[int], float, list[float]]:
    """Step 1 of solve_caps: everyone at the floor; pause until the site and every hall fit.
    Returns the levels of the jobs kept, the paused ids, and the site and hall watts."""
    levels = {j.id: floor for j in jobs}
    site = sum(j.inc_w[floor] for j in jobs)
    halls = [0.0] * len(hall_budget_w)
    for j in jobs:
        for h, share in j.halls:
            halls[h] += j.inc_w[floor] * share
    paused: list[int] = []
    over = site > site_budget_w or any(w > b for w, b in zip(halls, hall_budget_w, strict=True))
    if over:
        for j in sorted(jobs, key=lambda j: (j.priority, -j.start_s)):
            site_over = site > site_budget_w
            halls_over = {
                h for h, (w, b) in enumerate(zip(halls, hall_budget_w, strict=True)) if w > b
            }
            if not site_over and not halls_over:
                break
            if not site_over and not any(h in halls_over for h, _ in j.halls):
                continue  # pausing it would not relieve the hall that is over
            paused.append(j.id)
            del levels[j.id]
            site -= j.inc_w[floor]
            for h, share in j.halls:
                halls[h] -= j.inc_w[floor] * share
    return levels, paused, site, halls


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
    if not running or head.priority <= min(j.priority for j in running):
        return None
    if head.inc_w[-1] > ramp_headroom_w:
        return None  # pausing others now would be waste: the ramp holds the head back
    plan = solve_caps([*running, head], site_budget_w, hall_budget_w, n_levels)
    if head.id in plan.paused:
        return None
    levels = {j: lv for j, lv in plan.levels.items() if j != head.id}
    if not plan.paused and all(current.get(j) == lv for j, lv in levels.items()):
        return None
    return CapPlan(levels, plan.paused, plan.target)
