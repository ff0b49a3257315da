"""Solve a plan and read the answer back: per-month figures, the slacks that are not zero
(named with their numbers), and, when a target is missed, which limit binds it."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cortex.planner.inputs import Inputs, month_label
from cortex.planner.lp import Model, Solution
from cortex.planner.model import (
    HARD_PENALTY,
    HOURS_PER_MONTH,
    Built,
    Fixed,
    build,
    discount,
    goodput_terms,
    it_terms,
)

EPS = 1e-3  # slack below this (MW, $M, H100e) is solver tolerance, not a finding
SHORT_EPS = 0.5  # a target missed by less than half a unit is met


@dataclass
class PlanResult:
    inp: Inputs
    status: str
    objective: float
    mip_gap: float
    bound: float
    wall_s: float
    n_vars: int
    n_rows: int
    months: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    violations: list[str]
    binding: list[str] = field(default_factory=list)
    # Blocks retired early, of the start fleet only (blocks bought in the plan stay to their
    # end of life), and only for a reason: a start fleet the site's power, halls or swing
    # cannot hold leaves in month 0; in min_cost, blocks no target needs; power for newer
    # blocks. They were in no table or JSON: a start fleet retired whole read "0 GPUs".
    retirements: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    x: np.ndarray | None = None
    built: Built | None = None
    # The first, targets-only solve's HiGHS status ("" when the plan has no target to meet):
    # not "Optimal" means it ran out of time_limit_s before deciding what can be met.
    targets_status: str = ""


def _val(x: np.ndarray, terms: dict[int, float]) -> float:
    return float(sum(a * x[j] for j, a in terms.items()))


def solve(
    inp: Inputs,
    fixed: Fixed | None = None,
    relax_family: str = "",
    relax_integrality: bool = False,
    diagnose: bool = True,
    levels: bool = True,
) -> PlanResult:
    """Build and solve; diagnose a missed target by relaxing each hard limit in turn.
    `levels=False`: one solve of the weighted objective, as before the levels (for
    bench/planner_levels.py to compare against in the same run)."""
    b = build(inp, fixed=fixed, relax_family=relax_family)
    # Absolute gap: the relative gap times the money at stake (the whole budget, in $M).
    abs_gap = inp.mip_gap * inp.budget_cum_usd[-1] / 1e6
    targets_status = ""
    if relax_integrality or not any(b.model.integer) or not levels:
        sol = b.model.solve(inp.time_limit_s, inp.mip_gap, relax=relax_integrality, abs_gap=abs_gap)
    else:
        sol, targets_status = _solve_lexicographic(b, abs_gap)
    res = read(b, sol)
    res.targets_status = targets_status
    if diagnose and not relax_family and _shortfall(res) > SHORT_EPS:
        res.binding = _binding(inp, res, fixed)
    return res


def _solve_lexicographic(b: Built, abs_gap: float) -> tuple[Solution, str]:
    """Limits, then targets, then value and cost: (1) the fewest hard-limit penalties alone,
    (2) with those held, the fewest target penalties, to within half a unit of the cheapest
    target's shortfall, (3) with both held, the plan's own objective. One solve of the
    weighted sum stopped at its absolute gap (mip_gap x the budget: $438M on the example, 2.2
    MW of the 500 MW target's penalty), so whether the plan reached 500 MW moved with
    mip_gap, HiGHS's random_seed or the machine's speed (at a goodput factor of 0.8: 499.7 MW
    at mip_gap 0.005, 498.8 at 0.01). Limits before targets: a hard penalty per unit cannot
    outweigh a target for whole blocks (a toy broke 0.15 MW of hall for a whole H200 block
    once its penalties were minimized exactly). The in-house share is not a target: its
    penalty is its price. Returns the plan and the targets level's HiGHS status."""
    inp, m = b.inp, b.model
    t0 = time.perf_counter()
    limit = inp.time_limit_s
    of = {f: {j for (g, _t, _w), j in b.slack.items() if g == f} for f in (*b.hard, "park")}
    hard = set().union(*(of[f] for f in b.hard))
    targets = {j for (f, _t, _w), j in b.slack.items() if f in SHORTFALL_KEYS}
    # (objective, held, tolerance). A scenario's parked first-stage blocks cost in both and
    # are held with the targets: parked for a limit or a target, as few as will do, never for
    # a better mix (held with neither, level 1 was free to park and took GB300s out).
    levels = [
        (hard | of["park"], hard, EPS),
        (targets | of["park"], targets | of["park"], SHORT_EPS),
    ]
    start = m.warm_start(limit) if targets else None
    if start is None:  # no target, or no start to build on: one solve, as before
        return m.solve(limit, inp.mip_gap, abs_gap=abs_gap, start=start), ""
    x = start[0]
    status = ""
    for cols, keep, eps in levels:
        pen = {j: abs(m.cost[j]) for j in cols if m.cost[j] != 0.0}  # a relaxed limit: 0
        if not pen:
            continue
        gap = eps * min(pen.values())
        row = {j: p for j, p in pen.items() if j in keep}
        if _cost(row, x) <= gap:  # the start already meets this level (penalties are >= 0)
            status = "Optimal"
        else:
            level = _penalties_only(m, pen)
            s = level.solve(
                limit / 2, 1e-4, abs_gap=gap, start=(x, 0.0), windows_abs_gap=gap, proven_bound=True
            )
            status = s.status
            if s.feasible and _cost(pen, s.x) <= _cost(pen, x) + 1e-9:
                x = s.x  # else HiGHS lost its start (no feasible plan in time): keep it
        held = _cost(row, x)
        # The plan this level returns meets the row: a tolerance for rounding, not a shortfall.
        m.row(row, ub=held + 1e-6 * max(1.0, held), name="penalties_held")
    left = max(limit - (time.perf_counter() - t0), 0.5 * limit)
    # The levels moved only the windows that met more; repair those windows' cost, each to a
    # fifth of the absolute gap: to 0.1% of its own objective a window stopped at its 2 s
    # limit on most of the example's solves (the value moved with the machine's speed); at
    # half the gap the example's base plan came back $147M below main's (within the gap,
    # but value left on the table). Within the gap of the first LP bound, no branch and
    # bound: it re-derived that bound and found nothing better (0.1-0.5 s a solve).
    sol = m.solve(
        left,
        inp.mip_gap,
        abs_gap=abs_gap,
        start=(x, start[1]),
        changed_from=start[0],
        windows_abs_gap=abs_gap / 5,
        proven_bound=True,  # the LP bound without the held rows bounds this model too
        repair=True,
    )
    if not sol.feasible:  # no plan in time, not even the levels' start back: keep that
        sol.x, sol.objective = x, float(np.dot(m.cost, x))
    sol.wall_s = time.perf_counter() - t0
    return sol, status


def _cost(pen: dict[int, float], x: np.ndarray) -> float:
    return sum(p * float(x[j]) for j, p in pen.items())


def _penalties_only(m: Model, pen: dict[int, float]) -> Model:
    """The same rows and columns with only the penalties in the objective (a shallow copy:
    the matrix lists are shared, the cost list is new)."""
    out = copy.copy(m)
    sign = -1.0 if m.maximize else 1.0
    out.cost = [0.0] * m.n_vars
    for j, p in pen.items():
        out.cost[j] = sign * p
    return out


def read(b: Built, sol: Solution) -> PlanResult:
    inp, x = b.inp, sol.x
    months = []
    for t in range(inp.months):
        months.append(_month(b, x, t))
    orders = []
    for (t, k, s), j in sorted(b.order.items()):
        if x[j] > 0.5:
            sku = next(q for q in inp.skus if q.name == k)
            orders.append(
                {
                    "month": t,
                    "label": month_label(inp.start, t),
                    "sku": k,
                    "site": s,
                    "blocks": round(x[j]),
                    "arrives": t + sku.lead_months,
                    "gpus": round(x[j]) * sku.gpus,
                }
            )
    retirements = []
    for (t, k, s), j in sorted(b.retire.items()):
        early = x[j] - _at_end_of_life(b, x, t, k, s)
        if early > EPS:
            sku = next(q for q in inp.skus if q.name == k)
            retirements.append(
                {
                    "month": t,
                    "label": month_label(inp.start, t),
                    "sku": k,
                    "site": s,
                    "blocks": round(float(early), 3),
                    "gpus": round(float(early) * sku.gpus),
                }
            )
    res = PlanResult(
        inp=inp,
        status=sol.status,
        objective=sol.objective,
        mip_gap=sol.mip_gap,
        bound=sol.bound,
        wall_s=sol.wall_s,
        n_vars=b.model.n_vars,
        n_rows=b.model.n_rows,
        months=months,
        orders=orders,
        violations=_violations(b, x),
        retirements=retirements,
        x=x,
        built=b,
    )
    res.totals = _totals(res)
    return res


def _at_end_of_life(b: Built, x: np.ndarray, t: int, k: str, s: str) -> float:
    """Blocks that must leave in month t because they reach their life: those in service
    and arriving beyond what is still within its life (the oldest go first)."""
    if t == 0:
        return 0.0
    sku = next(q for q in b.inp.skus if q.name == k)
    j = b.order.get((t - sku.lead_months, k, s))
    arriving = x[j] if j is not None else 0.0
    return max(0.0, float(x[b.n[(t - 1, k, s)]] + arriving - x[b.alive[(t, k, s)]]))


def _month(b: Built, x: np.ndarray, t: int) -> dict[str, Any]:
    inp, fac = b.inp, b.inp.facility
    blocks: dict[str, float] = {}
    gpus: dict[str, float] = {}
    for k in inp.skus:
        nb = sum(x[b.n[(t, k.name, s.name)]] for s in inp.sites)
        blocks[k.name] = round(float(nb), 3)
        gpus[k.name] = round(float(nb) * k.gpus)
    facility_mw = 0.0
    it_mw = 0.0
    inhouse_mw = 0.0
    supply = 0.0
    turb_mw = 0.0
    batt_mw = 0.0
    for s in inp.sites:
        facility_mw += _val(x, it_terms(b, t, s.name, "busy_kw", (s.liquid_pue, s.air_pue)))
        it_mw += _val(x, it_terms(b, t, s.name, "busy_kw"))
        for k in inp.skus:
            if k.inhouse:
                inhouse_mw += x[b.n[(t, k.name, s.name)]] * k.busy_kw / 1000.0
        online = s.turbine_fixed_mw[t] + fac["turbine_unit_mw"] * sum(
            x[j]
            for (tau, ss), j in b.turb.items()
            if ss == s.name and tau <= t - fac["turbine_lead_months"]
        )
        turb_mw += online
        supply += s.grid_mw[t] + online
        batt_mw += s.battery_fixed_mw[t] + fac["battery_unit_mw"] * sum(
            x[j]
            for (tau, ss), j in b.batt.items()
            if ss == s.name and tau <= t - fac["battery_lead_months"]
        )
    hall_mw = {"liquid": 0.0, "air": 0.0}  # hall IT capacity online (sized by peak IT)
    peak_it = 0.0
    for s in inp.sites:
        hall_mw["liquid"] += s.liquid_mw + fac["liquid_hall_mw"] * sum(
            x[j]
            for (tau, ss), j in b.hall_l.items()
            if ss == s.name and tau <= t - fac["liquid_hall_build_months"]
        )
        hall_mw["air"] += s.air_mw + fac["air_hall_mw"] * sum(
            x[j]
            for (tau, ss), j in b.hall_a.items()
            if ss == s.name and tau <= t - fac["air_hall_build_months"]
        )
        peak_it += _val(x, it_terms(b, t, s.name, "peak_kw"))
    spent = sum(x[b.spend[tau]] for tau in range(t + 1))
    h100e = sum(blocks[k.name] * k.h100e for k in inp.skus)
    good = _val(x, goodput_terms(b, t))
    return {
        "month": t,
        "label": month_label(inp.start, t),
        "blocks": blocks,
        "gpus": gpus,
        "it_mw": round(it_mw, 3),
        "peak_it_mw": round(peak_it, 3),
        "hall_mw": {k: round(float(v), 3) for k, v in hall_mw.items()},
        "facility_mw": round(facility_mw, 3),
        "supply_mw": round(float(supply), 3),
        "grid_mw": round(sum(s.grid_mw[t] for s in inp.sites), 3),
        "turbine_mw": round(float(turb_mw), 3),
        "battery_mw": round(float(batt_mw), 3),
        "h100e": round(h100e, 1),
        "goodput_h100e": round(good, 1),
        "inhouse_share": round(float(inhouse_mw / it_mw), 4) if it_mw > 0 else 0.0,
        "spend_musd": round(float(x[b.spend[t]]), 3),
        "cash_spent_musd": round(float(spent), 3),
        "budget_musd": round(inp.budget_cum_usd[t] / 1e6, 3),
        "halls_started": {
            "liquid": round(sum(x[j] for (tau, _s), j in b.hall_l.items() if tau == t)),
            "air": round(sum(x[j] for (tau, _s), j in b.hall_a.items() if tau == t)),
        },
        "energy_musd": round(
            float(
                sum(
                    x[b.e_grid[(t, s.name)]] * inp.grid_price[t] * HOURS_PER_MONTH / 1e6
                    + x[b.e_turb[(t, s.name)]]
                    * fac["turbine_fuel_usd_per_mwh"]
                    * HOURS_PER_MONTH
                    / 1e6
                    for s in inp.sites
                )
            ),
            4,
        ),
    }


_UNITS = {
    "power": "MW of facility draw above the supply (grid + turbines)",
    "swing": "MW of peak swing above batteries + grid allowance",
    "halls": "MW of IT above the hall capacity",
    "supply": "blocks above the monthly supply cap",
    "cash": "$M spent above the budget",
    "power_target": "MW below the power target",
    "compute": "H100e of goodput-compute below the target",
    "flagship": "H100e below the flagship fabric size",
    "inhouse": "MW of IT below the in-house share",
    "park": "blocks of the first stage's deliveries parked (out of service, held back)",
}


def _violations(b: Built, x: np.ndarray) -> list[str]:
    """Nonzero slacks, grouped by family and place: the first month, the worst amount."""
    worst: dict[tuple[str, str], tuple[int, float, int]] = {}
    for (fam, t, where), j in b.slack.items():
        v = float(x[j])
        if v > EPS:
            first, mx, count = worst.get((fam, where), (t, 0.0, 0))
            worst[(fam, where)] = (min(first, t), max(mx, v), count + 1)
    out = []
    for (fam, where), (first, mx, count) in sorted(worst.items(), key=lambda p: p[1][0]):
        label = month_label(b.inp.start, first)
        out.append(
            f"{fam} ({where}): from month {first} ({label}), {count} month(s), "
            f"up to {mx:,.1f} {_UNITS.get(fam, '')}"
        )
    return out


# A missed target in its own unit: the power target in MW (one month), compute and flagship
# targets in H100e-months (summed over the months they are due). They were added into one
# "target slack (H100e or MW)": 132.7 of a scenario's expected shortfall could be MW or H100e.
SHORTFALL_KEYS = {
    "power_target": "power_target_mw",
    "compute": "compute_h100e_months",
    "flagship": "flagship_h100e_months",
}
_TARGET_NAMES = {
    "power_target": "power target",
    "compute": "compute target",
    "flagship": "flagship",
}


def shortfalls(res: PlanResult) -> dict[str, float]:
    """Each of the plan's targets' slack summed over months, keyed by SHORTFALL_KEYS."""
    b, inp = res.built, res.inp
    assert b is not None and res.x is not None
    has = {
        "power_target": inp.power_target is not None,
        "compute": bool(inp.compute_targets),
        "flagship": inp.flagship is not None,
    }
    out = {SHORTFALL_KEYS[f]: 0.0 for f, present in has.items() if present}
    for (fam, _t, _w), j in b.slack.items():
        if fam in SHORTFALL_KEYS:
            out[SHORTFALL_KEYS[fam]] += float(res.x[j])
    return out


def _shortfall(res: PlanResult) -> float:
    """The largest target's shortfall in its own unit (is any target missed?)."""
    return max(shortfalls(res).values(), default=0.0)


def _totals(res: PlanResult) -> dict[str, Any]:
    last = res.months[-1]
    b, x = res.built, res.x
    assert b is not None and x is not None
    inp = res.inp
    disc_goodput = sum(discount(inp, t) * _val(x, goodput_terms(b, t)) for t in range(inp.months))
    # The objective's cost side, penalties included: what the frontier trades against value.
    value = disc_goodput / inp.lam if inp.mode == "max_compute" else 0.0
    cost = value - res.objective if inp.mode == "max_compute" else res.objective
    return {
        "discounted_goodput_h100e_months": round(disc_goodput, 1),
        "charged_cost_musd": round(cost, 1),
        "capex_and_energy_musd": last["cash_spent_musd"],
        "budget_musd": last["budget_musd"],
        "goodput_h100e_months": round(sum(m["goodput_h100e"] for m in res.months), 1),
        "final_facility_mw": last["facility_mw"],
        "final_h100e": last["h100e"],
        "target_shortfall": {k: round(v, 3) for k, v in shortfalls(res).items()},
    }


def _binding(inp: Inputs, res: PlanResult, fixed: Fixed | None) -> list[str]:
    """Relax each hard limit alone (LP relaxation, fast) and keep those whose relaxation
    closes at least a tenth of the target shortfall; name their tightest month with numbers."""
    # Compare LP relaxations with each other: the MILP's own shortfall includes block rounding.
    lp = solve(inp, fixed=fixed, relax_integrality=True, diagnose=False)
    base = {k: v for k, v in shortfalls(lp).items() if v > SHORT_EPS}
    if not base:
        short = shortfalls(res)
        if res.targets_status and res.targets_status != "Optimal":
            # The targets-first solve ran out of time before it found a plan that meets them
            # or showed none does: "block sizes" would be a guess.
            return [
                f"the solver's time limit: the LP relaxation meets the targets, and the plan "
                f"misses them by {_missed(short)}; the search for a plan that meets them "
                f"stopped at time_limit_s ({res.targets_status}; raise time_limit_s)"
            ]
        return [
            "block sizes: the LP relaxation meets the targets, whole blocks, halls and "
            "turbine units miss them by " + _missed(short) + _tight_in_lp(inp, lp)
        ]
    out = []
    for fam in HARD_PENALTY:
        r = solve(inp, fixed=fixed, relax_family=fam, relax_integrality=True, diagnose=False)
        after = shortfalls(r)
        # Each target on its own: a relaxation that closes a 100 MW power target's gap but
        # none of a 50,000 H100e-month flagship gap closed "0%" of their sum.
        closes = [
            f"{(v - after[k]) / v:.0%} of the {_name(k)}'s shortfall"
            for k, v in base.items()
            if v - after[k] > 0.1 * v
        ]
        if closes:
            closed = " and ".join(closes)
            out.append(f"{fam}: relaxing it closes {closed}; " + _tight(fam, res, r))
    if not out:  # the report said nothing at all, as if no target were missed
        out.append(
            "no single limit: relaxing any one of "
            + ", ".join(HARD_PENALTY)
            + " alone closes under a tenth of each target's shortfall (several bind together)"
        )
    return out


def _name(key: str) -> str:
    return next(_TARGET_NAMES[f] for f, k in SHORTFALL_KEYS.items() if k == key)


def _missed(short: dict[str, float]) -> str:
    units = {"power_target_mw": "MW", "compute_h100e_months": "H100e-months"}
    return (
        ", ".join(
            f"{v:,.1f} {units.get(k, 'H100e-months')} ({_name(k)})"
            for k, v in short.items()
            if v > 0
        )
        or "0"
    )


def _tight_in_lp(inp: Inputs, lp: PlanResult) -> str:
    """The limits the LP relaxation runs at (>= 99%) where the first target is due."""
    due = _due(inp)
    m = lp.months[due]
    tight = []
    if m["cash_spent_musd"] >= 0.99 * m["budget_musd"]:
        tight.append(f"cash ${m['cash_spent_musd']:,.0f}M of ${m['budget_musd']:,.0f}M")
    if m["facility_mw"] >= 0.99 * m["supply_mw"]:
        tight.append(f"power {m['facility_mw']:,.1f} of {m['supply_mw']:,.1f} MW")
    if not tight:
        return ""
    return f"; at month {due} ({m['label']}) the relaxation runs at its limit: " + ", ".join(tight)


def _due(inp: Inputs) -> int:
    if inp.power_target:
        return inp.power_target[0]
    return inp.compute_targets[0][0] if inp.compute_targets else inp.months - 1


def _tight(fam: str, res: PlanResult, relaxed: PlanResult) -> str:
    """The numbers of a limit at the month the first target is due (or the last month), and
    what the plan would use there with that limit lifted."""
    due = _due(res.inp)
    m = res.months[due]
    w = relaxed.months[due]
    label = f"month {due} ({m['label']})"
    if fam == "power":
        return (
            f"at {label} supply is {m['supply_mw']:,.1f} MW (grid {m['grid_mw']:,.1f} + "
            f"turbines {m['turbine_mw']:,.1f}); meeting the targets needs "
            f"{w['facility_mw']:,.1f} MW"
        )
    if fam == "cash":
        return (
            f"by {label} the plan spends ${m['cash_spent_musd']:,.0f}M "
            f"of a ${m['budget_musd']:,.0f}M budget; meeting the targets needs "
            f"${w['cash_spent_musd']:,.0f}M"
        )
    if fam == "swing":
        return (
            f"at {label} batteries online {m['battery_mw']:,.1f} MW; the targets need "
            f"{w['battery_mw']:,.1f} MW or more grid swing allowance"
        )
    if fam == "halls":
        # Halls are sized by peak IT: the busy draw (it_mw) named here read as the halls' size.
        halls = m["hall_mw"]["liquid"] + m["hall_mw"]["air"]
        return (
            f"at {label} halls online hold {halls:,.1f} MW of peak IT (liquid "
            f"{m['hall_mw']['liquid']:,.1f} + air {m['hall_mw']['air']:,.1f}), the plan uses "
            f"{m['peak_it_mw']:,.1f}; meeting the targets needs {w['peak_it_mw']:,.1f} MW "
            "(hall build times and starts per month bind)"
        )
    return _tight_supply(res, due, label)


def _tight_supply(res: PlanResult, due: int, label: str) -> str:
    """The SKUs whose orders sit at their monthly supply cap in the months whose deliveries
    can arrive by `due` (it said only "supply caps per SKU bind", with no number)."""
    at_cap = []
    for k in res.inp.skus:
        months = range(max(0, k.available_month - k.lead_months), due - k.lead_months + 1)
        if k.supply_per_month <= 0 or not months:
            continue
        placed = dict.fromkeys(months, 0)
        for o in res.orders:
            if o["sku"] == k.name and o["month"] in placed:
                placed[o["month"]] += o["blocks"]
        full = sum(1 for v in placed.values() if v >= k.supply_per_month)
        if full:
            at_cap.append(
                f"{k.name} at its cap of {k.supply_per_month} blocks a month in {full} of the "
                f"{len(placed)} months whose orders arrive by then"
            )
    return f"supply caps bind before {label}: " + ("; ".join(at_cap) or "no SKU at its cap")
