"""A small row-wise model builder over HiGHS (highspy). Named variable families keep the model
code readable; the matrix goes to HiGHS in one `passModel` call (no per-row API overhead)."""

from __future__ import annotations

import os
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


def _relax_and_fix(model: Model, time_limit_s: float) -> np.ndarray | None:
    """A full start for branch and bound: solve the LP relaxation, round its integer columns
    (purchases down, capacity up), fix them and solve the LP over the rest. The elastic slacks
    make any rounding feasible. Why by hand: HiGHS's own heuristics can sit for minutes on a
    poor incumbent here (large penalties next to small costs), while this start is within a
    block or a hall of the LP bound."""
    lp = model.solve(time_limit_s, relax=True)
    if not lp.optimal:
        return None
    idx = np.flatnonzero(np.asarray(model.integer))
    up = np.asarray(model.round_up)[idx]
    vals = np.where(up, np.ceil(lp.x[idx] - 1e-6), np.floor(lp.x[idx] + 1e-6))
    vals = np.clip(vals, np.asarray(model.lb)[idx], np.asarray(model.ub)[idx])
    pos = {int(j): i for i, j in enumerate(idx)}
    for seq in model.sequences:
        # Round the running total up, not each month: 0.1 hall a month for ten months is one
        # hall, not ten.
        cum = np.ceil(np.cumsum(lp.x[seq]) - 1e-6)
        steps = np.diff(np.concatenate([[0.0], cum]))
        for j, v in zip(seq, steps, strict=True):
            vals[pos[j]] = min(max(v, model.lb[j]), model.ub[j])
    for group in model.pick_one:
        best = max(group, key=lambda j: lp.x[j])
        for j in group:
            vals[pos[j]] = 1.0 if j == best else 0.0
    for terms, cap in model.caps:  # undo round-ups, latest first, until the cap holds
        for j in sorted(terms, reverse=True):
            while sum(a * vals[pos[i]] for i, a in terms.items()) > cap + 1e-9 and vals[pos[j]] > 0:
                vals[pos[j]] -= 1.0
    lb, ub = list(model.lb), list(model.ub)
    try:
        for j, v in zip(idx.tolist(), vals.tolist(), strict=True):
            model.lb[j] = model.ub[j] = float(v)
        fixed = model.solve(time_limit_s, relax=True)
    finally:
        model.lb, model.ub = lb, ub
    return fixed.x if fixed.optimal else None


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
        self.sequences: list[list[int]] = []  # round-up columns in time order (one site's halls)
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
    ) -> int:
        """A column. `round_up`: the warm start rounds it up (capacity: halls, generation)
        rather than down (purchases), so the rounded start stays near feasible."""
        self.lb.append(lb)
        self.ub.append(ub)
        self.cost.append(cost)
        self.integer.append(integer)
        self.round_up.append(round_up)
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
            wall_s=float(h.getRunTime()),
            optimal=status == highspy.HighsModelStatus.kOptimal,
        )
