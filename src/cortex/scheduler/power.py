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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Protocol

from cortex.scheduler.cap_solver import ClassKey
from cortex.scheduler.placement import WholeNodes
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.state import Placement
from cortex.workload.job import Job

POWER_CODES = (Code.POWER_CAP, Code.POWER_RAMP)


# PowerView, Grant and CapJob are not frozen: built per pass, per admitted start and per running
# job of a solve, and a frozen dataclass's __init__ costs 3-4x a plain one (scheduler/snapshot.py).
# Nothing assigns to them after construction.
@dataclass(slots=True)
class PowerView:
    """What a cycle may spend, in IT watts, as the driver saw it before the cycle: built by the
    driver for each cycle and never changed by it (the cycle spends from a `Watts`). The twin
    hands the next cycle the same object with its three headroom fields set again where nothing
    else changed (PowerRuntime.pass_view): no view is kept past its cycle."""

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
    # The driver's memo of what floor_inc_w computes per GPU from the fields above for a (kind,
    # flavor) (read for every job a pass examines before placement); None: computed here.
    floor_gpu_w: Callable[[str, int], float] | None = None
    # The driver's memo of `placement_shape` over node_hall, node_max_cap_w and min_node_cap_w
    # (read at every admission); None: computed here.
    shape_of: Callable[[Placement], Shape] | None = None

    def floor_inc_w(self, job: Job, flavor: int, gang: int) -> float:
        """The least a start could add: at the floor, on the least-capped nodes."""
        fw = self.floor_gpu_w
        if fw is not None:
            return gang * fw(job.kind, flavor)
        per = min(self.levels[self.floor] * self.tdp_w[flavor], self.draw_w(job.kind, flavor))
        return gang * (min(per, self.min_node_cap_w) - self.idle_w[flavor])

    def lower_bound_reason(
        self, room: Watts, job: Job, flavor: int, gang: int, lean: bool = False
    ) -> Reason | None:
        """Could the job fit what is left of the site budget even at the floor, on the
        least-capped nodes? A necessary condition, checked before placement. `lean` (a pass
        that counts blockers by code): a refusal whose need is within the whole site budget is
        the shared `FLOOR_SHORT`, without numbers; `power_blocks` reads that need only to find
        it within the budget (as it is here, the same comparison), and the twin reads only the
        code and the job of the rest reason it makes."""
        fw = self.floor_gpu_w  # floor_inc_w's first branch, without the call to it: per job
        inc = gang * fw(job.kind, flavor) if fw is not None else self.floor_inc_w(job, flavor, gang)
        if inc > room.site_w:
            return self.floor_short(room, inc, lean)
        return None

    def floor_short(self, room: Watts, inc: float, lean: bool = False) -> Reason:
        """lower_bound_reason's refusal of a start whose floor increment `inc` is more than the
        site has left (the walk's bound, which computed `inc`, asks this directly)."""
        # power_blocks' own test of need_mw (inc / 1e6) against the budget; a need below 0 W
        # keeps its numbers (a reason without them reads as needing 0 W there).
        if lean and 0.0 <= inc / 1e6 * 1e6 <= self.site_budget_w:
            return FLOOR_SHORT
        return Reason(
            Code.POWER_CAP,
            need_mw=inc / 1e6,
            headroom_mw=max(room.site_w, 0.0) / 1e6,
            domain="site",
        )

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
        # A new list of the view's (any sequence's) entries: a display, not a call (per pass;
        # Statement builds the same Watts itself, without this call).
        return cls(view.site_headroom_w, [*view.hall_headroom_w], view.ramp_headroom_w, set())

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
    # holds as many GPUs (whole-node gangs), else by the loop below. The halls are one
    # itemgetter call over the nodes (three or more here: a tuple), and the count per hall is
    # the tuple's own count for each of its few halls, taken in the order the placement first
    # names them (Counter's order and numbers, without a dict step per node).
    halls = itemgetter(*map(itemgetter(0), placement))(nh)
    if halls.count(h0) == len(halls):
        return {h0: sum(map(itemgetter(1), placement))}
    gpus = list(map(itemgetter(1), placement))
    if gpus.count(k0) == len(gpus):
        return {h: halls.count(h) * k0 for h in sorted(set(halls), key=halls.index)}
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


def uncapped_shape(node_hall: Sequence[int], placement: Placement, large_nodes: int) -> Shape:
    """placement_shape's answer (halls as first named, GPUs summed in placement order) on a
    fleet without rack caps: a placement of up to `large_nodes` nodes in one frame and pass, a
    larger whole-node one by one list comprehension that also checks each node's GPUs, not
    hall_shares' maps (RESULTS 142; the drive books' shapes, ~20k a month under `full`)."""
    n0, k0 = placement[0]
    h0 = node_hall[n0]
    if len(placement) > large_nodes:
        halls = [node_hall[n] for n, k in placement if k == k0]
        if len(halls) < len(placement):  # partial nodes
            return placement_shape(node_hall, (), math.inf, placement)
        gpus = len(halls) * k0
        if halls.count(h0) == len(halls):
            return math.inf, gpus, {h0: gpus}
        by_hall = {h: halls.count(h) * k0 for h in sorted(set(halls), key=halls.index)}
        return math.inf, gpus, by_hall
    gpus = 0
    for n, k in placement:
        if node_hall[n] != h0:
            break
        gpus += k
    else:
        return math.inf, gpus, {h0: gpus}
    shares: dict[int, int] = {}
    for n, k in placement:
        shares[node_hall[n]] = shares.get(node_hall[n], 0) + k
    return math.inf, sum(shares.values()), shares


def _shape(view: PowerView, placement: Placement) -> Shape:
    """What `_fits` reads of a placement, the same at every level it tries: computed once (by
    the driver's memo when the view carries one)."""
    if len(placement) == 1:
        # Most starts: one node, which the driver's memo does not keep (SHAPE_MEMO_NODES): its
        # answer is placement_shape's, asked directly.
        return placement_shape(view.node_hall, view.node_max_cap_w, view.min_node_cap_w, placement)
    if type(placement) is WholeNodes and view.min_node_cap_w == math.inf:
        # Whole nodes placed pod by pod, which counted their GPUs per hall: placement_shape's
        # answer without a look-up per node (no rack caps: the node cap is inf; every node
        # holds its first node's GPUs). Rack caps need the least cap over the nodes.
        return math.inf, len(placement) * placement[0][1], placement.halls
    shape_of = view.shape_of
    if shape_of is not None:
        return shape_of(placement)
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
    explain: bool = True,
) -> tuple[float, dict[int, float], Reason | None]:
    """Site, hall and ramp check of a start at `level`: (increment, per-hall increments, reason).
    `explain=False`: a refusal is one of two shared reasons without numbers (_SITE_MISS,
    _RAMP_MISS), for a caller that tries a lower level next and reads only the code: most
    refusals are discarded so, and a Reason's numbers cost more than the check."""
    node_cap, held, shares = shape
    ladder_w = view.ladder_w  # per_gpu_w's first branch, without the call to it
    if ladder_w is not None:
        per_gpu = ladder_w(job.kind, f, level, node_cap)
    else:
        per_gpu = view.per_gpu_w(job.kind, f, level, node_cap)
    inc = gang * (per_gpu - view.idle_w[f])
    one = len(shares) == 1
    if one:  # one hall (nearly every start): the comprehension's one entry
        [(h0, k0)] = shares.items()
        w0 = inc * k0 / held
        halls = {h0: w0}
    else:
        halls = {h: inc * k / held for h, k in shares.items()}
    credit_w, credit_halls = credit
    if inc > room.site_w + credit_w:
        if not explain:
            return inc, halls, _SITE_MISS
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
    if one:
        # The loop's one step, without the loop, and without the credit's look-up when there is
        # no credit (every start but a preemptor's): the 0.0 its default would add.
        left = room.hall_w[h0] + (credit_halls.get(h0, 0.0) if credit_halls else 0.0)
        if w0 > left:
            return inc, halls, _hall_miss(h0, w0, left, explain)
    else:
        for h, w in halls.items():
            left = room.hall_w[h] + credit_halls.get(h, 0.0)
            if w > left:
                return inc, halls, _hall_miss(h, w, left, explain)
    # A start larger than a whole window is allowed alone, into a clear window: the driver then
    # staggers its gang in waves of one window's allowance.
    window_clear = room.ramp_w >= view.ramp_limit_w
    if inc > room.ramp_w and not window_clear:
        if not explain:
            return inc, halls, _RAMP_MISS
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


def _hall_miss(h: int, w: float, left: float, explain: bool) -> Reason:
    """`_fits`' refusal for hall `h`, short of `w` with `left` there."""
    if not explain:
        return _SITE_MISS
    return Reason(
        Code.POWER_CAP, need_mw=w / 1e6, headroom_mw=max(left, 0.0) / 1e6, domain=f"hall {h}"
    )


# What `_fits(explain=False)` refuses with: the code only (callers read nothing else of them).
_SITE_MISS = Reason(Code.POWER_CAP)
_RAMP_MISS = Reason(Code.POWER_RAMP)
# What a lean pass's floor bound refuses with when the need is within the site budget: a site
# reason without numbers (power_blocks finds such a need within the budget, as it is).
FLOOR_SHORT = Reason(Code.POWER_CAP)


def _ramp_refuses(
    view: PowerView, room: Watts, job: Job, f: int, gang: int, firsts: set[int], last: int
) -> bool:
    """Whether an admission that tries one of `firsts` first, then each lower cap down to
    `last`, stops on the ramp, whatever the placement and the credit. Admission walks the
    levels from the first and stops at the first one the site and every hall take (with the
    credit), refused there if the window is not clear and the step is more than it has left;
    past `last` it refuses on the site or a hall. So it stops on the ramp when, from the first
    level on, every step is more than the window has left (even on the most capped racks) down
    to a level whose step the site and every hall take even uncapped by racks and without
    credit: the walk stops there or before, on the ramp (a credit, the victims' watts over
    idle, is never negative; a hall's share of a step is at most the step; `_fits` checks
    site, halls, then the ramp). A level the site may refuse is not a stop: the walk may go on
    below it, to steps the window takes, once the victims' watts are known (RESULTS 146)."""
    if room.ramp_w >= view.ramp_limit_w:
        return False  # a clear window takes any start alone
    if view.min_node_cap_w < math.inf:
        # Under rack caps a level's draw is not monotone in the node cap (the books' ladder
        # keeps only its concave hull: a level off it takes the level above's draw), so the
        # steps at the least cap and uncapped bound no placement's: not told (RESULTS 155).
        return False
    idle = view.idle_w[f]
    hall_w = min(room.hall_w, default=math.inf)
    for first in firsts:
        level = first
        while True:
            low = gang * (view.per_gpu_w(job.kind, f, level, view.min_node_cap_w) - idle)
            if low <= room.ramp_w:
                return False
            high = gang * (view.per_gpu_w(job.kind, f, level, math.inf) - idle)
            if high <= room.site_w and high <= hall_w:
                break
            if level >= last:
                return False
            level += 1
    return True


class AdmitUncapped:
    """Admission only: a job starts uncapped if its draw fits the budgets, else it waits."""

    name = "admit"

    def ramp_refuses(self, view: PowerView, room: Watts, job: Job, flavor: int, gang: int) -> bool:
        return _ramp_refuses(view, room, job, flavor, gang, {0}, 0)

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


# The credit of a start that evicts nothing: CapToFit.admit's default, told by identity.
_NO_CREDIT: tuple[float, dict[int, float]] = (0.0, {})


class CapToFit:
    """Admission with capping: start at the class's current level (the solver's choice, TDP when
    the budget is loose) or the highest lower level that fits, down to the floor."""

    name = "cap"

    def ramp_refuses(self, view: PowerView, room: Watts, job: Job, flavor: int, gang: int) -> bool:
        if room.ramp_w >= view.ramp_limit_w:
            return False  # _ramp_refuses' first answer, before the class levels are read
        # The level tried first is the class's, and the class's hall is the placement's: any.
        # min(level, floor) written out, in a loop rather than a comprehension's own frame (per
        # preemptor a deep pass tries: ~5.7k a month under `full`).
        floor = view.floor
        target = view.target
        kind = job.kind
        prio = job.priority
        firsts = set()
        for h in range(len(room.hall_w)):
            first = target.get((kind, flavor, prio, h), 0)
            firsts.add(floor if floor < first else first)
        return _ramp_refuses(view, room, job, flavor, gang, firsts, floor)

    def admit(
        self,
        view: PowerView,
        room: Watts,
        job: Job,
        flavor: int,
        gang: int,
        placement: Placement,
        credit: tuple[float, dict[int, float]] = _NO_CREDIT,
    ) -> Grant | Reason:
        floor = view.floor
        if len(placement) == 1:
            # Most starts: placement_shape's one-node answer built here, the node's hall read
            # once for it and the class key (two calls fewer per admission).
            n, k = placement[0]
            hall = view.node_hall[n]
            cap_w = view.node_max_cap_w[n] if view.min_node_cap_w < math.inf else math.inf
            # No class has a level yet at a fifth of the month's admissions: 0, without a key.
            target = view.target
            first = target.get((job.kind, flavor, job.priority, hall), 0) if target else 0
            level = floor if floor < first else first  # min without the call (per admission)
            if credit is _NO_CREDIT:
                # And most of them, with no credit (all but a preemptor's), are granted at the
                # first level tried: `_fits`' arithmetic and its three checks in its order,
                # inline (the same doubles: with one hall the share is inc * k / k, and a zero
                # credit added changes no comparison). A refusal on the site or a hall goes the
                # general way below, which checks this level again and walks down.
                ladder_w = view.ladder_w
                kind = job.kind
                if ladder_w is not None:
                    per_gpu = ladder_w(kind, flavor, level, cap_w)
                else:
                    per_gpu = view.per_gpu_w(kind, flavor, level, cap_w)
                inc = gang * (per_gpu - view.idle_w[flavor])
                w0 = inc * k / k
                ramp_w = room.ramp_w
                if not (inc > room.site_w or w0 > room.hall_w[hall]):
                    if not inc > ramp_w or ramp_w >= view.ramp_limit_w:
                        return Grant(level, inc, {hall: w0}, (cap_w, k, {hall: k}))
                    # The ramp refuses what the site and hall take: the general way stops at
                    # this level with `_fits`' reason, built here from the same doubles.
                    return Reason(
                        Code.POWER_RAMP,
                        need_mw=inc / 1e6,
                        headroom_mw=max(ramp_w, 0.0) / 1e6,
                        limit_mw=view.ramp_limit_w / 1e6,
                    )
            shape: Shape = (cap_w, k, {hall: k})
        else:
            hall = view.node_hall[placement[0][0]]
            shape = _shape(view, placement)
            first = view.target.get((job.kind, flavor, job.priority, hall), 0)
            level = floor if floor < first else first
        while True:
            # Above the floor a refusal is only read for its code (the next level is tried):
            # the Reason with its numbers is built once, for the level that ends the search.
            inc, halls, reason = _fits(
                view, room, job, flavor, gang, shape, level, credit, level == floor
            )
            if reason is None:
                return Grant(level, inc, halls, shape)
            if level == floor:
                return reason
            if reason.code is Code.POWER_RAMP:
                # a lower cap would still be a step too many this window
                return _fits(view, room, job, flavor, gang, shape, level, credit)[2] or reason
            level += 1
