"""Power books shared by both drivers: site and hall budgets over idle, the cap ladder, each
running job's watts (drive/power_jobs.py), the ramp window, and the PowerView a cycle spends.

The twin (sim/power.py) adds weather per tick, cap events and a record of facility power; the
control plane (control/loop_power.py) adds a site cap that an operator may change while it runs
and the actuator that sets real GPUs' power limits. Policy decisions (admit, which cap, whom to
pause) stay in cortex.scheduler.power; which policy a name means is in cortex.scheduler.registry.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import sub
from typing import ClassVar

from cortex.drive.power_jobs import JobPowerBooks, _JobPower
from cortex.drive.power_moves import kept_moves
from cortex.errors import InputError
from cortex.fleet.topology import Topology
from cortex.power.cooling import CoolingModel
from cortex.power.curve import CapCurve
from cortex.scheduler.cap_solver import CapPlan, ClassKey, LevelsOf, make_room_with
from cortex.scheduler.power import (
    PowerPolicy,
    PowerView,
    Shape,
    placement_shape,
    uncapped_shape,
)
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.registry import PowerProfile
from cortex.scheduler.state import ClusterState, Placement
from cortex.workload.job import Job

RAISE_SPARE_FRAC = 0.01
# Placements of more nodes than this have their shape kept (PowerBooks._shape_of).
SHAPE_MEMO_NODES = 64
DEFAULT_LEVELS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)


@dataclass(frozen=True)
class FleetWatts:
    """What the fleet draws with nothing running, and its limits, from the catalog."""

    nameplate_it_w: float
    node_base_w: list[float]
    flavor_overhead_w: list[float]
    hall_base_w: list[float]
    hall_limit_w: list[float]
    hall_cooling_w: list[float]
    node_max_cap_w: list[float]

    @classmethod
    def of(cls, topo: Topology, rack_cap_kw: float | None, floor_frac: float) -> FleetWatts:
        accs = topo.accelerators
        gpn = topo.flavor_gpus_per_node
        node_base = [
            topo.node_overhead_w[n] + gpn[f] * accs[f].idle_w
            for n, f in enumerate(topo.node_flavor)
        ]
        nameplate = sum(
            topo.node_overhead_w[n] + gpn[f] * accs[f].tdp_w for n, f in enumerate(topo.node_flavor)
        )
        flavor_over = [0.0] * len(topo.flavors)
        for n, f in enumerate(topo.node_flavor):
            flavor_over[f] += topo.node_overhead_w[n]
        hall_base = [0.0] * len(topo.hall_names)
        for n, h in enumerate(topo.node_hall):
            hall_base[h] += node_base[n]
        hall_limit = [
            hs.power_cap_mw * 1e6 if hs.power_cap_mw is not None else math.inf
            for hs in topo.spec.halls
        ]
        hall_cool = [
            hs.cooling_mw * 1e6 if hs.cooling_mw is not None else math.inf for hs in topo.spec.halls
        ]
        return cls(
            nameplate_it_w=nameplate,
            node_base_w=node_base,
            flavor_overhead_w=flavor_over,
            hall_base_w=hall_base,
            hall_limit_w=hall_limit,
            hall_cooling_w=hall_cool,
            node_max_cap_w=_rack_caps(topo, rack_cap_kw, floor_frac),
        )


def _rack_caps(topo: Topology, rack_cap_kw: float | None, floor_frac: float) -> list[float]:
    """Static per-rack bound: every GPU of the rack busy at this cap stays under the rack's
    budget, whatever else runs there (simple, safe, a little conservative)."""
    if rack_cap_kw is None:
        return [math.inf] * topo.n_nodes
    gpn = topo.flavor_gpus_per_node
    accs = topo.accelerators
    over: dict[int, float] = {}
    gpus: dict[int, int] = {}
    for n, r in enumerate(topo.node_rack):
        over[r] = over.get(r, 0.0) + topo.node_overhead_w[n]
        gpus[r] = gpus.get(r, 0) + gpn[topo.node_flavor[n]]
    per_rack = {r: (rack_cap_kw * 1e3 - over[r]) / gpus[r] for r in over}
    node_cap = [per_rack[r] for r in topo.node_rack]
    for n, f in enumerate(topo.node_flavor):
        floor_w = floor_frac * accs[f].tdp_w
        if node_cap[n] < floor_w:
            raise InputError(
                "--rack-cap-kw",
                "rack_cap_kw",
                f"{rack_cap_kw:g} kW leaves {node_cap[n]:.0f} W per {accs[f].name} "
                f"in rack {topo.node_rack[n]}, below the {floor_w:.0f} W floor cap",
            )
    return node_cap


def profile_levels(
    profile: PowerProfile,
    levels: tuple[float, ...],
    static_frac: float | None,
    topo: Topology,
    cooling: CoolingModel,
    cap_mw: float | None,
    nameplate_it_w: float,
) -> tuple[float, ...]:
    """The cap levels a profile lets starts take: its one static cap, TDP only, or the ladder."""
    if profile.static:
        frac = static_frac
        if frac is None:
            frac = _static_frac(topo, cooling, cap_mw, nameplate_it_w)
        return (frac,)
    return levels if profile.capped_starts else (1.0,)


@dataclass(kw_only=True)
class PowerBooks(JobPowerBooks):
    """Budgets and books. A driver builds them with `for_fleet` (the twin through a subclass
    that adds weather and cap events). `temp_c` and `cap_w` are the two time-varying inputs;
    here they are constant (`temperature_c`, `site_cap_w`), and a driver may override them."""

    topo: Topology
    cooling: CoolingModel
    curve: CapCurve
    site_cap_w: float
    nameplate_it_w: float
    base_all_w: float  # every node idle, up or not (down nodes keep their budget)
    hall_base_w: list[float]
    hall_limit_w: list[float]  # IT power cap per hall (inf: none)
    hall_cooling_w: list[float]  # rated heat rejection per hall (inf: none)
    node_base_w: list[float]
    flavor_overhead_w: list[float]
    node_max_cap_w: list[float]
    levels: tuple[float, ...]
    policy: PowerPolicy | None
    ramp_mw_per_min: float | None = None  # None: no grid ramp limit
    temperature_c: float | None = None  # None: the cooling model's design temperature
    jobs: dict[int, _JobPower] = field(default_factory=dict)
    inc_total_w: float = 0.0
    actual_total_w: float = 0.0
    hall_inc_w: list[float] = field(default_factory=list)
    hall_actual_w: list[float] = field(default_factory=list)
    target: dict[ClassKey, int] = field(default_factory=dict)
    window: deque = field(default_factory=deque)  # (t, IT W) of recent and scheduled steps
    cap_loss_gpu_s: float = 0.0
    paused: int = 0
    solves: int = 0
    n_capped: int = 0  # running jobs below level 0
    min_node_cap_w: float = math.inf
    staggered: int = 0
    _ladders: dict = field(default_factory=dict)
    _budget_cache: dict = field(default_factory=dict)
    # Watts a driver holds back from the budgets (the live loop: jobs still exiting); the twin
    # reserves none.
    reserved_w: float = 0.0
    reserved_hall_w: dict[int, float] = field(default_factory=dict)
    _per_cache: dict = field(default_factory=dict)
    _draw_cache: dict = field(default_factory=dict)
    _never_cache: dict = field(default_factory=dict)
    # The solver's class sums kept as jobs start and stop (drive/power_jobs.py), with `jobs`
    # (a copy of the books shares both), and the count of starts that orders them.
    _classes: dict = field(default_factory=dict)
    _seq: int = 0
    _qcache: dict = field(default_factory=dict, init=False, repr=False)
    _idle_w: list[float] = field(default_factory=list)
    _tdp_w: list[float] = field(default_factory=list)
    # _floor_gpu_w behind functools.cache, which the views hand out (None: not made yet)
    _floor_fn: Callable[[str, int], float] | None = field(
        default_factory=lambda: None, init=False, repr=False
    )
    # (placement's length, first and last entries) -> (the placement, its shape): _shape_of's
    _shape_memo: dict = field(default_factory=dict, init=False, repr=False)
    # (site cap, coolest temperature, the site budget over idle then): never_fits's bound
    _never_best: tuple[float, float, float] | None = field(
        default_factory=lambda: None, init=False, repr=False
    )
    # it_w's idle base with the (up GPUs, up nodes, all nodes) per flavor it was summed at: it
    # moves only with failures and repairs, and is read at every instant the draw changes
    _idle_memo: tuple[list[int], list[int], list[int], float] | None = field(
        default_factory=lambda: None, init=False, repr=False
    )
    # facility_w's (temperature, cooling model, nameplate, slope, fixed watts)
    _facility_memo: tuple[float, CoolingModel, float, float, float] | None = field(
        default_factory=lambda: None, init=False, repr=False
    )
    # How long a step stays in the window after the decision that books one: a step counts for
    # 60 s (window_headroom_w); a minute more is kept for the live loop, whose power page reads
    # a copy of the window at its own clock (control/ui/power_view.py). The twin keeps only what
    # it can still read (sim/power.py).
    WINDOW_KEEP_S: ClassVar[float] = 120.0

    @classmethod
    def fleet_args(
        cls,
        topo: Topology,
        *,
        cap_mw: float | None,
        profile: PowerProfile,
        levels: tuple[float, ...] = DEFAULT_LEVELS,
        static_frac: float | None = None,
        rack_cap_kw: float | None = None,
        curve_path: str | None = None,
    ) -> dict:
        """The constructor's fleet-derived arguments (a subclass adds its own and calls cls)."""
        cooling = CoolingModel.for_pue(topo.spec.site.pue)
        fw = FleetWatts.of(topo, rack_cap_kw, levels[-1])
        return {
            "topo": topo,
            "cooling": cooling,
            "curve": CapCurve.load(curve_path),
            "site_cap_w": (cap_mw or math.inf) * 1e6,
            "nameplate_it_w": fw.nameplate_it_w,
            "base_all_w": sum(fw.node_base_w),
            "hall_base_w": fw.hall_base_w,
            "hall_limit_w": fw.hall_limit_w,
            "hall_cooling_w": fw.hall_cooling_w,
            "node_base_w": fw.node_base_w,
            "flavor_overhead_w": fw.flavor_overhead_w,
            "node_max_cap_w": fw.node_max_cap_w,
            "levels": profile_levels(
                profile, levels, static_frac, topo, cooling, cap_mw, fw.nameplate_it_w
            ),
            "policy": profile.make() if profile.make is not None else None,
        }

    def __post_init__(self) -> None:
        n_halls = len(self.topo.hall_names)
        self.hall_inc_w = [0.0] * n_halls
        self.hall_actual_w = [0.0] * n_halls
        self.min_node_cap_w = min(self.node_max_cap_w)
        self._idle_w = [a.idle_w for a in self.topo.accelerators]
        self._tdp_w = [a.tdp_w for a in self.topo.accelerators]

    # ---- time-varying inputs (constant here; the twin's subclass varies them) ----------------
    def temp_c(self, t: float) -> float:
        return self.cooling.design_temp_c if self.temperature_c is None else self.temperature_c

    def cap_w(self, t: float) -> float:
        return self.site_cap_w

    def coolest_temp_c(self) -> float:
        return self.temp_c(0.0)

    def hottest_temp_c(self) -> float:
        return self.temp_c(0.0)

    def _budget_key(self, t: float) -> tuple:
        return (self.temp_c(t), self.cap_w(t))

    def _periodic_solve(self, t: float) -> bool:
        """Whether caps are evened out at `t` even when little is spare (the twin: hourly)."""
        return False

    # ---- budgets ----------------------------------------------------------------------------
    def idle_facility_w(self) -> float:
        """The whole fleet idle on the hottest moment: no site cap may be below this."""
        return self.cooling.facility_w(self.base_all_w, self.nameplate_it_w, self.hottest_temp_c())

    def _budgets(self, t: float) -> tuple[float, list[float]]:
        """Site and hall IT budgets over idle; they change only when temperature or cap do."""
        key = self._budget_key(t)
        got = self._budget_cache.get(key)
        if got is None:
            if len(self._budget_cache) > 64:
                self._budget_cache.clear()
            it = self.cooling.it_budget_w(self.cap_w(t), self.nameplate_it_w, self.temp_c(t))
            got = self._budget_cache[key] = (it - self.base_all_w, self._hall_budget_w(t))
        return got

    def _budgets_left(self, t: float) -> tuple[float, list[float]]:
        """site_budget_w's and hall_budget_w's values from one read of the budgets."""
        site_w, hb = self._budgets(t)
        if self.reserved_hall_w:
            hb = [w - self.reserved_hall_w.get(h, 0.0) for h, w in enumerate(hb)]
        return site_w - self.reserved_w, hb

    def site_budget_w(self, t: float) -> float:
        """IT watts over idle the site may add at time t (less what a driver reserved)."""
        return self._budgets(t)[0] - self.reserved_w

    def hall_budget_w(self, t: float) -> list[float]:
        got = self._budgets(t)[1]
        if not self.reserved_hall_w:
            return got
        return [w - self.reserved_hall_w.get(h, 0.0) for h, w in enumerate(got)]

    def _hall_budget_w(self, t: float) -> list[float]:
        temp = self.temp_c(t)
        out = []
        for h, base in enumerate(self.hall_base_w):
            lim = min(
                self.hall_limit_w[h], self.cooling.cooling_capacity_w(self.hall_cooling_w[h], temp)
            )
            out.append(lim - base)
        return out

    def ramp_limit_it_w(self, t: float) -> float:
        mw = self.ramp_mw_per_min
        if mw is None:
            return math.inf
        return mw * 1e6 / self.cooling.slope(self.temp_c(t))

    def view(self, t: float, state: ClusterState | None = None) -> PowerView:
        # The twin builds one per cycle: the budgets are read once and the ramp limit computed
        # once (the same values site_budget_w, hall_budget_w and ramp_headroom_it_w give).
        site_w, hb = self._budgets(t)
        site_w -= self.reserved_w
        if self.reserved_hall_w:
            hb = [w - self.reserved_hall_w.get(h, 0.0) for h, w in enumerate(hb)]
        limit = self.ramp_limit_it_w(t)
        # The floor memo read at every try of the walk (163k a month under `full`): the same
        # answers through functools.cache, whose C wrapper costs ~450 instructions a call less
        # than the method's call and look-up (RESULTS section 143).
        floor_fn = self._floor_fn
        if floor_fn is None:
            floor_fn = self._floor_fn = functools.cache(self._floor_gpu_w)
        return PowerView(
            site_headroom_w=site_w - self.inc_total_w,
            hall_headroom_w=list(map(sub, hb, self.hall_inc_w)),  # one entry per hall in both
            levels=self.levels,
            floor=len(self.levels) - 1,
            draw_w=self.draw_w,
            idle_w=self._idle_w,
            tdp_w=self._tdp_w,
            node_hall=self.topo.node_hall,
            node_max_cap_w=self.node_max_cap_w,
            target=self.target,  # read-only to policies; the solver replaces it whole
            ramp_headroom_w=self._ramp_headroom(t, limit),
            site_budget_w=site_w,
            ramp_limit_w=limit,
            min_node_cap_w=self.min_node_cap_w,
            ladder_w=self._ladder_w,
            job_inc_w=self._inc_of,
            floor_gpu_w=floor_fn,
            shape_of=self._shape_of,
        )

    def _shape_of(self, placement: Placement) -> Shape:
        """`placement_shape` over these books' fleet (PowerView.shape_of). A gang the budget holds
        back is placed again, the same way, at every pass (950 of the month's 1,917 shapes of
        over 64 nodes): a large placement's shape is kept with it for an equal one."""
        if len(placement) <= SHAPE_MEMO_NODES:
            return self._fast_shape(placement)
        key = (len(placement), placement[0], placement[-1])
        memo = self._shape_memo
        got = memo.get(key)
        if got is not None and got[0] == placement:
            return got[1]
        shape = self._fast_shape(placement)
        if len(memo) >= 16:
            memo.clear()
        memo[key] = (placement, shape)  # a tuple: what is kept cannot change after
        return shape

    def _fast_shape(self, placement: Placement) -> Shape:
        """placement_shape's answer; without rack caps by `uncapped_shape` (RESULTS 142)."""
        if self.min_node_cap_w < math.inf:  # rack caps: the node cap is a least over nodes
            return placement_shape(
                self.topo.node_hall, self.node_max_cap_w, self.min_node_cap_w, placement
            )
        return uncapped_shape(self.topo.node_hall, placement, SHAPE_MEMO_NODES)

    def _floor_gpu_w(self, kind: str, flavor: int) -> float:
        """PowerView.floor_inc_w's per-GPU floor over idle on the least-capped nodes. Kept by the
        one functools.cache the views hand out (`view`), not here: a second memo of the same
        answers would only cost a look-up more at every miss."""
        per = min(self.levels[-1] * self._tdp_w[flavor], self.draw_w(kind, flavor))
        return min(per, self.min_node_cap_w) - self._idle_w[flavor]

    # ---- the ramp window ----------------------------------------------------------------------
    def add_step(self, t: float, it_w: float, now: float | None = None) -> None:
        """An upward step at t counts against the ramp window. `now`: the decision time (t when
        None). Old steps are dropped relative to now, not to t: a staggered start books its
        later waves at t + 60 s, t + 120 s, ..., and pruning by those would drop steps that
        are still inside the window when the next decision is made (its own first wave and any
        start of the last minute)."""
        window = self.window  # read once: every start books a step
        window.append((t, it_w))
        cut = (t if now is None else now) - self.WINDOW_KEEP_S
        while window and window[0][0] <= cut:
            window.popleft()

    def ramp_headroom_it_w(self, t: float) -> float:
        return self._ramp_headroom(t, self.ramp_limit_it_w(t))

    def _ramp_headroom(self, t: float, limit: float) -> float:
        return window_headroom_w(self.window, t, limit)

    def ramp_clear_at(self, t: float, need_w: float = math.inf) -> float:
        """The first instant from `t` at which the window has `need_w` IT watts of headroom
        again, or is clear (a clear window takes a start of any size alone: scheduler/power.py
        `_fits`); `need_w` left out: when it is clear. Headroom rises only as counted steps
        leave, each 60 s after its time, so the instants to try are `t` and those; each is
        judged by the headroom and limit admission will read there. Not simply when the oldest
        step leaves: after a staggered start of k waves (t, t+60, ..., t+60(k-1)) the window
        has room only from t+60(k-1), beside the last wave, or t+60k (bench/RESULTS.md §99)."""
        return window_clear_at(self.window, t, self.ramp_limit_it_w, need_w)

    # ---- decisions the driver asks for --------------------------------------------------------
    def never_fits(self, job: Job, flavors: tuple[int, ...]) -> Reason | None:
        """A job whose lowest draw (the floor level; TDP when starts are never capped) exceeds
        the site budget on the coolest moment can never start. `flavors` empty: any flavor (as
        `job.flavor_ids` says of a job that names none)."""
        if self.policy is None:
            return None
        # Read on every arrival: kept for the site cap and coolest temperature (no key tuple).
        cap_w = self.site_cap_w
        coolest = self.coolest_temp_c()
        memo = self._never_best
        if memo is not None and memo[0] == cap_w and memo[1] == coolest:
            best = memo[2]
        else:
            best = max(self.cooling.it_budget_w(cap_w, self.nameplate_it_w, coolest), 0.0)
            best -= self.base_all_w
            self._never_best = (cap_w, coolest, best)
        gang = job.elastic_min or job.gpus
        try:  # by kind, gang, then flavors: no key tuple made and hashed per arrival
            need = self._never_cache[job.kind][gang][flavors]
        except KeyError:
            need = self._never_need(job.kind, gang, flavors)
        if need <= best:
            return None
        return Reason(Code.NEVER_FITS_POWER, need_mw=need / 1e6, most_mw=best / 1e6)

    def _never_need(self, kind: str, gang: int, flavors: tuple[int, ...]) -> float:
        """never_fits's kept floor, from the per-GPU ladder, not a gang's own (RESULTS 142). Not
        in never_fits: its generator's five cells cost every arrival, hit or miss (RESULTS 148)."""
        accs, cap = self.topo.accelerators, self.min_node_cap_w
        need = min(
            gang * (self._ladder_w(kind, f, -1, cap) - accs[f].idle_w)
            for f in flavors or range(len(self.topo.flavors))
        )
        self._never_cache.setdefault(kind, {}).setdefault(gang, {})[flavors] = need
        return need

    def cap_moves(
        self, levels: dict[int, int], running: Mapping[int, Job], plan: CapPlan | None = None
    ) -> list[tuple[int, int]]:
        """A solve's level changes in the order both drivers make them: lowers first (they free
        watts), then raises, higher priorities first (a raise spends the ramp window), and
        within those in start order (the books' order), whatever order `levels` lists them in.
        `plan`: the plan `levels` is from; one of the kept classes is read class by class."""
        if plan is not None and plan.moved is not None:
            return kept_moves(self.jobs, self._classes, plan, running)
        jobs = self.jobs  # read once per job of a solve (hundreds), not through self
        # Each move decorated with its order where the scan finds it (the job's books read
        # once, no key call per move): start numbers are unique, so the job and level after
        # them never decide.
        moves = [
            (lv < jp.level, -running[j].priority, jp.seq, j, lv)
            for j, lv in levels.items()
            if (jp := jobs[j]).level != lv
        ]
        moves.sort()
        return [(j, lv) for _, _, _, j, lv in moves]

    def solve(
        self, running: Mapping[int, Job], speed: Mapping[tuple[str, int], float], t: float
    ) -> CapPlan:
        """Re-divide the budget at t among the booked jobs (`running`: their Job objects)."""
        self.solves += 1
        return self.solve_kept(running, speed, *self._budgets_left(t))

    def make_room_for(
        self,
        head: Job,
        running: Mapping[int, Job],
        speed: Mapping[tuple[str, int], float],
        t: float,
    ) -> CapPlan | None:
        """The shortage re-solve: a pending job short of watts as a member of a solve (on its
        first eligible flavor); None when it would not help (see scheduler.cap_solver.make_room)."""
        self.solves += 1
        if not self.jobs:
            return None
        f = (head.flavor_ids or (0,))[0]
        cj = self.head_cap_job(head, f, speed[(head.kind, f)], t)
        site_w, halls_w = self._budgets_left(t)
        return make_room_with(
            min(k[2] for k in self._classes),
            cj,
            LevelsOf(self.jobs),  # read for the few ids the check reaches, not ~589 in a dict
            self.ramp_headroom_it_w(t),
            lambda: self.solve_kept(running, speed, site_w, halls_w, cj),
        )

    def needs_solve(self, t: float) -> bool:
        """Is the running set over budget, or is anyone capped while watts are spare?"""
        # The budgets read once: the twin asks at every weather tick, and each read finds its
        # key again (the tick, the cap events).
        site_w, hb = self._budgets_left(t)
        inc_w = self.inc_total_w
        if inc_w > site_w:
            return True
        if any(w > b for w, b in zip(self.hall_inc_w, hb, strict=True)):
            return True
        if len(self.levels) == 1 or self.n_capped == 0:
            return False
        # Capped jobs are raised at once when a meaningful share of the budget is spare (1%),
        # and evened out periodically otherwise: a re-solve for a few watts costs more than it
        # returns.
        spare = site_w - inc_w
        return self._periodic_solve(t) or spare >= RAISE_SPARE_FRAC * site_w

    # ---- facility -----------------------------------------------------------------------------
    def it_w(self, state: ClusterState) -> float:
        """IT draw now: healthy nodes idle (failed nodes draw nothing) plus the jobs' increments.
        The idle base is summed again only when the counts it is summed from move (the same
        double: the same sum in the same order)."""
        up, nodes, total = state.up_gpus, state.up_nodes, state.total_nodes
        got = self._idle_memo
        if got is None or got[0] != up or got[1] != nodes or got[2] != total:
            got = self._idle_memo = (list(up), list(nodes), list(total), self._idle_base(state))
        return got[3] + self.actual_total_w

    def _idle_base(self, state: ClusterState) -> float:
        base = 0.0
        for f, a in enumerate(self.topo.accelerators):
            n = state.total_nodes[f]
            base += state.up_gpus[f] * a.idle_w + self.flavor_overhead_w[f] * (
                state.up_nodes[f] / n if n else 0.0
            )
        return base

    def facility_w(self, it_w: float, t: float) -> float:
        """The one facility model (power/cooling.py) at this moment's temperature: its slope
        and fixed watts kept while the temperature stays (CoolingModel.facility_w's doubles)."""
        temp = self.temp_c(t)
        got = self._facility_memo
        if (
            got is None
            or got[0] != temp
            or got[1] is not self.cooling
            or got[2] != self.nameplate_it_w
        ):
            c = self.cooling
            got = (temp, c, self.nameplate_it_w, *c.facility_terms(self.nameplate_it_w, temp))
            self._facility_memo = got
        return it_w * got[3] + got[4]


def window_headroom_w(steps: Iterable[tuple[float, float]], t: float, limit: float) -> float:
    """IT watts the site may still step up at `t` under `limit`: the limit less the steps of the
    last minute (`PowerBooks.window`, or the power page's copy of it)."""
    if limit == math.inf:
        return math.inf
    # A list, not a generator: summed in the same order, the same doubles, faster.
    cut = t - 60.0
    return max(limit - sum([w for ts, w in steps if cut < ts]), 0.0)


def window_clear_at(
    steps: Sequence[tuple[float, float]],
    t: float,
    limit_at: Callable[[float], float],
    need_w: float = math.inf,
) -> float:
    """`PowerBooks.ramp_clear_at` over a given window: one rule for the scheduler's wake-ups and
    the control plane's power page ("clears in"), which reads a copy of the books' window."""
    leaving = sorted({ts + 60.0 for ts, _ in steps if ts > t - 60.0})
    for x in (t, *leaving):
        limit = limit_at(x)
        room = window_headroom_w(steps, x, limit)
        if room >= need_w or room >= limit:
            return x
    return t  # not reached: from the last step's leaving on, the window is clear


def _static_frac(
    topo: Topology, cooling: CoolingModel, cap_mw: float | None, nameplate: float
) -> float:
    """The one per-GPU cap (fraction of TDP) at which every GPU busy fits the site cap at the
    design temperature: what an operator would set once and leave."""
    if cap_mw is None:
        return 1.0
    it = cooling.it_budget_w(cap_mw * 1e6, nameplate, cooling.design_temp_c)
    over = sum(topo.node_overhead_w)
    tdp = sum(a.tdp_w * g for a, g in zip(topo.accelerators, topo.flavor_gpus(), strict=True))
    return max(0.05, min(1.0, (it - over) / tdp))
