"""The twin's power mechanism: budgets, per-job draw and caps, weather, cap events, ramp windows.

Policy decisions (admit, which cap, whom to pause) are in cortex.scheduler.power; this module
only keeps the books the twin needs to hand them a PowerView and to apply their answers, and
records the facility load for the report (the battery runs over that record afterwards: it does
not feed back into scheduling).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from cortex.errors import InputError
from cortex.fleet.topology import Topology
from cortex.power.battery import BatterySpec
from cortex.power.cooling import CoolingModel
from cortex.power.curve import CapCurve
from cortex.power.grid import grid_params
from cortex.scheduler.power import (
    AdmitUncapped,
    CapToFit,
    ClassKey,
    PowerPolicy,
    PowerView,
)
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.state import ClusterState
from cortex.sim.power_jobs import JobPowerBooks, _JobPower
from cortex.workload.job import Job

POWER_POLICIES = ("none", "static", "admit", "cap", "full")
RAISE_SPARE_FRAC = 0.01
DEFAULT_LEVELS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)


@dataclass(frozen=True)
class CapEvent:
    """The site cap is `cap_mw` from `start_s` for `duration_s` (a heat wave, a lost feeder, a
    demand-response call)."""

    start_s: float
    duration_s: float
    cap_mw: float

    def __post_init__(self) -> None:
        if not self.cap_mw > 0:
            raise InputError("--cap-event", "cap_mw", f"must be positive, got {self.cap_mw}")
        if not self.duration_s > 0:
            raise InputError("--cap-event", "duration_h", "must be positive")
        if self.start_s < 0:
            raise InputError("--cap-event", "start_h", "must not be negative")


@dataclass(frozen=True)
class PowerConfig:
    """How the twin models and manages power. `policy`: none (model only), static (every GPU at
    `static_cap_frac` of TDP), admit (admission at uncapped draw, pauses on shortfall), cap
    (admission with per-job caps and the cap solver), full (cap + ramp limit with staggered
    starts; the report adds the battery)."""

    policy: str = "none"
    site_cap_mw: float | None = None  # None: the fleet file's
    static_cap_frac: float | None = None  # None: the cap at which every GPU busy fits the site cap
    levels: tuple[float, ...] = DEFAULT_LEVELS
    rack_cap_kw: float | None = None
    ramp_limit_mw_per_min: float | None = None  # None: grid.csv's for `full`, off otherwise
    battery: BatterySpec | None = None  # None with `full`: the report finds the smallest
    cap_events: tuple[CapEvent, ...] = ()
    heat_waves: tuple[tuple[float, float, float], ...] = ()  # (start_s, duration_s, delta_c)
    start_day_of_year: int = 182  # July 1: plan against the hottest months
    temperature_c: float | None = None  # a constant outdoor temperature instead of Austin's
    tick_s: float = 900.0
    # A job short of watts that outranks running work gets a re-solve at most this often.
    shortage_resolve_s: float = 1800.0
    curve_path: str | None = None

    def __post_init__(self) -> None:
        src = "--power-policy"
        if self.policy not in POWER_POLICIES:
            raise InputError(
                src, "power_policy", f"unknown {self.policy!r}; known: {POWER_POLICIES}"
            )
        if self.site_cap_mw is not None and not self.site_cap_mw > 0:
            raise InputError(
                "--site-cap-mw", "site_cap_mw", f"must be positive, got {self.site_cap_mw}"
            )
        if self.rack_cap_kw is not None and not self.rack_cap_kw > 0:
            raise InputError(
                "--rack-cap-kw", "rack_cap_kw", f"must be positive, got {self.rack_cap_kw}"
            )
        if self.ramp_limit_mw_per_min is not None and not self.ramp_limit_mw_per_min > 0:
            raise InputError(
                "--ramp-limit",
                "ramp_limit_mw_per_min",
                f"must be positive, got {self.ramp_limit_mw_per_min}",
            )
        if self.static_cap_frac is not None and not 0 < self.static_cap_frac <= 1:
            raise InputError("--static-cap", "static_cap_frac", "must be within (0, 1] of TDP")
        lv = self.levels
        if not lv or lv[0] != 1.0 or any(b >= a for a, b in itertools.pairwise(lv)):
            raise InputError("--cap-levels", "levels", "must start at 1.0 and strictly fall")
        if lv[-1] <= 0:
            raise InputError("--cap-levels", "levels", "must be positive")
        if not self.tick_s > 0:
            raise InputError("power", "tick_s", "must be positive")

    @property
    def ramp_mw_per_min(self) -> float | None:
        if self.ramp_limit_mw_per_min is not None:
            return self.ramp_limit_mw_per_min
        return grid_params()["ramp_limit_mw_per_min"] if self.policy == "full" else None


@dataclass
class PowerRuntime(JobPowerBooks):
    """Budgets and books. Built by the twin when a PowerConfig is given."""

    topo: Topology
    cfg: PowerConfig
    cooling: CoolingModel
    curve: CapCurve
    temps: np.ndarray  # outdoor temperature per tick (the max within it)
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
    jobs: dict[int, _JobPower] = field(default_factory=dict)
    inc_total_w: float = 0.0
    actual_total_w: float = 0.0
    hall_inc_w: list[float] = field(default_factory=list)
    hall_actual_w: list[float] = field(default_factory=list)
    target: dict[ClassKey, int] = field(default_factory=dict)
    window: deque = field(default_factory=deque)  # (t, IT W) of recent and scheduled steps
    cap_loss_gpu_s: float = 0.0
    series_t: list[float] = field(default_factory=list)
    series_w: list[float] = field(default_factory=list)
    series_cap_w: list[float] = field(default_factory=list)
    paused: int = 0
    solves: int = 0
    n_capped: int = 0  # running jobs below level 0
    min_node_cap_w: float = math.inf
    _ladders: dict = field(default_factory=dict)
    _budget_cache: dict = field(default_factory=dict)
    _per_cache: dict = field(default_factory=dict)
    _draw_cache: dict = field(default_factory=dict)
    _never_cache: dict = field(default_factory=dict)
    _idle_w: list[float] = field(default_factory=list)
    _tdp_w: list[float] = field(default_factory=list)
    staggered: int = 0

    @classmethod
    def build(cls, topo: Topology, cfg: PowerConfig, horizon_s: float) -> PowerRuntime:
        site = topo.spec.site
        cap_mw = cfg.site_cap_mw if cfg.site_cap_mw is not None else site.power_cap_mw
        cooling = CoolingModel.for_pue(site.pue)
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
        n_halls = len(topo.hall_names)
        hall_base = [0.0] * n_halls
        for n, h in enumerate(topo.node_hall):
            hall_base[h] += node_base[n]
        hall_limit = [
            hs.power_cap_mw * 1e6 if hs.power_cap_mw is not None else math.inf
            for hs in topo.spec.halls
        ]
        hall_cool = [
            hs.cooling_mw * 1e6 if hs.cooling_mw is not None else math.inf for hs in topo.spec.halls
        ]
        node_cap = [math.inf] * topo.n_nodes
        if cfg.rack_cap_kw is not None:
            # Static per-rack bound: every GPU of the rack busy at this cap stays under the
            # rack's budget, whatever else runs there (simple, safe, a little conservative).
            over: dict[int, float] = {}
            gpus: dict[int, int] = {}
            for n, r in enumerate(topo.node_rack):
                over[r] = over.get(r, 0.0) + topo.node_overhead_w[n]
                gpus[r] = gpus.get(r, 0) + gpn[topo.node_flavor[n]]
            per_rack = {r: (cfg.rack_cap_kw * 1e3 - over[r]) / gpus[r] for r in over}
            node_cap = [per_rack[r] for r in topo.node_rack]
            for n, f in enumerate(topo.node_flavor):
                floor_w = cfg.levels[-1] * accs[f].tdp_w
                if node_cap[n] < floor_w:
                    raise InputError(
                        "--rack-cap-kw",
                        "rack_cap_kw",
                        f"{cfg.rack_cap_kw:g} kW leaves {node_cap[n]:.0f} W per {accs[f].name} "
                        f"in rack {topo.node_rack[n]}, below the {floor_w:.0f} W floor cap",
                    )
        n_ticks = math.ceil(horizon_s / cfg.tick_s) + 1
        temps = _temperatures(cfg, n_ticks)
        levels = cfg.levels
        policy: PowerPolicy | None = None
        if cfg.policy == "static":
            frac = cfg.static_cap_frac
            if frac is None:
                frac = _static_frac(topo, cooling, cap_mw, nameplate)
            levels = (frac,)
        elif cfg.policy == "admit":
            levels = (1.0,)
            policy = AdmitUncapped()
        elif cfg.policy in ("cap", "full"):
            policy = CapToFit()
        if cfg.policy != "none" and cap_mw is None:
            raise InputError("--power-policy", "site.power_cap_mw", "the fleet has no site cap")
        rt = cls(
            topo=topo,
            cfg=cfg,
            cooling=cooling,
            curve=CapCurve.load(cfg.curve_path),
            temps=temps,
            site_cap_w=(cap_mw or math.inf) * 1e6,
            nameplate_it_w=nameplate,
            base_all_w=sum(node_base),
            hall_base_w=hall_base,
            hall_limit_w=hall_limit,
            hall_cooling_w=hall_cool,
            node_base_w=node_base,
            flavor_overhead_w=flavor_over,
            node_max_cap_w=node_cap,
            levels=levels,
            policy=policy,
        )
        rt.hall_inc_w = [0.0] * n_halls
        if cfg.policy != "none" and cap_mw is not None:
            # The site must at least hold its fleet idle on the hottest tick.
            idle = cooling.facility_w(rt.base_all_w, nameplate, float(temps.max()))
            caps = [("site_cap_mw", cap_mw)] + [("cap_mw", ev.cap_mw) for ev in cfg.cap_events]
            for what, mw in caps:
                if mw * 1e6 < idle:
                    raise InputError(
                        "--site-cap-mw" if what == "site_cap_mw" else "--cap-event",
                        what,
                        f"{mw:g} MW is below the idle fleet's {idle / 1e6:.3f} MW facility draw",
                    )
        rt.min_node_cap_w = min(node_cap)
        rt._idle_w = [a.idle_w for a in accs]
        rt._tdp_w = [a.tdp_w for a in accs]
        rt.hall_actual_w = [0.0] * n_halls
        return rt

    # ---- time-varying inputs ----------------------------------------------------------------
    def temp_c(self, t: float) -> float:
        return float(self.temps[min(int(t / self.cfg.tick_s), len(self.temps) - 1)])

    def cap_w(self, t: float) -> float:
        cap = self.site_cap_w
        if not self.cfg.cap_events:
            return cap
        for ev in self.cfg.cap_events:
            if ev.start_s <= t < ev.start_s + ev.duration_s:
                cap = min(cap, ev.cap_mw * 1e6)
        return cap

    def _budgets(self, t: float) -> tuple[float, list[float]]:
        """Site and hall IT budgets over idle; they change only at ticks and cap-event edges."""
        key = (min(int(t / self.cfg.tick_s), len(self.temps) - 1), self.cap_w(t))
        got = self._budget_cache.get(key)
        if got is None:
            if len(self._budget_cache) > 64:
                self._budget_cache.clear()
            it = self.cooling.it_budget_w(key[1], self.nameplate_it_w, self.temp_c(t))
            got = self._budget_cache[key] = (it - self.base_all_w, self._hall_budget_w(t))
        return got

    def site_budget_w(self, t: float) -> float:
        """IT watts over idle the site may add at time t."""
        return self._budgets(t)[0]

    def hall_budget_w(self, t: float) -> list[float]:
        return self._budgets(t)[1]

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
        mw = self.cfg.ramp_mw_per_min
        if mw is None:
            return math.inf
        return mw * 1e6 / self.cooling.slope(self.temp_c(t))

    def view(self, t: float, state: ClusterState) -> PowerView:
        hb = self.hall_budget_w(t)
        limit = self.ramp_limit_it_w(t)
        return PowerView(
            site_headroom_w=self.site_budget_w(t) - self.inc_total_w,
            hall_headroom_w=[b - w for b, w in zip(hb, self.hall_inc_w, strict=True)],
            levels=self.levels,
            floor=len(self.levels) - 1,
            draw_w=self.draw_w,
            idle_w=self._idle_w,
            tdp_w=self._tdp_w,
            node_hall=self.topo.node_hall,
            node_max_cap_w=self.node_max_cap_w,
            target=self.target,  # read-only to policies; the solver replaces it whole
            ramp_headroom_w=self.ramp_headroom_it_w(t),
            site_budget_w=self.site_budget_w(t),
            ramp_limit_w=limit,
            min_node_cap_w=self.min_node_cap_w,
            ladder_w=self._ladder_w,
            job_inc_w=self._inc_of,
        )

    def add_step(self, t: float, it_w: float) -> None:
        """An upward step at t counts against the ramp window."""
        self.window.append((t, it_w))
        while self.window and self.window[0][0] <= t - 120.0:
            self.window.popleft()

    def ramp_headroom_it_w(self, t: float) -> float:
        limit = self.ramp_limit_it_w(t)
        if limit == math.inf:
            return math.inf
        return max(limit - sum(w for ts, w in self.window if t - 60.0 < ts), 0.0)

    def ramp_clear_at(self, t: float) -> float:
        """When the oldest step still in the window leaves it."""
        recent = [ts for ts, _ in self.window if ts > t - 60.0]
        return min(recent) + 60.0 if recent else t

    def never_fits(self, job: Job, flavors: tuple[int, ...]) -> Reason | None:
        """A job whose floor draw exceeds the site budget on the coolest tick can never start."""
        if self.policy is None:
            return None
        best = (
            max(
                self.cooling.it_budget_w(
                    self.site_cap_w, self.nameplate_it_w, float(self.temps.min())
                ),
                0.0,
            )
            - self.base_all_w
        )
        gang = job.elastic_min or job.gpus
        key = (job.kind, gang, flavors)
        if key in self._never_cache:
            need = self._never_cache[key]
        else:
            need = self._never_cache[key] = min(
                self.ladder(job, f, gang, self.min_node_cap_w)[1][
                    -1 if self.policy.name != "admit" else 0
                ]
                for f in flavors
            )
        if need <= best:
            return None
        return Reason(Code.NEVER_FITS_POWER, need_mw=need / 1e6, most_mw=best / 1e6)

    def needs_solve(self, t: float) -> bool:
        """Is the running set over budget, or is anyone capped while watts are spare?"""
        if self.inc_total_w > self.site_budget_w(t):
            return True
        hb = self.hall_budget_w(t)
        if any(w > b for w, b in zip(self.hall_inc_w, hb, strict=True)):
            return True
        if len(self.levels) == 1 or self.n_capped == 0:
            return False
        # Capped jobs are raised at once when a meaningful share of the budget is spare (1%),
        # and caps are evened out hourly otherwise: a re-solve every tick for a few watts would
        # cost more simulation time than it returns.
        spare = self.site_budget_w(t) - self.inc_total_w
        hourly = round(t / self.cfg.tick_s) % max(round(3600.0 / self.cfg.tick_s), 1) == 0
        return hourly or spare >= RAISE_SPARE_FRAC * self.site_budget_w(t)

    # ---- facility ---------------------------------------------------------------------------
    def it_w(self, state: ClusterState) -> float:
        """IT draw now: healthy nodes idle (failed nodes draw nothing) plus the jobs' increments."""
        base = 0.0
        for f, a in enumerate(self.topo.accelerators):
            n = state.total_nodes[f]
            base += state.up_gpus[f] * a.idle_w + self.flavor_overhead_w[f] * (
                state.up_nodes[f] / n if n else 0.0
            )
        return base + self.actual_total_w

    def facility_w(self, it_w: float, t: float) -> float:
        return self.cooling.facility_w(it_w, self.nameplate_it_w, self.temp_c(t))

    def record(self, t: float, facility_w: float) -> None:
        cap = self.cap_w(t)
        if self.series_t and self.series_t[-1] == t:
            self.series_w[-1] = facility_w
            self.series_cap_w[-1] = cap
        elif not self.series_w or self.series_w[-1] != facility_w or self.series_cap_w[-1] != cap:
            self.series_t.append(t)
            self.series_w.append(facility_w)
            self.series_cap_w.append(cap)

    def event_times(self, horizon_s: float) -> list[float]:
        """Instants at which budgets change: weather ticks and cap-event edges."""
        ticks = np.arange(self.cfg.tick_s, horizon_s, self.cfg.tick_s).tolist()
        edges = []
        for ev in self.cfg.cap_events:
            edges += [ev.start_s, ev.start_s + ev.duration_s]
        return sorted(set(ticks) | {e for e in edges if 0 < e < horizon_s})


def _temperatures(cfg: PowerConfig, n_ticks: int) -> np.ndarray:
    if cfg.temperature_c is not None:
        return np.full(n_ticks, float(cfg.temperature_c))
    from cortex.power.climate import Climate

    climate = Climate.load()
    for start_s, duration_s, delta_c in cfg.heat_waves:
        climate = climate.heat_wave(start_s, duration_s, delta_c)
    # The max within each tick: budgets then hold for the whole tick.
    sub = 3
    t = (np.arange(n_ticks * sub) + 0.5) * (cfg.tick_s / sub)
    temps = np.asarray(climate.temperature_c(t, start_day_of_year=cfg.start_day_of_year), float)
    return temps.reshape(n_ticks, sub).max(axis=1)


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
