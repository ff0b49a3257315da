"""A small row-wise model builder over HiGHS (highspy). Named variable families keep the model
code readable; the matrix goes to HiGHS in one `passModel` call (no per-row API overhead)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import highspy
import numpy as np

INF = float("inf")


@dataclass
class Solution:
    status: str
    x: np.ndarray
    objective: float
    mip_gap: float
    bound: float  # a proven bound (NaN: none; the LP's own objective when relaxed)
    wall_s: float
    optimal: bool
    feasible: bool = True  # HiGHS holds a feasible solution (x is one)


@cache
def _silence_banner() -> None:
    """HiGHS's C++ core prints a banner on the first instance, before any option applies;
    swallow it at the file-descriptor level so `--json -` and tables stay clean."""
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _round_sequences(model: Model, x: np.ndarray, todo: set[int]) -> dict[int, float]:
    """Round columns by their running total within the chunk (capacity up, purchases down):
    0.2 of a hall a month for five months is one hall, not five, and fractions of blocks
    spread over months neither vanish nor add up to an overspend."""
    out: dict[int, float] = {}
    for seq in model.sequences:
        part = [j for j in seq if j in todo]
        if not part:
            continue
        total = np.cumsum(x[part])
        up = model.round_up[part[0]]
        cum = np.ceil(total - 1e-6) if up else np.floor(total + 1e-6)
        for j, v in zip(part, np.diff(np.concatenate([[0.0], cum])), strict=True):
            out[j] = float(v)
    return out


def _relax_and_fix(
    model: Model, time_limit_s: float, chunk: int = 6
) -> tuple[np.ndarray, float] | None:
    """A full start for branch and bound, by relax-and-fix over time (the classic heuristic
    for lot-sizing): solve the LP relaxation, round the integer columns of the first `chunk`
    months (purchases to nearest, capacity up), fix them, re-solve, move on; the later months'
    LP makes up for each rounding. The elastic slacks keep every step feasible, and rounding
    respects the caps rows (turbine permits). One HiGHS instance throughout: each re-solve
    starts from the last basis. Why by hand: HiGHS's root cut loop can sit on a poor incumbent
    for minutes here (a tight power target with many equivalent mixes), while this start lands
    within a block or a hall of the LP bound in a few LP solves."""
    t0 = time.perf_counter()
    lb, ub = list(model.lb), list(model.ub)
    ints = [j for j in range(model.n_vars) if model.integer[j]]
    last = max((model.month[j] for j in ints), default=-1)
    h = model.highs(relax=True, time_limit_s=time_limit_s)

    def run() -> np.ndarray | None:
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            # From the last basis, a re-solve can end "Unknown" (seen on the 60-month bench
            # once blocks bought had to stay); from scratch it solves.
            h.clearSolver()
            h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return np.asarray(h.getSolution().col_value, dtype=float)

    def fix(values: dict[int, float]) -> None:
        idx = np.asarray(list(values), dtype=np.int32)
        v = np.asarray(list(values.values()), dtype=float)
        for j, x in values.items():
            lb[j] = ub[j] = x
        h.changeColsBounds(int(idx.size), idx, v, v)

    x0 = run()
    if x0 is None:
        return None
    lp_bound = float(h.getInfo().objective_function_value)
    for group in model.pick_one:
        scores = [sum(a * x0[i] for i, a in terms.items()) for _, terms in group]
        best = int(np.argmax(scores))
        fix({j: float(n == best) for n, (j, _) in enumerate(group)})
    # Capacity first, over the whole horizon (running totals rounded up): the purchases,
    # still free, then fit the cash that the rounding took.
    capacity = {j for seq in model.sequences for j in seq if model.round_up[j]}
    chunks: list[set[int] | tuple[int, int]] = [capacity]
    chunks += [(c0, c0 + chunk) for c0 in range(0, last + 1, chunk)]
    for part in chunks:
        x = run()
        if x is None or time.perf_counter() - t0 > 5 * time_limit_s:
            return None
        todo = [
            j
            for j in ints
            if lb[j] != ub[j]
            and (
                j in part
                if isinstance(part, set)
                else part[0] <= model.month[j] < part[1] or model.month[j] < 0
            )
        ]
        rounded = _round_sequences(model, x, set(todo))
        vals: dict[int, float] = {}
        for j in todo:
            if j in rounded:
                v = rounded[j]
            else:
                v = np.ceil(x[j] - 1e-6) if model.round_up[j] else np.floor(x[j] + 0.5)
            vals[j] = lb[j] = ub[j] = float(min(max(v, model.lb[j]), model.ub[j]))
        for terms, cap in model.caps:  # undo round-ups, latest first, until the cap holds
            for j in sorted(terms, reverse=True):
                while (
                    j in vals
                    and vals[j] > model.lb[j]
                    and sum(a * lb[i] for i, a in terms.items() if lb[i] == ub[i]) > cap + 1e-9
                ):
                    vals[j] = lb[j] = ub[j] = vals[j] - 1.0
        fix(vals)
    x = run()
    return None if x is None else (x, lp_bound)


def _fix_and_optimize(
    model: Model,
    x: np.ndarray,
    deadline: float,
    window: int = 6,
    abs_gap: float = 0.0,
    changed_from: np.ndarray | None = None,
    done: Callable[[np.ndarray], bool] | None = None,
) -> np.ndarray:
    """Improve a start window by window: free the integer columns of `window` months, keep the
    rest at the start's values, solve that small MIP from the start, keep what it finds. The
    rounding of relax-and-fix costs most where cash or power is tight; a window MIP repairs
    it locally, where the full branch and bound stalls. `abs_gap`: each window's absolute gap;
    `changed_from`: only the windows whose integer columns differ from these values; `done`:
    stop once the plan so far passes it (at its bound within the gap asked: the windows after
    one that met a level's targets each re-solved a MIP that could gain nothing, ~0.3 s a
    level on the example)."""
    ints = np.flatnonzero(np.asarray(model.integer))
    months = np.asarray(model.month)[ints]
    last = int(months.max()) if months.size else -1
    best = x
    for w0 in range(0, last + 1, window):
        left = deadline - time.perf_counter()
        if left <= 0.2:
            break
        if done is not None and done(best):
            break  # no window can gain more than the gap asked: the plan is at the bound
        inside = ints[(months >= w0) & (months < w0 + window)]
        if changed_from is not None and np.allclose(x[inside], changed_from[inside]):
            continue
        frozen = ints[(months < w0) | (months >= w0 + window)]
        h = model.highs(False, min(left, 2.0), 0.001, abs_gap)
        vals = np.round(best[frozen])
        h.changeColsBounds(int(frozen.size), frozen.astype(np.int32), vals, vals)
        h.setSolution(model.n_vars, np.arange(model.n_vars, dtype=np.int32), best)
        h.run()
        sol = np.asarray(h.getSolution().col_value, dtype=float)
        if sol.size == model.n_vars and h.getInfo().primal_solution_status == 2:
            better = np.dot(model.cost, sol) > np.dot(model.cost, best) + 1e-6
            if better == model.maximize:
                best = sol
    return best


def _tighter(maximize: bool, a: float, b: float) -> float:
    """The tighter of two proven bounds (NaN: none); NaN when neither is one."""
    both = [v for v in (a, b) if math.isfinite(v)]
    if not both:
        return math.nan
    return min(both) if maximize else max(both)


def _within(model: Model, x: np.ndarray, bound: float, abs_gap: float) -> bool:
    """Is the plan x within the absolute gap of the bound (in objective units)?"""
    return abs(bound - float(np.dot(model.cost, x))) <= max(abs_gap, 1e-9)


class Model:
    """Variables with bounds, costs and integrality; rows lb <= a.x <= ub."""

    def __init__(self, maximize: bool) -> None:
        self.maximize = maximize
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.cost: list[float] = []
        self.integer: list[bool] = []
        self.round_up: list[bool] = []
        # Binaries of which the warm start sets one: the one whose score terms are largest in
        # the LP relaxation (the flagship fabric the LP builds most of).
        self.pick_one: list[list[tuple[int, dict[int, float]]]] = []
        self.caps: list[tuple[dict[int, float], float]] = []  # rows rounding up must respect
        self.month: list[int] = []  # the month a column decides (-1: none), for relax-and-fix
        self.sequences: list[list[int]] = []  # capacity columns in time order (a site's halls)
        self.names: list[str] = []
        self.row_lb: list[float] = []
        self.row_ub: list[float] = []
        self.row_names: list[str] = []
        self._start = [0]
        self._index: list[int] = []
        self._value: list[float] = []
        # The matrix and integrality as HiGHS holds them, kept while no row or column is added:
        # converting them took ~12 ms of each instance's ~15 ms (each fix-and-optimize window
        # and level makes one), and cost, bounds and row bounds are set fresh on every call.
        self._lp: (
            tuple[tuple[int, int, int], highspy.HighsLp, list[highspy.HighsVarType]] | None
        ) = None

    def var(
        self,
        name: str,
        lb: float = 0.0,
        ub: float = INF,
        cost: float = 0.0,
        integer: bool = False,
        round_up: bool = False,
        month: int = -1,
    ) -> int:
        """A column. `round_up`: the warm start rounds it up (capacity: halls, generation)
        rather than down (purchases), so the rounded start stays near feasible."""
        self.lb.append(lb)
        self.ub.append(ub)
        self.cost.append(cost)
        self.integer.append(integer)
        self.round_up.append(round_up)
        self.month.append(month)
        self.names.append(name)
        return len(self.lb) - 1

    def add_cost(self, j: int, c: float) -> None:
        self.cost[j] += c

    def row(
        self, terms: dict[int, float], lb: float = -INF, ub: float = INF, name: str = ""
    ) -> int:
        for j, a in terms.items():
            if a != 0.0:
                self._index.append(j)
                self._value.append(a)
        self._start.append(len(self._index))
        self.row_lb.append(lb)
        self.row_ub.append(ub)
        self.row_names.append(name)
        return len(self.row_lb) - 1

    @property
    def n_vars(self) -> int:
        return len(self.lb)

    @property
    def n_rows(self) -> int:
        return len(self.row_lb)

    def solve(
        self,
        time_limit_s: float = 20.0,
        mip_gap: float = 0.005,
        *,
        relax: bool = False,
        abs_gap: float = 0.0,
        start: tuple[np.ndarray, float] | None = None,
        windows_abs_gap: float = 0.0,
        changed_from: np.ndarray | None = None,
        proven_bound: bool = False,
        repair: bool = False,
    ) -> Solution:
        """Solve; `relax` drops integrality (the LP relaxation, for fast what-ifs). `abs_gap`
        stops the search once the bound is that close in objective units: a plan's objective
        (value minus cost) can sit near zero, where a relative gap never closes. `start`: a
        start and its LP bound (from `warm_start`) instead of building one here;
        `windows_abs_gap`: each fix-and-optimize window's absolute gap; `changed_from`: only
        the windows where the start differs from these values; `proven_bound`: the start's
        bound is a true bound of this model (0 for penalties alone), so a plan the windows
        bring within `abs_gap` of it is returned as optimal without branch and bound (which
        took 0.1-0.3 s to find the bound that the start already showed); `repair`: run the
        windows of `changed_from` whatever the start's distance to the bound, each to
        `windows_abs_gap` (level 3: the levels' plan is value-blind where they moved it)."""
        t0 = time.perf_counter()
        found = start
        if found is None and not relax and any(self.integer):
            # The start is what makes the answer good (see _relax_and_fix), so it is not cut at
            # the time limit (only at 5x it, a runaway guard); branch and bound gets the rest,
            # and at least a tenth of the limit.
            found = self.warm_start(time_limit_s)
        x0: np.ndarray | None = None
        lp_bound = float("nan")
        if found is not None:
            x0, lp_bound = found
            # Windows only when the start is further from the LP bound than the gap asked.
            if repair or not _within(self, x0, lp_bound, abs_gap):
                deadline = t0 + 0.7 * time_limit_s
                x0 = _fix_and_optimize(
                    self,
                    x0,
                    deadline,
                    6,
                    windows_abs_gap,
                    changed_from,
                    None if repair else lambda v: _within(self, v, lp_bound, abs_gap),
                )
            if proven_bound and _within(self, x0, lp_bound, abs_gap):
                return self._given(x0, lp_bound, t0)
        left = max(time_limit_s - (time.perf_counter() - t0), 0.1 * time_limit_s)
        h = self.highs(relax, left, mip_gap, abs_gap)
        if x0 is not None:
            h.setSolution(self.n_vars, np.arange(self.n_vars, dtype=np.int32), x0)
        h.run()
        sol = self._read(h, relax, t0)
        if found is not None:
            # The start's LP relaxation bounds this model too (solved to optimality): the
            # tighter of the two. Stopped early, HiGHS's own can be the presolve's loose one
            # (23,397 $M on the example, against an LP bound of 4,605).
            sol.bound = _tighter(self.maximize, sol.bound, lp_bound)
        return sol

    def _given(self, x: np.ndarray, bound: float, t0: float) -> Solution:
        """A plan within the gap of a bound known without branch and bound."""
        obj = float(np.dot(self.cost, x))
        return Solution(
            status="Optimal",
            x=x,
            objective=obj,
            mip_gap=abs(obj - bound) / max(abs(obj), 1.0),
            bound=bound,
            wall_s=time.perf_counter() - t0,
            optimal=True,
        )

    def warm_start(self, time_limit_s: float) -> tuple[np.ndarray, float] | None:
        """The relax-and-fix start for this objective and its LP bound (None: no start)."""
        return _relax_and_fix(self, time_limit_s)

    def highs(
        self, relax: bool, time_limit_s: float, mip_gap: float = 0.01, abs_gap: float = 0.0
    ) -> highspy.Highs:
        """A quiet HiGHS instance holding this model."""
        _silence_banner()
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(time_limit_s))
        h.setOptionValue("mip_rel_gap", float(mip_gap))
        h.setOptionValue("threads", 1)
        if abs_gap > 0:
            h.setOptionValue("mip_abs_gap", float(abs_gap))
        key = (self.n_vars, self.n_rows, len(self._index))
        if self._lp is None or self._lp[0] != key:
            lp = highspy.HighsLp()
            lp.num_col_ = self.n_vars
            lp.num_row_ = self.n_rows
            lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
            lp.a_matrix_.start_ = np.asarray(self._start, dtype=np.int32)
            lp.a_matrix_.index_ = np.asarray(self._index, dtype=np.int32)
            lp.a_matrix_.value_ = np.asarray(self._value, dtype=float)
            kinds = [
                highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                for i in self.integer
            ]
            self._lp = (key, lp, kinds)
        _key, lp, kinds = self._lp
        lp.col_cost_ = np.asarray(self.cost, dtype=float)
        lp.col_lower_ = np.asarray(self.lb, dtype=float)
        lp.col_upper_ = np.asarray(self.ub, dtype=float)
        lp.row_lower_ = np.asarray(self.row_lb, dtype=float)
        lp.row_upper_ = np.asarray(self.row_ub, dtype=float)
        lp.sense_ = highspy.ObjSense.kMaximize if self.maximize else highspy.ObjSense.kMinimize
        lp.integrality_ = kinds if not relax and any(self.integer) else []
        h.passModel(lp)  # a copy: the next instance may change cost and bounds
        return h

    def _read(self, h: highspy.Highs, relax: bool, t0: float) -> Solution:
        status = h.getModelStatus()
        text = h.modelStatusToString(status)
        info = h.getInfo()
        sol = h.getSolution()
        x = np.asarray(sol.col_value, dtype=float)
        if x.size != self.n_vars:
            x = np.zeros(self.n_vars)
        optimal = status == highspy.HighsModelStatus.kOptimal
        mip = not relax and any(self.integer)
        # A bound only where HiGHS proved one: its MIP dual bound (the least of its open nodes'
        # LP bounds) when finite, or an LP solved to optimality. It read "bound = objective"
        # whenever HiGHS's gap was 0 or not a number, and an infinite dual bound (stopped
        # before its root LP) was printed as "within $infM of the bound".
        if mip:
            bound = float(info.mip_dual_bound)
        else:
            bound = float(info.objective_function_value) if optimal else math.nan
        if not math.isfinite(bound):
            bound = math.nan
        gap = float(info.mip_gap) if mip else 0.0
        return Solution(
            status=text,
            x=x,
            objective=float(info.objective_function_value),
            mip_gap=gap if math.isfinite(gap) else math.nan,
            bound=bound,
            wall_s=time.perf_counter() - t0,  # with the warm start, not only HiGHS's run
            optimal=optimal,
            feasible=relax or info.primal_solution_status == 2,
        )
