"""The twin's power inputs: the power options (PowerConfig, cap events), outdoor temperature per
tick, and the record of facility power for the report (the battery runs over that record
afterwards: it does not feed back into scheduling).

Budgets, cap ladders, per-job watts and the ramp window are the books both drivers share
(cortex.drive.power_books); policy decisions (admit, which cap, whom to pause) are in
cortex.scheduler.power, and which policy a name means in cortex.scheduler.registry.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from operator import itemgetter, sub
from typing import ClassVar

import numpy as np

from cortex.drive.power_books import DEFAULT_LEVELS, PowerBooks, window_headroom_w
from cortex.errors import InputError
from cortex.fleet.topology import Topology
from cortex.power.battery import BatterySpec
from cortex.power.grid import grid_params
from cortex.scheduler.power import PowerView
from cortex.scheduler.registry import POWER_PROFILES, power_profile

POWER_POLICIES = tuple(POWER_PROFILES)
# Outdoor air temperatures the cooling model is asked about: the range the control plane takes
# (`cortex serve --outdoor-temp-c`, PUT /v1/power: control/loop_power.py), so that the two
# drivers agree. Far outside, its linear laws turn nonsense into numbers (at 1e300 C a
# productive utilization of 8,251%; NaN reached the JSON report).
TEMP_RANGE_C = (-60.0, 70.0)
_STEP_T, _STEP_W = itemgetter(0), itemgetter(1)  # a ramp window step's (time, IT watts)
_INF = math.inf


def _tick_start_s(i: int, tick_s: float) -> float:
    """The least instant t with int(t / tick_s) >= i: where tick i begins as `_tick` reads it
    (the quotient, correctly rounded, and int() are both monotone in t, so the instants of one
    tick are those from its start up to the next tick's). int() truncates toward zero: tick 0
    spans (-tick_s, tick_s). A few ulps from i * tick_s, found by stepping."""
    t = (i - 1 if i <= 0 else i) * tick_s
    while int(t / tick_s) >= i:
        t = math.nextafter(t, -_INF)
    while int(t / tick_s) < i:
        t = math.nextafter(t, _INF)
    return t


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
        if not (math.isfinite(self.start_s) and self.start_s >= 0):  # NaN: never took place
            raise InputError("--cap-event", "start_h", f"must be >= 0, got {self.start_s / 3600:g}")


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
        lo, hi = TEMP_RANGE_C
        if self.temperature_c is not None and not lo <= self.temperature_c <= hi:
            raise InputError(
                "--temperature-c",
                "temperature_c",
                f"must be within [{lo:g}, {hi:g}] C, got {self.temperature_c:g}",
            )

    @property
    def ramp_mw_per_min(self) -> float | None:
        if self.ramp_limit_mw_per_min is not None:
            return self.ramp_limit_mw_per_min
        ramp = power_profile(self.policy).ramp
        return grid_params()["ramp_limit_mw_per_min"] if ramp else None


@dataclass(kw_only=True)
class PowerRuntime(PowerBooks):
    """The shared books (drive/power_books.py) plus the twin's time-varying inputs: outdoor
    temperature per tick, cap events, and the record of facility power for the report."""

    cfg: PowerConfig
    temps: np.ndarray  # outdoor temperature per tick (the max within it)
    series_t: list[float] = field(default_factory=list)
    series_w: list[float] = field(default_factory=list)
    series_cap_w: list[float] = field(default_factory=list)
    # (the temps array and config they were taken of, temps as Python floats, the tick): read at
    # every instant the fleet's draw changes, where a numpy element read costs several times a
    # list's (the same values)
    _temps_at: tuple[np.ndarray, PowerConfig, list[float], float] | None = field(
        default_factory=lambda: None, init=False, repr=False
    )
    # (the temps array it was taken of, its minimum): never_fits reads it on every arrival
    # (a factory, not a default: compiled with mypyc, an init=False default is never set)
    _coolest: tuple[np.ndarray, float] | None = field(
        default_factory=lambda: None, init=False, repr=False
    )
    # (the temps array and ramp rate it was taken of, the ramp limit in IT W per tick): read at
    # every cycle's view and every start
    _ramp_ticks: tuple[np.ndarray, float, list[float]] | None = field(
        default_factory=lambda: None, init=False, repr=False
    )
    # (the first and past-the-last instant of a tick, the temps, ramp rate and config it was
    # read from, the tick's ramp limit): ramp_limit_it_w's
    _ramp_span: tuple | None = field(default_factory=lambda: None, init=False, repr=False)
    # pass_view's inputs for one tick, read from the books when the tick starts (None: not
    # yet): (the first and the past-the-last instant of the tick, the temps, site cap and config
    # they were read from, site budget, hall budgets, ramp limit, whether the hall budgets are
    # four, then the view fields that are the books' own and never change during a run: the
    # ladder, the books' methods, the fleet's idle, TDP, halls and rack caps)
    _pass_memo: tuple | None = field(default_factory=lambda: None, init=False, repr=False)
    # The books' own view fields, taken once (None: not yet)
    _pass_const: tuple | None = field(default_factory=lambda: None, init=False, repr=False)
    # The last view pass_view built whole: (the memo and target it was built from, the view);
    # None: none yet
    _pass_kept: tuple | None = field(default_factory=lambda: None, init=False, repr=False)

    # The twin reads the ramp window only at its clock, which never goes back, and a step counts
    # only while it is under a minute old (window_headroom_w, window_clear_at): one a minute old
    # at a decision is never read again. Dropped then, not a minute later: every pass sums the
    # window (PowerRuntime.pass_view), and half of a 120 s window is such steps.
    WINDOW_KEEP_S: ClassVar[float] = 60.0

    @classmethod
    def build(cls, topo: Topology, cfg: PowerConfig, horizon_s: float) -> PowerRuntime:
        cap_mw = cfg.site_cap_mw if cfg.site_cap_mw is not None else topo.spec.site.power_cap_mw
        profile = power_profile(cfg.policy)
        if profile.needs_site_cap and cap_mw is None:
            raise InputError("--power-policy", "site.power_cap_mw", "the fleet has no site cap")
        args = cls.fleet_args(
            topo,
            cap_mw=cap_mw,
            profile=profile,
            levels=cfg.levels,
            static_frac=cfg.static_cap_frac,
            rack_cap_kw=cfg.rack_cap_kw,
            curve_path=cfg.curve_path,
        )
        temps = _temperatures(cfg, math.ceil(horizon_s / cfg.tick_s) + 1)
        rt = cls(cfg=cfg, temps=temps, ramp_mw_per_min=cfg.ramp_mw_per_min, **args)
        if profile.needs_site_cap and cap_mw is not None:
            # The site must at least hold its fleet idle on the hottest tick.
            idle = rt.idle_facility_w()
            caps = [("site_cap_mw", cap_mw)] + [("cap_mw", ev.cap_mw) for ev in cfg.cap_events]
            for what, mw in caps:
                if mw * 1e6 < idle:
                    raise InputError(
                        "--site-cap-mw" if what == "site_cap_mw" else "--cap-event",
                        what,
                        f"{mw:g} MW is below the idle fleet's {idle / 1e6:.3f} MW facility draw",
                    )
        return rt

    # ---- time-varying inputs ----------------------------------------------------------------
    def _tick(self, t: float) -> int:
        return min(int(t / self.cfg.tick_s), len(self.temps) - 1)

    def temp_c(self, t: float) -> float:
        got = self._temps_at
        if got is None or got[0] is not self.temps or got[1] is not self.cfg:
            got = self._temps_at = (self.temps, self.cfg, self.temps.tolist(), self.cfg.tick_s)
        temps = got[2]
        i = int(t / got[3])
        return temps[i] if i < len(temps) else temps[-1]  # the last tick's past the horizon

    def ramp_limit_it_w(self, t: float) -> float:
        mw = self.ramp_mw_per_min
        if mw is None:
            return _INF
        # Read at every start (96k a month): the tick's limit with the instants the tick spans
        # (_tick_start_s), checked by two comparisons where the tick's index costs a division
        # and a call of int (RESULTS section 148)
        got = self._ramp_span
        if (
            got is not None
            and got[0] <= t < got[1]
            and got[2] is self.temps
            and got[3] == mw
            and got[4] is self.cfg
        ):
            return got[5]
        return self._ramp_limit_at(t, mw)

    def _ramp_limit_at(self, t: float, mw: float) -> float:
        """ramp_limit_it_w's answer read from the limits of every tick, and the tick kept with
        its span for the instants that follow (not for a tick before the first)."""
        got = self._ramp_ticks
        if got is None or got[0] is not self.temps or got[1] != mw:
            # The books' formula at each tick's temperature: the same doubles, computed once.
            slope = self.cooling.slope
            limits = [mw * 1e6 / slope(temp) for temp in self.temps.tolist()]
            got = self._ramp_ticks = (self.temps, mw, limits)
        limits = got[2]
        tick_s = self.cfg.tick_s
        i = int(t / tick_s)
        last = len(limits) - 1
        limit = limits[i] if i <= last else limits[-1]  # the last tick's past the horizon
        if i >= 0:
            lo = _tick_start_s(min(i, last), tick_s)
            hi = _tick_start_s(i + 1, tick_s) if i < last else _INF
            self._ramp_span = (lo, hi, self.temps, mw, self.cfg, limit)
        return limit

    def pass_view(self, t: float) -> PowerView:
        """The view for one of the twin's scheduling passes: what `view(t)` builds, built with
        less work. The twin builds one per pass (114k in a month, ~14k instructions each before
        RESULTS section 135). 12 of its 18 fields are the books' own and never change during a
        run (the ladder, the books' methods, the fleet's idle, TDP, halls and rack caps: taken
        once), and the budgets and ramp limit change only with the tick (the weather), the site
        cap, a cap event or what a driver reserves: `_pass_inputs` reads them once per tick,
        with the instants the tick spans, when there are no cap events and nothing is reserved
        (as in the twin). A pass within the tick then checks its instant against the span (two
        comparisons, where the tick's index costs a division, a call and two more) and reads
        every input from it. Within the tick, with the same solver target, the view returned
        is the last pass's with its three headroom fields set again (RESULTS section 143): a
        view is valid until the next call."""
        memo = self._pass_memo
        if (
            memo is None
            or not memo[0] <= t < memo[1]
            or memo[2] is not self.temps
            or memo[3] != self.site_cap_w
            or memo[4] is not self.cfg
            or self.reserved_w
            or self.reserved_hall_w
        ):
            memo = self._pass_inputs(t)
        site_w = memo[5]
        hb = memo[6]
        limit = memo[7]
        # window_headroom_w(self.window, t, limit) with less work. The steps a minute old at the
        # front of the window are dropped first: the twin reads the window only at its clock,
        # which never goes back, so they never count again (add_step's rule, WINDOW_KEEP_S,
        # applied at the pass). Where every step left counts (most passes: only a staggered
        # start's later waves stand ahead of older steps, and books keeping steps longer leave
        # older ones at the front) the steps are summed in one loop as sum() sums them: from its
        # int 0, as 0.0 + a, then + b, ... (the same steps in the same order: the same double;
        # an empty window: limit less 0.0, the same double as less the int 0); else
        # window_headroom_w sums the counted ones. One loop costs less than min() and sum() over
        # two maps (~1.3k instructions less a pass for two steps). max(x, 0.0) is written as a
        # comparison: x unless 0.0 is greater, so a -0.0 or a NaN stays (the same double).
        if limit == _INF:
            ramp_w = limit
        else:
            window = self.window
            keep_cut = t - self.WINDOW_KEEP_S
            while window and window[0][0] <= keep_cut:
                window.popleft()
            cut = t - 60.0
            got = 0.0
            for ts, w in window:
                if not cut < ts:  # window_headroom_w's test, NaN included: not counted
                    ramp_w = window_headroom_w(window, t, limit)
                    break
                got += w
            else:
                ramp_w = limit - got
                if ramp_w < 0.0:  # noqa: PLR1730 (max without the call)
                    ramp_w = 0.0
        # The halls' headroom: the budgets less the books' increments, hall by hall (the same
        # subtractions as map's). Four halls (the cortex-2024 and colossus-memphis sites) are
        # unpacked, ~1.7k instructions a pass less than map's iterators, the budgets' count
        # known from the memo and the increments' by their unpacking (two len() calls cost
        # ~0.5k a pass: RESULTS section 148); one hall (four of the presets) read by index; any
        # other count, and increments out of step with the budgets, go through map.
        hi = self.hall_inc_w
        if memo[8]:  # four halls' budgets
            try:
                i0, i1, i2, i3 = hi
            except ValueError:  # map's own answer for books out of step
                hall_w = [*map(sub, hb, hi)]
            else:
                b0, b1, b2, b3 = hb
                hall_w = [b0 - i0, b1 - i1, b2 - i2, b3 - i3]
        elif len(hi) == len(hb) == 1:
            hall_w = [hb[0] - hi[0]]
        else:
            hall_w = [*map(sub, hb, hi)]  # a display: no call to list
        # The view of the last pass, built from the same inputs and target: its three headroom
        # fields set again (every other field is a function of the two), not a view built.
        # The pass that read it is over: a pass's Statement copies the headroom into its own
        # Watts, and nothing keeps a view past its pass.
        target = self.target
        kept = self._pass_kept
        if kept is not None and kept[0] is memo and kept[1] is target:
            view: PowerView = kept[2]
            view.site_headroom_w = site_w - self.inc_total_w
            view.hall_headroom_w = hall_w
            view.ramp_headroom_w = ramp_w
            return view
        (
            levels, floor, draw, idle, tdp, halls, node_cap, min_cap, ladder, job_inc, fl, shp,
        ) = memo[9:]  # fmt: skip
        # Positional, in PowerView's field order (tests/power/test_pass_view.py holds every
        # field to view's): a call with keywords costs a quarter more.
        view = PowerView(
            site_w - self.inc_total_w,
            hall_w,
            levels,
            floor,
            draw,
            idle,
            tdp,
            halls,
            node_cap,
            target,
            ramp_w,
            min_cap,
            ladder,
            limit,
            job_inc,
            site_w,
            fl,
            shp,
        )
        self._pass_kept = (memo, target, view)  # the memo and target held: no id reused
        return view

    def _pass_inputs(self, t: float) -> tuple:
        """pass_view's inputs at `t` (its memo's layout), kept for the rest of the tick when
        nothing makes them vary within it (no cap events, nothing reserved)."""
        const = self._pass_const
        if const is None:
            v = self.view(t)
            const = self._pass_const = (
                v.levels, v.floor, v.draw_w, v.idle_w, v.tdp_w, v.node_hall, v.node_max_cap_w,
                v.min_node_cap_w, v.ladder_w, v.job_inc_w, v.floor_gpu_w, v.shape_of,
            )  # fmt: skip
        cfg = self.cfg
        temps = self.temps
        tick_s = cfg.tick_s
        kept = not (cfg.cap_events or self.reserved_w or self.reserved_hall_w)
        start = end = math.nan  # a span no instant is in: inputs not kept
        if kept:
            last = len(temps) - 1
            i = int(t / tick_s)  # _tick(t), which the budgets and the ramp limit read
            if i >= last:
                i, end = last, _INF  # the last tick's past the horizon
            else:
                end = _tick_start_s(i + 1, tick_s)
            start = _tick_start_s(i, tick_s)
        site_w, hb = self._budgets(t)
        site_w -= self.reserved_w
        if self.reserved_hall_w:
            hb = [w - self.reserved_hall_w.get(h, 0.0) for h, w in enumerate(hb)]
        limit = self.ramp_limit_it_w(t)
        memo = (start, end, temps, self.site_cap_w, cfg, site_w, hb, limit, len(hb) == 4, *const)
        self._pass_memo = memo if kept else None
        return memo

    def coolest_temp_c(self) -> float:
        got = self._coolest
        if got is None or got[0] is not self.temps:
            got = self._coolest = (self.temps, float(self.temps.min()))
        return got[1]

    def hottest_temp_c(self) -> float:
        return float(self.temps.max())

    def cap_w(self, t: float) -> float:
        cap = self.site_cap_w
        if not self.cfg.cap_events:
            return cap
        for ev in self.cfg.cap_events:
            if ev.start_s <= t < ev.start_s + ev.duration_s:
                cap = min(cap, ev.cap_mw * 1e6)
        return cap

    def _budget_key(self, t: float) -> tuple:
        return (self._tick(t), self.cap_w(t))

    def _periodic_solve(self, t: float) -> bool:
        # Caps are evened out hourly: a re-solve every tick for a few watts would cost more
        # simulation time than it returns.
        return round(t / self.cfg.tick_s) % max(round(3600.0 / self.cfg.tick_s), 1) == 0

    # ---- the record ---------------------------------------------------------------------------
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
    lo, hi = TEMP_RANGE_C
    if cfg.heat_waves and not lo <= temps.min() <= temps.max() <= hi:
        worst = temps.max() if temps.max() > hi else temps.min()
        raise InputError(
            "--heat-wave",
            "delta_c",
            f"takes the outdoor temperature to {worst:.4g} C, outside [{lo:g}, {hi:g}] C",
        )
    return temps.reshape(n_ticks, sub).max(axis=1)
