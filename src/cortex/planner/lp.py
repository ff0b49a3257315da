"""A small row-wise model builder over HiGHS (highspy). Named variable families keep the model
code readable; the matrix goes to HiGHS in one `passModel` call (no per-row API overhead)."""

from __future__ import annotations

import os
import time
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
    wall_s: float
    optimal: bool


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
    """Round capacity columns by their running total within the chunk: 0.2 of a hall a month
    for five months is one hall, not five."""
    out: dict[int, float] = {}
    for seq in model.sequences:
        part = [j for j in seq if j in todo]
        if not part:
            continue
        cum = np.ceil(np.cumsum(x[part]) - 1e-6)
        for j, v in zip(part, np.diff(np.concatenate([[0.0], cum])), strict=True):
            out[j] = float(v)
    return out


def _relax_and_fix(model: Model, time_limit_s: float, chunk: int = 6) -> np.ndarray | None:
    """A full start for branch and bound, by relax-and-fix over time (the classic heuristic
    for lot-sizing): solve the LP relaxation, round the integer columns of the first `chunk`
    months (purchases to nearest, capacity up), fix them, re-solve, move on; the later months'
    LP makes up for each rounding. The elastic slacks keep every step feasible, and rounding
    respects the caps rows (turbine permits). Why by hand: HiGHS's root cut loop can sit on a
    poor incumbent for minutes here (a tight power target with many equivalent mixes), while
    this start lands within a block or a hall of the LP bound in a few LP solves."""
    lb0, ub0 = list(model.lb), list(model.ub)
    ints = [j for j in range(model.n_vars) if model.integer[j]]
    last = max((model.month[j] for j in ints), default=-1)
    try:
        lp = model.solve(time_limit_s, relax=True)
        if not lp.optimal:
            return None
        for group in model.pick_one:
            best = max(group, key=lambda j: lp.x[j])
            for j in group:
                model.lb[j] = model.ub[j] = 1.0 if j == best else 0.0
        for c0 in [*range(0, last + 1, chunk), None]:
            lp = model.solve(time_limit_s, relax=True)
            if not lp.optimal:
                return None
            if c0 is None:
                return lp.x
            todo = [j for j in ints if c0 <= model.month[j] < c0 + chunk or model.month[j] < 0]
            rounded = _round_sequences(model, lp.x, set(todo))
            for j in todo:
                if model.lb[j] == model.ub[j]:
                    continue
                if j in rounded:
                    v = rounded[j]
                else:
                    v = np.ceil(lp.x[j] - 1e-6) if model.round_up[j] else np.floor(lp.x[j] + 0.5)
                model.lb[j] = model.ub[j] = float(min(max(v, lb0[j]), ub0[j]))
            for terms, cap in model.caps:  # undo round-ups, latest first, until the cap holds
                for j in sorted(terms, reverse=True):
                    while (
                        sum(a * model.lb[i] for i, a in terms.items() if model.lb[i] == model.ub[i])
                        > cap + 1e-9
                        and model.lb[j] == model.ub[j]
                        and model.lb[j] > lb0[j]
                    ):
                        model.lb[j] = model.ub[j] = model.lb[j] - 1.0
        return None
    finally:
        model.lb, model.ub = lb0, ub0


class Model:
    """Variables with bounds, costs and integrality; rows lb <= a.x <= ub."""

    def __init__(self, maximize: bool) -> None:
        self.maximize = maximize
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.cost: list[float] = []
        self.integer: list[bool] = []
        self.round_up: list[bool] = []
        self.pick_one: list[list[int]] = []  # binaries of which the warm start sets the largest
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

    def _warm_start(self, h: highspy.Highs, time_limit_s: float) -> None:
        x = _relax_and_fix(self, time_limit_s)
        if x is not None:
            idx = np.arange(self.n_vars, dtype=np.int32)
            h.setSolution(int(idx.size), idx, np.asarray(x, dtype=float))

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
        relax: bool = False,
        abs_gap: float = 0.0,
    ) -> Solution:
        """Solve; `relax` drops integrality (the LP relaxation, for fast what-ifs). `abs_gap`
        stops the search once the bound is that close in objective units: a plan's objective
        (value minus cost) can sit near zero, where a relative gap never closes."""
        t0 = time.perf_counter()
        _silence_banner()
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(time_limit_s))
        h.setOptionValue("mip_rel_gap", float(mip_gap))
        h.setOptionValue("threads", 1)
        if abs_gap > 0:
            h.setOptionValue("mip_abs_gap", float(abs_gap))
        lp = highspy.HighsLp()
        lp.num_col_ = self.n_vars
        lp.num_row_ = self.n_rows
        lp.col_cost_ = np.asarray(self.cost, dtype=float)
        lp.col_lower_ = np.asarray(self.lb, dtype=float)
        lp.col_upper_ = np.asarray(self.ub, dtype=float)
        lp.row_lower_ = np.asarray(self.row_lb, dtype=float)
        lp.row_upper_ = np.asarray(self.row_ub, dtype=float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.asarray(self._start, dtype=np.int32)
        lp.a_matrix_.index_ = np.asarray(self._index, dtype=np.int32)
        lp.a_matrix_.value_ = np.asarray(self._value, dtype=float)
        lp.sense_ = highspy.ObjSense.kMaximize if self.maximize else highspy.ObjSense.kMinimize
        if not relax and any(self.integer):
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                for i in self.integer
            ]
        h.passModel(lp)
        if not relax and any(self.integer):
            self._warm_start(h, time_limit_s)
        h.run()
        status = h.getModelStatus()
        text = h.modelStatusToString(status)
        info = h.getInfo()
        sol = h.getSolution()
        x = np.asarray(sol.col_value, dtype=float)
        if x.size != self.n_vars:
            x = np.zeros(self.n_vars)
        gap = float(info.mip_gap) if not relax and any(self.integer) else 0.0
        return Solution(
            status=text,
            x=x,
            objective=float(info.objective_function_value),
            mip_gap=gap,
            wall_s=time.perf_counter() - t0,  # with the warm start, not only HiGHS's run
            optimal=status == highspy.HighsModelStatus.kOptimal,
        )
