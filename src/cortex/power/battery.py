"""Grid draw under a ramp-rate limit with a battery buffer (Megapack-like units).

The site's load is what the scheduler makes it; the grid connection may only move by
`ramp_mw_per_min`. A battery covers the difference (load - grid): it discharges while the grid
catches up with a step up, and charges while the grid eases down after a step down. A gentle bias
brings its state of charge back toward the middle between steps. Where the battery is empty,
full or at its power limit, the grid takes the rest and the ramp limit is broken: the smallest
battery that never lets that happen is what `smallest_battery` finds.

Written by hand: a rate-limited tracker with a state-of-charge integrator is a few lines of
recurrence that no library provides in this form; numpy cannot vectorize the recurrence.
"""

# The dispatch loop writes min/max as comparisons on purpose (see dispatch): not min()/max().
# ruff: noqa: PLR1730

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from cortex.errors import InputError
from cortex.power.grid import grid_params

STEP_S = 10.0  # grid resolution: steps shorter than this are spread over it


@dataclass(frozen=True)
class BatterySpec:
    energy_mwh: float
    power_mw: float
    efficiency: float  # round trip, (0, 1]
    initial_soc: float = 0.5  # fraction of energy_mwh at the start, and the bias's target

    def __post_init__(self) -> None:
        src = "battery"
        if not self.energy_mwh > 0:
            raise InputError(src, "battery_mwh", f"must be positive, got {self.energy_mwh}")
        if not self.power_mw > 0:
            raise InputError(src, "battery_mw", f"must be positive, got {self.power_mw}")
        if not 0 < self.efficiency <= 1:
            raise InputError(
                src, "battery_efficiency", f"must be within (0, 1], got {self.efficiency}"
            )
        if not 0 <= self.initial_soc <= 1:
            raise InputError(src, "initial_soc", f"must be within [0, 1], got {self.initial_soc}")

    @classmethod
    def megapacks(cls, units: int) -> BatterySpec:
        """`units` Megapack units (data/battery_units.csv, shared with the swing tool)."""
        from cortex.power.swing import megapack

        unit = megapack()
        return cls(
            energy_mwh=units * unit.energy_mwh,
            power_mw=units * unit.power_mw,
            efficiency=unit.round_trip_efficiency,
        )


def resample(
    times_s: np.ndarray, values: np.ndarray, horizon_s: float, step_s: float
) -> np.ndarray:
    """Mean of a piecewise-constant series (values[i] holds from times_s[i]) over each step."""
    edges = np.arange(0.0, horizon_s + step_s / 2, step_s)
    if len(times_s) == 0:
        return np.zeros(len(edges) - 1)
    # Cumulative integral at each change point, then at each edge by interpolation (exact for
    # piecewise-constant data because the integral is piecewise linear between change points).
    t = np.append(np.asarray(times_s, float), horizon_s)
    v = np.asarray(values, float)
    cum = np.concatenate(([0.0], np.cumsum(v * np.diff(t))))
    at = np.interp(edges, t, cum, left=0.0)
    return np.diff(at) / step_s


@dataclass
class GridResult:
    step_s: float
    grid_mw: np.ndarray
    soc_mwh: np.ndarray  # after each step; empty without a battery
    max_ramp_mw_per_min: float
    violations: int  # steps where the grid had to move faster than the limit
    charged_mwh: float
    discharged_mwh: float
    losses_mwh: float


def max_ramp_mw_per_min(series_mw: np.ndarray, step_s: float) -> float:
    """Largest change over any one-minute window."""
    k = max(round(60.0 / step_s), 1)
    if len(series_mw) <= k:
        return 0.0
    return float(np.max(np.abs(series_mw[k:] - series_mw[:-k])))


def _full_step_bounds(eta: float, cap: float, h: float, p_max: float) -> tuple[float, float]:
    """The charges between which a step at full power can reach neither the empty nor the full
    battery: above the first, the discharge bound (soc * eta / h) is at least p_max, below the
    second the charge bound (-(cap - soc) / eta / h) at most -p_max, so the loops skip both
    bounds' three operations there and take the same branch. Each bound is monotone in the
    charge (IEEE rounding is), so checking it at the threshold itself, with the loop's own
    operations, holds it for every charge beyond; a threshold that fails its check (ratios
    where a step is lost in the charge's rounding) is dropped to always computing the bound."""
    low = 2.0 * p_max * h / eta
    if not low * eta / h >= p_max:
        low = math.inf
    high = cap - 2.0 * p_max * h
    if not -(cap - high) / eta / h <= -p_max:
        high = -math.inf
    return low, high


def dispatch(
    load_mw: np.ndarray,
    step_s: float,
    ramp_mw_per_min: float | None,
    battery: BatterySpec | None,
    debug: bool = False,
    stop_at_violation: bool = False,
    start: tuple[float, float] | None = None,
) -> GridResult:
    """Grid and battery per step for a load sampled every `step_s`. `stop_at_violation`: return
    at the first step that breaks the ramp limit (violations 1, the rest of the result is of
    the steps up to it): enough for a search that asks only whether a battery is big enough.
    `start`: (state of charge in MWh, grid MW) the previous step left, to carry a dispatch on
    step by step (the live control plane: control/live_battery.py); else the battery starts at
    its target charge and the grid at the first load."""
    n = len(load_mw)
    if battery is None or ramp_mw_per_min is None or n == 0:
        grid = np.asarray(load_mw, float).copy()
        return GridResult(step_s, grid, np.zeros(0), max_ramp_mw_per_min(grid, step_s), 0, 0, 0, 0)
    eta = math.sqrt(battery.efficiency)  # split the round-trip loss between charge and discharge
    cap = battery.energy_mwh
    target = battery.initial_soc * cap
    p_max = battery.power_mw
    h = step_s / 3600.0
    max_step = ramp_mw_per_min * step_s / 60.0
    g_params = grid_params()
    bias_max = g_params["battery_bias_fraction"] * p_max
    horizon_h = g_params["battery_recharge_horizon_s"] / 3600.0
    soc = target if start is None else start[0]
    soc0 = soc
    loads = np.asarray(load_mw, float)
    g = float(loads[0]) if start is None else start[1]
    powers_l: list[float] = []
    socs_l: list[float] = []
    flips: list[int] = []  # steps whose power's sign is not their branch's (see _books)
    violations = 0
    # Once per 10-second step (a month: 259,200): min/max/abs as comparisons, the same float
    # operations in the same order (min and max return their first argument on ties). The loop
    # keeps what the next step reads and each step's power; the grid and the energy sums are
    # made from the powers afterwards with the same operations array-wise (`_books`).
    low_bias = -bias_max
    tol = max_step + 1e-9
    neg_tol = -tol  # d < -tol is -d > tol: negation is exact
    neg_p_max = -p_max
    low_soc, high_soc = _full_step_bounds(eta, cap, h, p_max)
    # x / 1.0 is x, bit for bit: with the grid's one-hour horizon the division is skipped.
    unit_horizon = horizon_h == 1.0
    push_power, push_soc = powers_l.append, socs_l.append
    for load in loads.tolist():
        bias = target - soc
        if not unit_horizon:
            bias /= horizon_h
        if bias_max < bias:
            bias = bias_max
        if low_bias > bias:
            bias = low_bias
        want = load + bias
        lo = g - max_step
        if lo > want:
            want = lo
        hi = g + max_step
        if hi < want:
            want = hi
        b = load - want  # > 0: the battery supplies; < 0: it absorbs
        # 0.0, not 0: a float against a float is the interpreter's fast comparison.
        if b > 0.0:
            if p_max < b:
                b = p_max
            if soc < low_soc:
                most = soc * eta / h
                if most < b:
                    b = most
                    if b < 0.0:  # a charge a rounding left below empty: still a supply step
                        flips.append(len(powers_l))
            soc -= b / eta * h
        elif b < 0.0:
            if neg_p_max > b:
                b = neg_p_max
            if soc > high_soc:
                most = -(cap - soc) / eta / h
                if most > b:
                    b = most
                    if b > 0.0:  # likewise above full: still a charging step
                        flips.append(len(powers_l))
            soc -= b * eta * h
        push_power(b)
        push_soc(soc)
        g_real = load - b
        d = g_real - g
        if d > tol or d < neg_tol:
            violations += 1
            if stop_at_violation:
                return _books(loads, powers_l, socs_l, flips, step_s, eta, violations)
        g = g_real
        if debug and not -1e-9 <= soc <= cap + 1e-9:
            raise AssertionError(f"battery state of charge {soc} outside [0, {cap}]")
    r = _books(loads, powers_l, socs_l, flips, step_s, eta, violations)
    if debug:
        # Energy conservation: grid + battery out = load + battery in; stored change = in*eta -
        # out/eta, i.e. losses close the balance.
        charged, discharged, losses = r.charged_mwh, r.discharged_mwh, r.losses_mwh
        stored = soc - soc0
        balance = charged - discharged - losses - stored
        if abs(balance) > 1e-6 * max(1.0, charged + discharged):
            raise AssertionError(f"battery energy not conserved: residual {balance} MWh")
        supplied = float(np.sum(r.grid_mw) * h) + discharged
        used = float(np.sum(load_mw) * h) + charged
        if abs(supplied - used) > 1e-6 * max(1.0, used):
            raise AssertionError(f"site energy not conserved: {supplied} vs {used} MWh")
    return r


def _books(
    loads: np.ndarray,
    powers_l: list[float],
    socs_l: list[float],
    flips: list[int],
    step_s: float,
    eta: float,
    violations: int,
) -> GridResult:
    """The steps dispatched (`powers_l`: the battery's power each step) with the loop's own
    operations array-wise: the grid is the load less the power; supplying, out = b / eta * h
    from the charge, b * h delivered, the difference lost; absorbing, -b * h taken in, that
    times (1 - eta) lost; each sum adds its terms in step order (a step that moves nothing
    adds +0.0 to the losses: x + 0.0 is x but for -0.0, see `_in_order_sum`)."""
    h = step_s / 3600.0
    b = _doubles(powers_l)
    grid = loads[: len(b)] - b
    out, into = b > 0.0, b < 0.0
    if flips:
        # Supplying from a charge a rounding left a hair below empty (absorbing above full),
        # the energy bound turns the power's sign: the step keeps its branch's sums.
        out[flips], into[flips] = into[flips], out[flips]
    b_out = b[out]
    out_mwh = b_out * h
    in_mwh = -b[into] * h
    loss_mwh = np.zeros(len(b))
    loss_mwh[out] = b_out / eta * h - out_mwh
    loss_mwh[into] = in_mwh * (1 - eta)
    return GridResult(
        step_s,
        grid,
        _doubles(socs_l),
        max_ramp_mw_per_min(grid, step_s),
        violations,
        _in_order_sum(in_mwh),
        _in_order_sum(out_mwh),
        _in_order_sum(loss_mwh),
    )


def _doubles(xs: list[float]) -> np.ndarray:
    """Floats as a writable float64 array, the same doubles, packed by `struct` in one call:
    ~90 instructions an item (`np.array` looks at each item's type first: ~280)."""
    return np.frombuffer(bytearray(struct.pack(f"{len(xs)}d", *xs)), dtype=float)


def _in_order_sum(x: np.ndarray) -> float:
    """x[0] + x[1] + ... left to right, as a loop's `total += term` from 0.0 (np.sum adds
    pairwise). + 0.0: cumsum's last is -0.0 only where every term is (the loop's +0.0)."""
    return float(np.cumsum(x)[-1]) + 0.0 if len(x) else 0.0


def first_violation(
    load_mw: np.ndarray, step_s: float, ramp_mw_per_min: float, battery: BatterySpec
) -> int:
    """The first step at which `dispatch` (from its own start) breaks the ramp limit, or -1 when
    it never does: the search's question, answered by dispatch's recurrence for the state of
    charge and the grid alone (the same operations in the same order, so the same doubles and
    the same answer), without the energy sums and the per-step records that only the answer's
    report reads. The recurrence is written twice on purpose: it runs 259,200 steps per probe,
    and a flag tested inside `dispatch`'s loop would cost every probe what this saves (bench/
    RESULTS.md section 93); tests/power/test_battery_stop.py holds the two equal."""
    return probe(load_mw, step_s, ramp_mw_per_min, battery).violation


@dataclass(frozen=True)
class Probe:
    """What one probe of the search saw, up to its first violation (the whole series when none):
    that step (-1: none), the most the battery supplied and absorbed in a step (MW, both >= 0),
    and how far its state of charge went below and above its target (MWh, both >= 0)."""

    violation: int
    discharge_mw: float
    charge_mw: float
    below_mwh: float
    above_mwh: float


def probe(
    load_mw: np.ndarray, step_s: float, ramp_mw_per_min: float, battery: BatterySpec
) -> Probe:
    """`first_violation`'s answer and the extremes the search guesses the next size from (two
    comparisons a step, in the branches that move them: the state of charge falls only while
    the battery supplies and rises only while it absorbs)."""
    if len(load_mw) == 0:
        return Probe(-1, 0.0, 0.0, 0.0, 0.0)
    eta = math.sqrt(battery.efficiency)
    cap = battery.energy_mwh
    target = battery.initial_soc * cap
    p_max = battery.power_mw
    h = step_s / 3600.0
    max_step = ramp_mw_per_min * step_s / 60.0
    g_params = grid_params()
    bias_max = g_params["battery_bias_fraction"] * p_max
    horizon_h = g_params["battery_recharge_horizon_s"] / 3600.0
    soc = target
    g = float(load_mw[0])
    low_bias = -bias_max
    tol = max_step + 1e-9
    neg_tol = -tol  # d < -tol is -d > tol: negation is exact
    neg_p_max = -p_max
    low_soc, high_soc = _full_step_bounds(eta, cap, h, p_max)
    b_hi = b_lo = 0.0  # the most supplied, the most absorbed (negative)
    soc_lo = soc_hi = soc
    for i, load in enumerate(load_mw.tolist()):
        bias = (target - soc) / horizon_h
        if bias_max < bias:
            bias = bias_max
        if low_bias > bias:
            bias = low_bias
        want = load + bias
        lo = g - max_step
        if lo > want:
            want = lo
        hi = g + max_step
        if hi < want:
            want = hi
        b = load - want
        if b > 0:
            if p_max < b:
                b = p_max
            if soc < low_soc:
                most = soc * eta / h
                if most < b:
                    b = most
            soc -= b / eta * h
            if b > b_hi:
                b_hi = b
            if soc < soc_lo:
                soc_lo = soc
        elif b < 0:
            if neg_p_max > b:
                b = neg_p_max
            if soc > high_soc:
                most = -(cap - soc) / eta / h
                if most > b:
                    b = most
            soc -= b * eta * h
            if b < b_lo:
                b_lo = b
            if soc > soc_hi:
                soc_hi = soc
        g_real = load - b
        d = g_real - g
        if d > tol or d < neg_tol:
            return Probe(i, b_hi, -b_lo, target - soc_lo, soc_hi - target)
        g = g_real
    return Probe(-1, b_hi, -b_lo, target - soc_lo, soc_hi - target)


def unbounded(
    load_mw: np.ndarray, step_s: float, ramp_mw_per_min: float, efficiency: float
) -> Probe:
    """What `probe` records of a battery too large to saturate (no power, energy or bias limit
    reached), in the recurrence's real-number form, its quiet stretches jumped: the search's
    first guess, read in a few thousand steps instead of a probe's month.

    Where the ramp does not bind, the grid takes the load plus the bias and the battery pays
    the bias (`b` = its distance from the target over the horizon), so that distance shrinks
    by a constant factor a step and neither extreme moves past a stretch's first step. A step
    can bind only where the load moves by nearly the ramp's step or more, or right after a
    step that bound: those are stepped one by one, the stretches between jumped in closed
    form. A guess only (its rounding is not `probe`'s, ~1e-12 relative): the search checks it,
    and no figure of the report reads it."""
    n = len(load_mw)
    if n == 0:
        return Probe(-1, 0.0, 0.0, 0.0, 0.0)
    eta = math.sqrt(efficiency)
    h = step_s / 3600.0
    max_step = ramp_mw_per_min * step_s / 60.0
    horizon_h = grid_params()["battery_recharge_horizon_s"] / 3600.0
    out_rate, in_rate = h / eta / horizon_h, eta * h / horizon_h  # x's share paid a step
    near = 0.95 * max_step  # a load move beyond this may bind the ramp
    # A jumped step moves the grid by the load's move plus the bias's change, which is at most
    # (the distance before the step) x out_rate / horizon_h: jump only while that fits the
    # margin left below the ramp's step.
    x_most = (max_step - near) * horizon_h / out_rate * (1.0 - out_rate)
    at = load_mw.item  # a step's load as a float: a few thousand read, not a month's list
    binds = (np.flatnonzero(np.abs(np.diff(load_mw)) > near) + 1).tolist()
    binds.append(n)
    k = 0
    x = 0.0  # state of charge less the target, MWh
    g = float(at(0))
    b_hi = b_lo = x_lo = x_hi = 0.0
    i = 0
    while i < n:
        load = float(at(i))
        bias = -x / horizon_h
        want = load + bias
        bound = True
        if want < g - max_step:
            want = g - max_step
        elif want > g + max_step:
            want = g + max_step
        else:
            bound = False
        b = load - want
        if b > 0:
            x -= b / eta * h
            b_hi = max(b_hi, b)
            x_lo = min(x_lo, x)
        elif b < 0:
            x -= b * eta * h
            b_lo = min(b_lo, b)
            x_hi = max(x_hi, x)
        g = want
        i += 1
        if bound or abs(x) > x_most:
            continue
        while binds[k] < i:
            k += 1
        m = binds[k] - i  # steps i .. binds[k] - 1 do not bind
        if m > 0:
            keep = 1.0 - (out_rate if x > 0 else in_rate)
            x_before = x * keep ** (m - 1)  # before the stretch's last step
            g = float(at(i + m - 1)) - x_before / horizon_h
            x = x_before * keep
            i += m
    return Probe(-1, b_hi, -b_lo, -x_lo, x_hi)


def smallest_battery(
    load_mw: np.ndarray, step_s: float, ramp_mw_per_min: float, max_units: int = 4096
) -> tuple[int, GridResult | None]:
    """Fewest Megapack units that keep the grid within the ramp limit (-1: not even `max_units`
    does). More units never hurt (the dispatch is the same until a smaller battery saturates),
    so the answer is the one size that passes with the size below it failing, and any order of
    sizes tried that narrows (largest failing, smallest passing) to neighbours finds it; the
    order only sets the cost. Each size is asked only whether it breaks the limit (`probe`, up
    to the first step that does), and a size whose passing would make it the answer is
    dispatched whole at once, for the report (the same call as a dispatch afterwards).

    The order: a battery that never saturates dispatches alike at any size (the bias toward
    the target saturates at a fraction of the power limit), so the size that an unbounded
    battery's extremes need (`unbounded`: the most power supplied or absorbed in a step, how
    far the charge strays from the target) is the likely answer: it is dispatched whole, and
    the size below it is probed unless the guess's record shows it fails; a guess proven too
    many gives way to bisection, one proven too few to doubling from it, then bisection.
    `max_units` is asked first only where the guess reaches it (if it fails, none is enough:
    -1, and its own extremes guess again), else last, if the search narrows to it. Every probe
    but the answer runs most of a month here (answers fail late,
    85% in), so the count is what costs: 8 probes with doubling from 1 (1, 2, 4, 8, 16, 12, 10,
    9 for 10 units), 3 with `max_units` probed for the guess (bench/RESULTS.md section 97), 2
    (section 124), 1 now where the guess's record shows the size below fails (section 130)."""
    if dispatch(load_mw, step_s, None, None).max_ramp_mw_per_min <= ramp_mw_per_min + 1e-9:
        return 0, None
    unit = BatterySpec.megapacks(1)
    first = min(
        max(_units_for(unbounded(load_mw, step_s, ramp_mw_per_min, unit.efficiency)), 1),
        max_units,
    )
    if first == max_units:
        top = probe(load_mw, step_s, ramp_mw_per_min, BatterySpec.megapacks(max_units))
        if top.violation >= 0:
            return -1, None
        first = min(max(_units_for(top), 1), max_units)
    guess: int | None = first
    lo, hi = 0, max_units  # the largest size known to fail, the smallest passing (or max_units)
    best: GridResult | None = None  # hi's whole dispatch, once made
    grow = False  # a guess proven too few: double from it (as the search from 1 did), then bisect
    if 1 < first < hi:
        # The guess dispatched whole first (the report's call if it is the answer): where it
        # passes, its record alone may show that one unit fewer fails (`_fails_below`), and the
        # size below needs no month-long probe of its own.
        r = dispatch(
            load_mw, step_s, ramp_mw_per_min, BatterySpec.megapacks(first), stop_at_violation=True
        )
        if r.violations:
            lo = first
        else:
            hi, best = first, r
            if _fails_below(load_mw, step_s, ramp_mw_per_min, r, first - 1):
                lo = first - 1
    while hi - lo > 1:
        if guess is not None and lo < guess - 1:
            mid = guess - 1  # expected to fail
        elif guess is not None and lo == guess - 1 and guess < hi:
            mid = guess  # expected to pass: the answer
        else:
            if guess is not None:
                grow = lo >= guess
                guess = None
            mid = 2 * lo if grow and lo < 2 * lo < hi else (lo + hi) // 2
        whole: GridResult | None = None
        if mid == lo + 1:
            # If it passes it is the answer: dispatched whole (the report's call), not run again.
            whole = dispatch(
                load_mw, step_s, ramp_mw_per_min, BatterySpec.megapacks(mid), stop_at_violation=True
            )
            passes = whole.violations == 0
            if passes:
                best = whole
        else:
            seen = probe(load_mw, step_s, ramp_mw_per_min, BatterySpec.megapacks(mid))
            passes = seen.violation < 0
        if passes:
            hi = mid
            grow = False
            if whole is None:
                best = None  # hi passed a probe: dispatched whole at the end
            if guess is not None and mid < guess:
                guess = None  # too many (too few: the next round's tests above drop it)
        else:
            lo = mid
    if best is None:
        best = dispatch(
            load_mw, step_s, ramp_mw_per_min, BatterySpec.megapacks(hi), stop_at_violation=True
        )
        if best.violations:
            return -1, None  # narrowed to max_units, not asked before (any other hi passed)
    return hi, best


def _fails_below(
    load_mw: np.ndarray, step_s: float, ramp_mw_per_min: float, passed: GridResult, units: int
) -> bool:
    """Does a battery of `units` break the ramp limit, shown by the whole dispatch `passed` of a
    larger one that keeps it (True), or is a probe needed (False)?

    In real numbers the two dispatch alike while the smaller one reaches none of its limits
    (the bias, the power, the charge's bounds less a step of full power: the larger one's are
    wider, and both recur on the charge's distance from the target, the same fraction of
    each): up to the first step whose battery power exceeds the smaller one's limit. There
    the larger one's grid moved with the ramp (a power beyond the bias is one the ramp
    clamped), so the smaller one's grid moves by the ramp's step plus the excess: a
    violation. Both dispatches are the same real trajectory rounded differently, ~1e-16
    relative a step (the recurrence pulls the charge back to its target, so the rounding does
    not compound): every test holds by a margin of 1e-6 of the figures' scale, or False."""
    n = len(load_mw)
    small, big = BatterySpec.megapacks(units), BatterySpec.megapacks(units + 1)
    eta = math.sqrt(small.efficiency)
    h = step_s / 3600.0
    g_params = grid_params()
    horizon_h = g_params["battery_recharge_horizon_s"] / 3600.0
    p_mw = small.power_mw
    load = np.asarray(load_mw, float)
    margin = 1e-6 * (float(np.max(np.abs(load))) + big.power_mw + big.energy_mwh)
    power = load - passed.grid_mw  # the larger battery's power each step (> 0: supplied)
    # The charge's distance from the target at each step's start (the first: at the target).
    x = np.empty(n)
    x[0] = 0.0
    x[1:] = passed.soc_mwh[:-1] - big.initial_soc * big.energy_mwh
    target = small.initial_soc * small.energy_mwh
    full_step = p_mw * h / eta  # the most a step of full power moves the charge (eta <= 1)
    quiet = (
        (np.abs(x) / horizon_h <= g_params["battery_bias_fraction"] * p_mw - margin)
        & (x >= full_step - target + margin)
        & (x <= small.energy_mwh - target - full_step - margin)
    )
    over = np.flatnonzero((np.abs(power) > p_mw - margin) | ~quiet)
    if len(over) == 0:
        return False
    s = int(over[0])
    return bool(quiet[s]) and abs(float(power[s])) >= p_mw + margin


def _units_for(seen: Probe) -> int:
    """The Megapack units a battery worked as `seen` needs: its power for the largest step
    supplied or absorbed, its energy for the charge's excursions on either side of the target
    (the target is `initial_soc` of the energy). A guess (the bias differs below saturation,
    and losses are ignored); the search checks it."""
    from cortex.power.swing import megapack

    unit = megapack()
    soc0 = BatterySpec.megapacks(1).initial_soc
    need = max(seen.discharge_mw, seen.charge_mw) / unit.power_mw
    if soc0 > 0:
        need = max(need, seen.below_mwh / (soc0 * unit.energy_mwh))
    if soc0 < 1:
        need = max(need, seen.above_mwh / ((1 - soc0) * unit.energy_mwh))
    return math.ceil(need) if math.isfinite(need) else 1
