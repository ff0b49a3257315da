"""The class-aggregated allocation LP behind the `hetero` profile (Gavel-style effective
throughput, at fleet scale).

Jobs are grouped into classes (cluster queue, workload kind, acceptable flavors); the LP gives
each class GPUs of each flavor. A GPU of flavor f given to class c yields `speed[c, f]`
H100-equivalents (the throughput table), so the fleet's effective throughput is
`sum(speed * x)`. Two solves, both with HiGHS through `scipy.optimize.linprog`:

1. Entitlement: each queue alone on its nominal slice of every flavor, used as well as its own
   classes can (Gavel's normalizer, the throughput "on its own share"). Queues are independent
   blocks, so one LP gives every queue's best at once.
2. Allocation: maximize total effective throughput under capacity, demand, the queues'
   per-flavor ceilings and the site's power budget, with a floor per queue of `fairness` x its
   entitlement. The floors are soft: one shortfall u, common to all queues as a fraction of
   entitlement, costs more than any reallocation can earn, so the floors hold whenever they
   can; when power or ceilings make that impossible, every queue keeps at least
   `(fairness - u) x entitlement` with u as small as it can be (max-min on normalized
   throughput), and the rest goes to total throughput. With `guarded`, a queue also has a
   floor on each guarded flavor: the H100-eq its entitlement plan holds there (its nominal
   quota as a guarantee), soft in the same way.

Everything here is numbers in, numbers out: no scheduler types, no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

# scipy is imported inside the functions below: it takes a good part of a second to load, and
# only the hetero profile's solve needs it, not every `cortex` command.


@dataclass(frozen=True)
class LpInput:
    """One allocation problem. C classes, F flavors, Q queues.

    `speed[c, f]` is 0 where class c may not use flavor f. `max_gpus[q, f]` is the queue's
    ceiling on the flavor (nominal + borrowing limit; inf when unlimited). `watts[c, f]` is the
    incremental IT draw of one busy GPU over idle; `power_budget_w` the watts over idle the site
    allows (inf: no power row)."""

    class_queue: np.ndarray  # [C] int: queue index of each class
    demand_gpus: np.ndarray  # [C] GPUs the class's jobs want (running + pending)
    speed: np.ndarray  # [C, F] H100-equivalents per GPU
    capacity_gpus: np.ndarray  # [F] GPUs in service
    nominal_gpus: np.ndarray  # [Q, F] each queue's nominal slice
    max_gpus: np.ndarray  # [Q, F]
    watts: np.ndarray  # [C, F]
    power_budget_w: float = math.inf
    fairness: float = 0.95  # each queue's floor, as a fraction of its entitlement
    # [C] H100-eq per second the class's work asks for; when given it replaces demand_gpus
    # (`sum_f speed x <= demand_eq`): work may be met by more GPUs of a slower flavor.
    demand_eq: np.ndarray | None = None
    # Cost per GPU held, as a fraction of the slowest speed (0: none): among plans of equal
    # throughput the solve then takes the one holding the fewest GPUs.
    tie_break: float = 0.0
    # [Q, F] bool, a queue's nominal quota as a guarantee: where True, a floor of the H100-eq
    # the queue's own entitlement plan puts on the flavor (at most its nominal quota there, at
    # most its demand). None: no such floors.
    guarded: np.ndarray | None = None


@dataclass(frozen=True)
class LpResult:
    """GPUs per class and flavor, and the figures the bench and the docs report."""

    gpus: np.ndarray  # [C, F]
    entitlement_eq: np.ndarray  # [Q] best H100-eq each queue gets alone on its nominal slice
    throughput_eq: np.ndarray  # [Q] H100-eq the allocation gives each queue
    total_eq: float  # fleet effective throughput of the allocation

    def normalized(self) -> np.ndarray:
        """Each queue's throughput over its entitlement (nan where it has none)."""
        ent = self.entitlement_eq
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ent > 0, self.throughput_eq / ent, np.nan)


TIE_BREAK = 1e-4  # the tie-break per GPU held that per-class planning uses (hetero.py)


class LpError(RuntimeError):
    """HiGHS found no optimum where one must exist (a bug, not bad input)."""


def solve(p: LpInput) -> LpResult:
    """Solve both LPs; see the module docstring."""
    n_c, n_f = p.speed.shape
    n_q = p.nominal_gpus.shape[0]
    if n_c == 0:
        zero = np.zeros(n_q)
        return LpResult(np.zeros((0, n_f)), zero, zero, 0.0)
    ci, fi = np.nonzero(p.speed > 0)  # one variable per allowed (class, flavor)
    s = p.speed[ci, fi]
    qi = p.class_queue[ci]
    n_x = len(ci)
    ent, y = _entitlement(p, ci, fi, s, qi)
    floors = np.nonzero(ent > 0)[0]
    # x, then u: the common shortfall below the fairness floors, as a fraction; then v: the
    # common shortfall below the guarantee floors, as a fraction.
    n_v = n_x + 2
    rows = _Rows(n_v)
    for f in range(n_f):
        rows.add(np.nonzero(fi == f)[0], 1.0, float(p.capacity_gpus[f]))
    _demand_rows(p, rows, ci, s)
    for q, f in zip(*np.nonzero(np.isfinite(p.max_gpus)), strict=True):
        rows.add(np.nonzero((qi == q) & (fi == f))[0], 1.0, float(p.max_gpus[q, f]))
    if math.isfinite(p.power_budget_w):
        rows.add(np.arange(n_x), p.watts[ci, fi], max(p.power_budget_w, 0.0))
    for q in floors:
        # -(throughput of q) - u * ent_q <= -fairness * ent_q
        mine = np.nonzero(qi == q)[0]
        rows.add(np.append(mine, n_x), np.append(-s[mine], -ent[q]), -p.fairness * ent[q])
    if p.guarded is not None:
        # Per queue and flavor, the H100-eq its entitlement plan holds there: the queue alone
        # on its nominal slices, so at most min(demand, nominal) of the flavor, and all the
        # floors together fit the fleet wherever the nominal quotas do. Soft like the
        # fairness floors (capacity out of service, power): one shortfall v for all.
        guard = np.zeros((n_q, n_f))
        np.add.at(guard, (qi, fi), s * y)
        for q, f in zip(*np.nonzero((guard > 0) & p.guarded), strict=True):
            mine = np.nonzero((qi == q) & (fi == f))[0]
            rows.add(np.append(mine, n_x + 1), np.append(-s[mine], -guard[q, f]), -guard[q, f])
    # u must cost more than any reallocation could earn: lowering u by d raises every floor by
    # d * ent_q, which costs the total at most max(s) / min(s) * sum(ent) * d.
    penalty = 10.0 * float(s.max() / s.min()) * max(float(ent.sum()), 1.0)
    # The same bound holds for v: its floors add up to the entitlements.
    # Among plans of the same throughput, the one holding the fewest GPUs (a tie-break worth
    # far less than any throughput): a job's work fits where it needs the fewest GPUs, which
    # settles the many ties of near-equal speeds instead of leaving them to the solver.
    cost = np.append(-s + p.tie_break * float(s.min()), [penalty, penalty])
    sol = _lp(cost, rows, np.append(np.full(n_x, np.inf), [p.fairness, 1.0]))
    x = sol[:n_x]
    gpus = np.zeros((n_c, n_f))
    gpus[ci, fi] = x
    thr = np.bincount(qi, weights=s * x, minlength=n_q)
    return LpResult(gpus, ent, thr, float(np.dot(s, x)))


def _entitlement(
    p: LpInput, ci: np.ndarray, fi: np.ndarray, s: np.ndarray, qi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best throughput of each queue alone on its nominal slice (capped by capacity in
    service): one LP whose blocks are independent, so the sum's optimum is each block's.
    Also the plan itself (GPUs per variable)."""
    rows = _Rows(len(ci))
    cap = np.minimum(p.nominal_gpus, p.capacity_gpus[None, :])
    for q, f in zip(*np.nonzero(np.ones(cap.shape, dtype=bool)), strict=True):
        rows.add(np.nonzero((qi == q) & (fi == f))[0], 1.0, float(cap[q, f]))
    _demand_rows(p, rows, ci, s)
    y = _lp(-s, rows)
    return np.bincount(qi, weights=s * y, minlength=p.nominal_gpus.shape[0]), y


def _demand_rows(p: LpInput, rows: _Rows, ci: np.ndarray, s: np.ndarray) -> None:
    """One row per class: its GPUs at most its demand in GPUs, or its H100-eq at most its
    demand in work."""
    for c in range(p.speed.shape[0]):
        mine = np.nonzero(ci == c)[0]
        if p.demand_eq is None:
            rows.add(mine, 1.0, float(p.demand_gpus[c]))
        else:
            rows.add(mine, s[mine], float(p.demand_eq[c]))


class _Rows:
    """Sparse `A x <= b` rows, collected as index arrays and built once."""

    def __init__(self, n_vars: int) -> None:
        self.n_vars = n_vars
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.b: list[float] = []

    def add(self, cols: np.ndarray, coef: float | np.ndarray, bound: float) -> None:
        if len(cols) == 0:
            return
        self.r.append(np.full(len(cols), len(self.b)))
        self.c.append(cols)
        self.v.append(np.broadcast_to(np.asarray(coef, dtype=float), cols.shape))
        self.b.append(bound)

    def matrix(self) -> csr_matrix:
        from scipy.sparse import csr_matrix

        data = (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c)))
        return csr_matrix(data, shape=(len(self.b), self.n_vars))


def _lp(cost: np.ndarray, rows: _Rows, upper: np.ndarray | None = None) -> np.ndarray:
    """min cost.x subject to the rows, 0 <= x <= upper."""
    from scipy.optimize import linprog

    a = rows.matrix() if rows.b else None
    b = np.asarray(rows.b) if rows.b else None
    bounds = (0, None) if upper is None else np.column_stack([np.zeros(len(cost)), upper])
    res = linprog(cost, A_ub=a, b_ub=b, bounds=bounds, method="highs")
    if res.status != 0:
        raise LpError(f"allocation LP: {res.message}")
    return np.maximum(np.asarray(res.x, dtype=float), 0.0)
