"""Power-aware admission and per-job power caps: pure policy code over a PowerView.

The driver hands the cycle a PowerView: IT watts left under the site, hall and ramp budgets, the
allowed per-GPU cap levels and each class's current level. The view is the driver's, frozen; what
a cycle has left to spend is a `Watts` ledger that the cycle's Statement owns, as it owns the GPUs
and the quota, so a rollback gives the watts back with the GPUs. A power policy decides only: it
admits a start if its projected draw fits what is left, and chooses its per-GPU cap; the cycle
spends through the Statement. Outside the cycle, `solve_caps` re-divides
the site budget among the running jobs (raise caps when watts are free, lower them, then pause
the lowest priorities, when the budget shrinks). Watts here are IT watts: the driver converts the
facility cap through the temperature-dependent PUE before it builds the view.

Why caps at all: a GPU capped to 70% of TDP keeps ~86% of its throughput (power-cap/README.md),
so under a binding budget more GPUs at a lower cap do more work than fewer at TDP.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Protocol

import numpy as np

from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.state import Placement
from cortex.workload.job import Job

POWER_CODES = (Code.POWER_CAP, Code.POWER_RAMP)
# A class of running jobs shares one cap level: same kind, flavor, priority and main hall.
ClassKey = tuple[str, int, int, int]


# PowerView, Grant and CapJob are not frozen: built per pass, per admitted start and per running
# job of a solve, and a frozen dataclass's __init__ costs 3-4x a plain one (scheduler/snapshot.py).
# Nothing assigns to them after construction.
@dataclass(slots=True)
class PowerView:
    """What a cycle may spend, in IT watts, as the driver saw it before the cycle: built fresh by
    the driver for each cycle and never changed by it (the cycle spends from a `Watts`)."""

    site_headroom_w: float
    hall_headroom_w: Sequence[float]
    levels: tuple[float, ...]  # allowed caps as fractions of TDP, descending, levels[0] = 1.0
    floor: int  # index of the lowest level a start may take
    draw_w: Callable[[str, int], float]  # uncapped mean draw per GPU (kind, flavor)
    idle_w: Sequence[float]  # per flavor
    tdp_w: Sequence[float]  # per flavor
    node_hall: Sequence[int]
    node_max_cap_w: Sequence[float]  # per node: the per-GPU cap its rack budget allows
    target: dict[ClassKey, int] = field(default_factory=dict)  # solver's level per class
    ramp_headroom_w: float = math.inf  # upward step still allowed in this ramp window
    min_node_cap_w: float = math.inf  # the lowest per-GPU cap any rack imposes
    ladder_w: Callable[[str, int, int, float], float] | None = None
    ramp_limit_w: float = math.inf  # the whole window's allowance
    # Running jobs' site increments (the driver's books, read-only here).
    job_inc_w: Callable[[int], tuple[float, dict[int, float]]] = lambda _job_id: (0.0, {})
    site_budget_w: float = math.inf  # the whole site budget over idle (headroom + running)

    def floor_inc_w(self, job: Job, flavor: int, gang: int) -> float:
        """The least a start could add: at the floor, on the least-capped nodes."""
        per = min(self.levels[self.floor] * self.tdp_w[flavor], self.draw_w(job.kind, flavor))
        return gang * (min(per, self.min_node_cap_w) - self.idle_w[flavor])

    def lower_bound_reason(self, room: Watts, job: Job, flavor: int, gang: int) -> Reason | None:
        """Could the job fit what is left of the site budget even at the floor, on the
        least-capped nodes? A necessary condition, checked before placement."""
        inc = self.floor_inc_w(job, flavor, gang)
        if inc > room.site_w:
            return Reason(
                Code.POWER_CAP,
                need_mw=inc / 1e6,
                headroom_mw=max(room.site_w, 0.0) / 1e6,
                domain="site",
            )
        return None

    def per_gpu_w(self, kind: str, flavor: int, level: int, node_cap_w: float) -> float:
        """Per-GPU draw a start at `level` is booked at: the driver's ladder when it gives one
        (it may merge levels that save no watts), else min(cap, mean draw, rack bound)."""
        if self.ladder_w is not None:
            return self.ladder_w(kind, flavor, level, node_cap_w)
        cap = self.levels[level] * self.tdp_w[flavor]
        return min(cap, self.draw_w(kind, flavor), node_cap_w)


@dataclass(slots=True)
class Watts:
    """What is left to spend in one cycle (site, per hall, this ramp window) and the running
    jobs whose watts a preemption in it already gave back. Owned by the cycle's Statement, which
    changes it only through logged steps (`spend_w`, `credit_w`) so that a rollback restores it."""

    site_w: float
    hall_w: list[float]
    ramp_w: float
    released: set[int]

    @classmethod
    def of(cls, view: PowerView) -> Watts:
        return cls(view.site_headroom_w, list(view.hall_headroom_w), view.ramp_headroom_w, set())

    def credit(self, view: PowerView, victims: Sequence[Job]) -> tuple[float, dict[int, float]]:
        """Watts that evicting `victims` gives back, site-wide and per hall (none twice)."""
        site = 0.0
        halls: dict[int, float] = {}
        for v in victims:
            if v.id in self.released:
                continue
            w, hw = view.job_inc_w(v.id)
            site += w
            for h, x in hw.items():
                halls[h] = halls.get(h, 0.0) + x
        return site, halls


def hall_shares(node_hall: Sequence[int], placement: Placement) -> dict[int, int]:
    """GPUs of a placement per hall (most placements lie in one pod, hence one hall), the
    halls in the order the placement first names them."""
    nh = node_hall
    n0, k0 = placement[0]
    h0 = nh[n0]
    if len(placement) == 1:
        return {h0: k0}
    if len(placement) == 2:
        n1, k1 = placement[1]
        h1 = nh[n1]
        return {h0: k0 + k1} if h1 == h0 else {h0: k0, h1: k1}
    # A gang of hundreds of nodes is read at every admission and start: one hall is answered
    # by C-level maps (the same sum), several by a count of nodes per hall when every node
    # holds as many GPUs (whole-node gangs), else by the loop below.
    halls = list(map(nh.__getitem__, map(itemgetter(0), placement)))
    if halls.count(h0) == len(halls):
        return {h0: sum(map(itemgetter(1), placement))}
    gpus = list(map(itemgetter(1), placement))
    if gpus.count(k0) == len(gpus):
        return {h: n * k0 for h, n in Counter(halls).items()}
    shares: dict[int, int] = {}
    for h, k in zip(halls, gpus, strict=True):
        shares[h] = shares.get(h, 0) + k
    return shares


Shape = tuple[float, int, dict[int, int]]  # a placement's node cap, GPUs held, GPUs per hall


@dataclass(slots=True)
class Grant:
    """A start a power policy admits: its cap level (an index into the view's levels; 0:
    uncapped) and the IT watts over idle it adds, site-wide and per hall, for the cycle to spend
    through its Statement. `shape`: what admission read of the placement, which the driver's
    books read again when they book the start (the Start carries it, so it is computed once)."""

    level: int
    inc_w: float
    halls_w: dict[int, float]
    shape: Shape | None = field(default=None, compare=False)  # carried, not decided


class PowerPolicy(Protocol):
    """Decides a start's Grant, or the Reason it may not start, from the driver's view and what
    the cycle has left (`room`); it changes neither."""

    name: str

    def admit(
        self,
        view: PowerView,
        room: Watts,
        job: Job,
        flavor: int,
        gang: int,
        placement: Placement,
        credit: tuple[float, dict[int, float]] = (0.0, {}),
    ) -> Grant | Reason: ...

    def ramp_refuses(self, view: PowerView, room: Watts, job: Job, flavor: int, gang: int) -> bool:
        """Whether `admit` would refuse this start on the ramp window whatever its placement
        and whatever a preemption gave back (checked before a victim search)."""
        ...


def placement_shape(
    node_hall: Sequence[int],
    node_max_cap_w: Sequence[float],
    min_node_cap_w: float,
    placement: Placement,
) -> Shape:
    """(node cap, GPUs held, GPUs per hall) of a placement: what power admission reads of it
    and what the driver's books book a start from (drive/power_jobs.py) when admission did not
    read it (no power policy). The node cap is the lowest rack cap over its nodes (inf: no rack
    caps)."""
    if len(placement) == 1:  # most starts: one node
        n, k = placement[0]
        return (node_max_cap_w[n] if min_node_cap_w < math.inf else math.inf), k, {node_hall[n]: k}
    shares = hall_shares(node_hall, placement)
    if min_node_cap_w < math.inf:
        node_cap = min(map(node_max_cap_w.__getitem__, map(itemgetter(0), placement)))
    else:
        node_cap = math.inf
    return node_cap, sum(shares.values()), shares


def _shape(view: PowerView, placement: Placement) -> Shape:
    """What `_fits` reads of a placement, the same at every level it tries: computed once."""
    return placement_shape(view.node_hall, view.node_max_cap_w, view.min_node_cap_w, placement)


def _fits(
    view: PowerView,
    room: Watts,
    job: Job,
    f: int,
    gang: int,
    shape: Shape,
    level: int,
    credit: tuple[float, dict[int, float]],
) -> tuple[float, dict[int, float], Reason | None]:
    """Site, hall and ramp check of a start at `level`: (increment, per-hall increments, reason)."""
    node_cap, held, shares = shape
    per_gpu = view.per_gpu_w(job.kind, f, level, node_cap)
    inc = gang * (per_gpu - view.idle_w[f])
    halls = {h: inc * k / held for h, k in shares.items()}
    credit_w, credit_halls = credit
    if inc > room.site_w + credit_w:
        return (
            inc,
            halls,
            Reason(
                Code.POWER_CAP,
                need_mw=inc / 1e6,
                headroom_mw=max(room.site_w + credit_w, 0.0) / 1e6,
                domain="site",
            ),
        )
    for h, w in halls.items():
        left = room.hall_w[h] + credit_halls.get(h, 0.0)
        if w > left:
            return (
                inc,
                halls,
                Reason(
                    Code.POWER_CAP,
                    need_mw=w / 1e6,
                    headroom_mw=max(left, 0.0) / 1e6,
                    domain=f"hall {h}",
                ),
            )
    # A start larger than a whole window is allowed alone, into a clear window: the driver then
    # staggers its gang in waves of one window's allowance.
    window_clear = room.ramp_w >= view.ramp_limit_w
    if inc > room.ramp_w and not window_clear:
        return (
            inc,
            halls,
            Reason(
                Code.POWER_RAMP,
                need_mw=inc / 1e6,
                headroom_mw=max(room.ramp_w, 0.0) / 1e6,
                limit_mw=view.ramp_limit_w / 1e6,
            ),
        )
    return inc, halls, None


def _ramp_refuses(
    view: PowerView, room: Watts, job: Job, f: int, gang: int, firsts: set[int]
) -> bool:
    """Whether an admission that tries one of `firsts` first stops there on the ramp, whatever
    the placement and the credit: at each such level the step is more than a window that is not
    clear has left, even on the most capped racks, while the site and every hall take it, even
    uncapped by racks and without credit, so the ramp check is reached (a credit, the victims'
    watts over idle, is never negative; `_fits` checks site, halls, then the ramp)."""
    if room.ramp_w >= view.ramp_limit_w:
        return False  # a clear window takes any start alone
    idle = view.idle_w[f]
    hall_w = min(room.hall_w, default=math.inf)
    for level in firsts:
        low = gang * (view.per_gpu_w(job.kind, f, level, view.min_node_cap_w) - idle)
        high = gang * (view.per_gpu_w(job.kind, f, level, math.inf) - idle)
        if low <= room.ramp_w or high > room.site_w or high > hall_w:
            return False
    return True


class AdmitUncapped:
    """Admission only: a job starts uncapped if its draw fits the budgets, else it waits."""

    name = "admit"

    def ramp_refuses(self, view: PowerView, room: Watts, job: Job, flavor: int, gang: int) -> bool:
        return _ramp_refuses(view, room, job, flavor, gang, {0})

    def admit(
        self,
        view: PowerView,
        room: Watts,
        job: Job,
        flavor: int,
        gang: int,
        placement: Placement,
        credit: tuple[float, dict[int, float]] = (0.0, {}),
    ) -> Grant | Reason:
        shape = _shape(view, placement)
        inc, halls, r = _fits(view, room, job, flavor, gang, shape, 0, credit)
        return Grant(0, inc, halls, shape) if r is None else r


class CapToFit:
    """Admission with capping: start at the class's current level (the solver's choice, TDP when
    the budget is loose) or the highest lower level that fits, down to the floor."""

    name = "cap"

    def ramp_refuses(self, view: PowerView, room: Watts, job: Job, flavor: int, gang: int) -> bool:
        # The level tried first is the class's, and the class's hall is the placement's: any.
        firsts = {
            min(view.target.get((job.kind, flavor, job.priority, h), 0), view.floor)
            for h in range(len(room.hall_w))
        }
        return _ramp_refuses(view, room, job, flavor, gang, firsts)

    def admit(
        self,
        view: PowerView,
        room: Watts,
        job: Job,
        flavor: int,
        gang: int,
        placement: Placement,
        credit: tuple[float, dict[int, float]] = (0.0, {}),
    ) -> Grant | Reason:
        key = (job.kind, flavor, job.priority, view.node_hall[placement[0][0]])
        first = view.target.get(key, 0)
        reason: Reason | None = None
        shape = _shape(view, placement)
        for level in range(min(first, view.floor), view.floor + 1):
            inc, halls, reason = _fits(view, room, job, flavor, gang, shape, level, credit)
            if reason is None:
                return Grant(level, inc, halls, shape)
            if reason.code is Code.POWER_RAMP:
                break  # a lower cap would still be a step too many this window
        assert reason is not None  # the floor is a level: the loop ran at least once
        return reason


# ---- the cap solver ---------------------------------------------------------------------------
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
