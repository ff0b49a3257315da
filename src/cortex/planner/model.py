"""The planning MILP: monthly stock-flow of accelerator blocks, halls, generation and cash.

Units: money in $M, power in MW, compute in H100-equivalents (H100e). Every physical limit
(power, swing, halls, supply, cash) has an elastic slack with a penalty far above anything a
plan could gain from it, so a plan always comes back and a nonzero slack names the limit that
cannot hold. Targets (compute, power, in-house share, flagship fabric) are soft with smaller
penalties: missing one is a result to report, breaking physics is an input problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cortex.planner.inputs import Inputs, Sku
from cortex.planner.lp import INF, Model

HOURS_PER_MONTH = 730.0
# Penalties in $M per unit of slack. Hard limits cost more than any gain they could buy: one
# MW-month of power holds ~3 H100 blocks, worth under $1M a month at any sane lambda.
HARD_PENALTY = {"power": 1e3, "swing": 1e3, "halls": 1e3, "supply": 1e3, "cash": 1e2}
# Soft targets: above the cost of meeting them (a MW of AI capacity is ~$40M all-in,
# an H100e ~$0.05M), below the hard limits.
RETIRE_TIE_BREAK = 1e-4  # $M per block retired
SOFT_PENALTY = {"power_target": 2e2, "compute": 1.0, "flagship": 1.0}
# $M per H100e-month of a scenario's first-stage deliveries kept out of service ("park", see
# _stock), solved with the hard limits (solve._solve_lexicographic): a scenario parks blocks
# when a limit or a target needs it, the least compute first (at a flat price per block it
# parked the GB300s, the fewest blocks per MW), never for a better mix.
PARK_PER_H100E = 1e-3


@dataclass
class Built:
    """The model and where each decision lives in it."""

    inp: Inputs
    model: Model
    order: dict[tuple[int, str, str], int] = field(default_factory=dict)
    retire: dict[tuple[int, str, str], int] = field(default_factory=dict)
    n: dict[tuple[int, str, str], int] = field(default_factory=dict)
    alive: dict[tuple[int, str, str], int] = field(default_factory=dict)  # within their life
    air: dict[tuple[int, str, str], int] = field(default_factory=dict)
    hall_l: dict[tuple[int, str], int] = field(default_factory=dict)
    hall_a: dict[tuple[int, str], int] = field(default_factory=dict)
    turb: dict[tuple[int, str], int] = field(default_factory=dict)
    batt: dict[tuple[int, str], int] = field(default_factory=dict)
    e_grid: dict[tuple[int, str], int] = field(default_factory=dict)
    e_turb: dict[tuple[int, str], int] = field(default_factory=dict)
    spend: dict[int, int] = field(default_factory=dict)  # $M spent in month t
    spent: dict[int, int] = field(default_factory=dict)  # $M spent by the end of month t
    slack: dict[tuple[str, int, str], int] = field(default_factory=dict)  # (family, t, where)
    flag_z: dict[tuple[str, str], int] = field(default_factory=dict)
    hard: dict[str, float] = field(default_factory=lambda: dict(HARD_PENALTY))


def hard_penalties(inp: Inputs) -> dict[str, float]:
    """$M per unit of each hard limit's slack: HARD_PENALTY, raised where a unit of the limit
    could earn more than that in the plan's own terms. A block-month is worth at most its
    H100e x $1M to a compute or flagship target (plus its value in max_compute), its MW to
    the power target and to the in-house share; at a flat $1,000M per MW, a GB200 block
    (1,291 H100e of llm at 0.88 MW) made breaking the power limit cheaper than missing a
    compute target: a plan drew 3.4 MW on a 1 MW supply. Twice the best ratio of value to
    use of the limit, over the SKUs, keeps every hard limit above any gain."""
    pue_lo = min(min(s.liquid_pue, s.air_pue) for s in inp.sites)
    pue_hi = max(max(s.liquid_pue, s.air_pue) for s in inp.sites)
    per_h100e = max(SOFT_PENALTY["compute"], SOFT_PENALTY["flagship"])
    per_h100e = per_h100e if inp.compute_targets or inp.flagship else 0.0
    per_h100e += 1.0 / inp.lam if inp.mode == "max_compute" else 0.0
    per_mw = (inp.inhouse[2] / 1e6 if inp.inhouse else 0.0) + (
        SOFT_PENALTY["power_target"] * pue_hi if inp.power_target else 0.0
    )
    out = dict(HARD_PENALTY)
    for k in inp.skus:
        value = per_h100e * k.h100e + per_mw * k.busy_kw / 1000.0  # $M per block-month
        uses = {
            "power": k.busy_kw / 1000.0 * pue_lo,
            "halls": k.peak_kw / 1000.0,
            "swing": (k.peak_kw - k.busy_kw) / 1000.0 * pue_lo,
            "supply": 1.0,
            "cash": k.price_usd / 1e6,
        }
        for fam, use in uses.items():
            if use > 0:
                out[fam] = max(out[fam], 2.0 * value / use)
    return out


def discount(inp: Inputs, t: int) -> float:
    return float((1.0 + inp.facility["discount_rate_per_year"]) ** (-t / 12.0))


def alive_initial(inp: Inputs, sku: Sku, t: int) -> bool:
    return inp.initial_age + t < sku.life_months


def _share_in_horizon(inp: Inputs, t: int, life: float) -> float:
    """Part of a purchase made in month t charged to this plan: capital is spread straight-line
    over its life (the LBNL/PyPSA annualized cost), so buying late is not free nor punished."""
    return max(0.0, min(1.0, (inp.months - t) / life))


Fixed = dict[tuple[str, tuple[Any, ...]], float]
FIRST_STAGE = ("order", "hall_l", "hall_a", "turb", "batt")


def build(inp: Inputs, fixed: Fixed | None = None, relax_family: str = "") -> Built:
    """Build the MILP. `fixed` pins decisions by (family, key), e.g. ("order", (t, sku, site)):
    the first-stage orders shared by every scenario; a key the model lacks (an order that now
    arrives past the horizon) is skipped. `relax_family` zeroes one hard limit's penalty (to
    find which limit binds a target)."""
    maximize = inp.mode == "max_compute"
    b = Built(inp, Model(maximize=maximize), hard=hard_penalties(inp))
    sign = -1.0 if maximize else 1.0  # costs and penalties lower a maximized objective
    _decisions(b, sign, relax_family)
    _stock(b, relax_family, fixed or {})
    _cash(b, relax_family)
    _facilities(b, sign, relax_family)
    _targets(b, sign)
    if maximize:
        for (t, k, _s), j in b.n.items():
            sku = _sku(inp, k)
            w = discount(inp, t) * inp.goodput[(t, k)] * sku.h100e / inp.lam
            b.model.add_cost(j, w)
    if fixed:
        for (fam, key), v in fixed.items():
            j = getattr(b, fam).get(key)
            if j is not None:
                b.model.lb[j] = v
                b.model.ub[j] = v
    return b


def first_stage(b: Built, x: Any, months: int) -> Fixed:
    """The decisions of the first `months` months, keyed for `build(fixed=...)`."""
    out: Fixed = {}
    for fam in FIRST_STAGE:
        for key, j in getattr(b, fam).items():
            if key[0] < months:
                out[(fam, key)] = float(round(x[j]))
    return out


def _sku(inp: Inputs, name: str) -> Sku:
    for s in inp.skus:
        if s.name == name:
            return s
    raise KeyError(name)


def _decisions(b: Built, sign: float, relax: str = "") -> None:
    inp, m = b.inp, b.model
    fac = inp.facility
    n_months = inp.months
    for t in range(n_months):
        d = discount(inp, t)
        for k in inp.skus:
            arrive = t + k.lead_months
            for s in inp.sites:
                if arrive < n_months and arrive >= k.available_month and k.supply_per_month > 0:
                    share = _share_in_horizon(inp, arrive, k.life_months)
                    c = sign * discount(inp, arrive) * k.price_usd / 1e6 * share
                    b.order[(t, k.name, s.name)] = m.var(
                        f"order[{t},{k.name},{s.name}]",
                        0,
                        # The supply cap is also the row below; relaxed, both go (with the
                        # bound kept, relaxing "supply" lifted nothing and a target missed
                        # for want of supply was diagnosed as bound by no limit at all).
                        INF if relax == "supply" else k.supply_per_month,
                        c,
                        integer=True,
                        month=t,
                    )
                # Continuous: blocks are bought whole but retired node by node.
                # A tie-break cost: retire only for a reason (power, halls), never for nothing.
                b.retire[(t, k.name, s.name)] = m.var(
                    f"retire[{t},{k.name},{s.name}]", cost=sign * RETIRE_TIE_BREAK
                )
                b.n[(t, k.name, s.name)] = m.var(f"n[{t},{k.name},{s.name}]")
                if not k.liquid_only:
                    b.air[(t, k.name, s.name)] = m.var(f"air[{t},{k.name},{s.name}]")
        for s in inp.sites:
            hl = fac["liquid_hall_usd_per_mw"] * fac["liquid_hall_mw"] / 1e6
            share = _share_in_horizon(inp, t, fac["hall_life_months"])
            b.hall_l[(t, s.name)] = m.var(
                f"hall_l[{t},{s.name}]",
                0,
                s.max_halls_per_month,
                sign * d * hl * share,
                True,
                True,
                t,
            )
            if s.allow_air_halls:
                ha = fac["air_hall_usd_per_mw"] * fac["air_hall_mw"] / 1e6
                b.hall_a[(t, s.name)] = m.var(
                    f"hall_a[{t},{s.name}]",
                    0,
                    s.max_halls_per_month,
                    sign * d * ha * share,
                    True,
                    True,
                )
            if s.turbine_max_mw > 0:
                tc = fac["turbine_usd_per_mw"] * fac["turbine_unit_mw"] / 1e6
                ts = _share_in_horizon(inp, t, fac["turbine_life_months"])
                b.turb[(t, s.name)] = m.var(
                    f"turb[{t},{s.name}]",
                    0,
                    INF,
                    sign * d * tc * ts,
                    integer=True,
                    round_up=True,
                    month=t,
                )
            bc = fac["battery_usd_per_unit"] / 1e6
            bs = _share_in_horizon(inp, t, fac["battery_life_months"])
            b.batt[(t, s.name)] = m.var(
                f"batt[{t},{s.name}]", 0, INF, sign * d * bc * bs, True, True, t
            )
            price = inp.grid_price[t] * HOURS_PER_MONTH / 1e6
            fuel = fac["turbine_fuel_usd_per_mwh"] * HOURS_PER_MONTH / 1e6
            b.e_grid[(t, s.name)] = m.var(
                f"e_grid[{t},{s.name}]", 0, s.grid_mw[t], sign * d * price
            )
            b.e_turb[(t, s.name)] = m.var(f"e_turb[{t},{s.name}]", 0, INF, sign * d * fuel)


def _stock(b: Built, relax: str = "", fixed: Fixed | None = None) -> None:
    """Blocks in service n[t] = n[t-1] + arrivals - retirements, at most the blocks still
    within their life, alive[t] = alive[t-1] + arrivals - arrivals that reach their life (the
    initial fleet leaving at its end of life). A retirement is early or at the end of life,
    oldest blocks first. Month to month (not as sums from month 0) so each row has a handful
    of terms: the matrix stays sparse and the LPs fast.

    The end of life was subtracted from n itself: a block retired early left again at its end
    of life, so a start fleet the site could not power had to keep as many blocks as would
    expire in the horizon (cortex-2024 at 50 months of age on 40 MW kept 180 of 390 blocks
    past the power, hall and swing limits, and bought 210 more to be retired at month 10).

    Only the start fleet may leave before its end of life: n >= alive - the start fleet
    still alive. Capital is charged for the part of a block's life inside the horizon, which
    keeps the rest of its value at the horizon's end; a block bought and retired early loses
    that rest, and the model has no resale price to net against it (no sourced figure for used
    accelerators, none at all for in-house silicon), so it scored the loss as free: the
    example bought 254 Dojo cabinets by month 18 and retired 102 of them at months 28-30 for
    GB200 power. With the whole horizon in view, a planner does not buy what it will throw
    away within its life. The start fleet's capital is sunk (not charged), so retiring it for
    power, halls or newer hardware is a real choice, and the report lists it. In a scenario's
    recourse, the `fixed` first-stage orders' blocks may leave early too, at a "park" penalty
    per block-month: the scenario is a surprise those orders did not see, and a delivered
    block its power cannot hold is parked (a violation line names it) rather than reported as
    broken power; the blocks the recourse itself buys stay (with no rule for them, the base
    scenario retired 236 blocks; with a free park, 58 of the first stage's)."""
    inp, m = b.inp, b.model
    for k in inp.skus:
        for s in inp.sites:
            init = inp.initial.get((k.name, s.name), 0)
            key = (k.name, s.name)
            bought = False  # a block bought in the plan has arrived by month t
            for t in range(inp.months):
                alive_var = m.var(f"alive[{t},{k.name},{s.name}]")
                b.alive[(t, *key)] = alive_var
                terms = {b.n[(t, *key)]: 1.0, b.retire[(t, *key)]: 1.0}
                life = {alive_var: 1.0}
                if t > 0:
                    terms[b.n[(t - 1, *key)]] = -1.0
                    life[b.alive[(t - 1, *key)]] = -1.0
                j = b.order.get((t - k.lead_months, *key))
                if j is not None:
                    terms[j] = -1.0
                    life[j] = -1.0
                    bought = True
                j = b.order.get((t - k.lead_months - k.life_months, *key))
                if j is not None:
                    life[j] = 1.0
                alive = float(init) if alive_initial(inp, k, t) else 0.0
                before = float(init) if t > 0 and alive_initial(inp, k, t - 1) else 0.0
                first = alive if t == 0 else 0.0  # the start fleet enters once, at month 0
                m.row(terms, first, first, f"stock[{t},{k.name},{s.name}]")
                m.row(life, alive - before, alive - before, f"alive[{t},{k.name},{s.name}]")
                # At most the blocks within their life; once the plan's own blocks have
                # arrived, at least those (only the start fleet may leave early, see above).
                least = -alive if bought else -INF
                life_row = {b.n[(t, *key)]: 1.0, alive_var: -1.0}
                parkable = _fixed_alive(k, s.name, t, fixed) if bought else 0.0
                if parkable > 0:
                    j = _slack(b, "park", t, f"{s.name}/{k.name}", relax, PARK_PER_H100E * k.h100e)
                    m.ub[j] = parkable
                    life_row[j] = 1.0
                m.row(life_row, lb=least, ub=0.0, name=f"life[{t},{k.name}]")
                ja = b.air.get((t, k.name, s.name))
                if ja is not None:
                    m.row({ja: 1.0, b.n[(t, k.name, s.name)]: -1.0}, ub=0.0)
        for t in range(inp.months):
            terms = {j: 1.0 for (tt, kk, _s), j in b.order.items() if tt == t and kk == k.name}
            if terms:
                sl = _slack(b, "supply", t, k.name, relax=relax)
                terms[sl] = -1.0
                m.row(terms, ub=float(k.supply_per_month), name=f"supply[{t},{k.name}]")
                m.caps.append(({j: 1.0 for j in terms if j != sl}, float(k.supply_per_month)))


def _fixed_alive(k: Sku, site: str, t: int, fixed: Fixed | None) -> float:
    """Blocks of fixed (first-stage) orders of SKU k at the site within their life in month t."""
    total = 0.0
    for (fam, key), v in (fixed or {}).items():
        if fam == "order" and key[1] == k.name and key[2] == site:
            arrive = key[0] + k.lead_months
            total += v if arrive <= t < arrive + k.life_months else 0.0
    return total


def _slack(b: Built, family: str, t: int, where: str, relax: str, per_unit: float = 0.0) -> int:
    pen = 0.0 if family == relax else (per_unit or b.hard.get(family, 0.0))
    if family in SOFT_PENALTY and not per_unit:
        pen = SOFT_PENALTY[family]
    sign = -1.0 if b.model.maximize else 1.0
    j = b.model.var(f"slack_{family}[{t},{where}]", 0, INF, sign * pen)
    b.slack[(family, t, where)] = j
    return j


def it_terms(b: Built, t: int, site: str, kw: str, pue: tuple[float, float] | None = None) -> dict:
    """Terms of a site's IT (or facility, with `pue`) MW in month t, by busy or peak kW."""
    terms: dict[int, float] = {}
    for k in b.inp.skus:
        per = getattr(k, kw) / 1000.0
        pl, pa = pue if pue else (1.0, 1.0)
        terms[b.n[(t, k.name, site)]] = per * pl
        ja = b.air.get((t, k.name, site))
        if ja is not None:
            terms[ja] = per * (pa - pl)
    return terms


def _cash(b: Built, relax: str) -> None:
    """Cumulative spend (capex when due, energy) within the cumulative budget."""
    inp, m, fac = b.inp, b.model, b.inp.facility
    for t in range(inp.months):
        sp = m.var(f"spend[{t}]", -INF, INF)
        b.spend[t] = sp
        terms: dict[int, float] = {sp: 1.0}
        for (tau, k, _s), j in b.order.items():
            if tau + _sku(inp, k).lead_months == t:
                terms[j] = -_sku(inp, k).price_usd / 1e6
        for (tau, _s), j in b.hall_l.items():
            if tau == t:
                terms[j] = -fac["liquid_hall_usd_per_mw"] * fac["liquid_hall_mw"] / 1e6
        for (tau, _s), j in b.hall_a.items():
            if tau == t:
                terms[j] = -fac["air_hall_usd_per_mw"] * fac["air_hall_mw"] / 1e6
        for (tau, _s), j in b.turb.items():
            if tau == t:
                terms[j] = -fac["turbine_usd_per_mw"] * fac["turbine_unit_mw"] / 1e6
        for (tau, _s), j in b.batt.items():
            if tau == t:
                terms[j] = -fac["battery_usd_per_unit"] / 1e6
        for s in inp.sites:
            terms[b.e_grid[(t, s.name)]] = -inp.grid_price[t] * HOURS_PER_MONTH / 1e6
            terms[b.e_turb[(t, s.name)]] = -fac["turbine_fuel_usd_per_mwh"] * HOURS_PER_MONTH / 1e6
        m.row(terms, 0.0, 0.0, f"spend_def[{t}]")
        spent = m.var(f"spent[{t}]", -INF, INF)  # cumulative, month to month (sparse rows)
        row = {spent: 1.0, sp: -1.0}
        if t > 0:
            row[b.spent[t - 1]] = -1.0
        m.row(row, 0.0, 0.0, f"spent_def[{t}]")
        b.spent[t] = spent
        m.row(
            {spent: 1.0, _slack(b, "cash", t, "all", relax): -1.0},
            ub=inp.budget_cum_usd[t] / 1e6,
            name=f"cash[{t}]",
        )


def _cumulative(
    b: Built, name: str, site: str, fam: dict[tuple[int, str], int], lead: int, unit: float
) -> list[int]:
    """Capacity online by month: c[t] = c[t-1] + unit x started[t - lead] (sparse rows)."""
    m = b.model
    out: list[int] = []
    for t in range(b.inp.months):
        c = m.var(f"{name}[{t},{site}]")
        row = {c: 1.0}
        if t > 0:
            row[out[-1]] = -1.0
        j = fam.get((t - lead, site))
        if j is not None:
            row[j] = -unit
        m.row(row, 0.0, 0.0, f"{name}_def[{t},{site}]")
        out.append(c)
    return out


def _facilities(b: Built, sign: float, relax: str) -> None:
    inp, m, fac = b.inp, b.model, b.inp.facility
    del sign
    for s in inp.sites:
        turb_total: dict[int, float] = {}
        batt_total: dict[int, float] = {}
        lead = {
            k: int(fac[f"{k}_months"])
            for k in ("liquid_hall_build", "air_hall_build", "turbine_lead", "battery_lead")
        }
        cap_l = _cumulative(
            b, "liquid_mw", s.name, b.hall_l, lead["liquid_hall_build"], fac["liquid_hall_mw"]
        )
        cap_a = _cumulative(
            b, "air_mw", s.name, b.hall_a, lead["air_hall_build"], fac["air_hall_mw"]
        )
        turb_on = _cumulative(
            b, "turbine_mw", s.name, b.turb, lead["turbine_lead"], fac["turbine_unit_mw"]
        )
        batt_on = _cumulative(
            b, "battery_mw", s.name, b.batt, lead["battery_lead"], fac["battery_unit_mw"]
        )
        for t in range(inp.months):
            # Halls: liquid-only SKUs in liquid halls; air-capable ones in either (peak IT MW).
            liq = it_terms(b, t, s.name, "peak_kw", (1.0, 0.0))
            liq[cap_l[t]] = -1.0
            liq[_slack(b, "halls", t, f"{s.name}/liquid", relax)] = -1.0
            m.row(liq, ub=s.liquid_mw, name=f"hall_liquid[{t},{s.name}]")
            air: dict[int, float] = {}
            for k in inp.skus:
                ja = b.air.get((t, k.name, s.name))
                if ja is not None:
                    air[ja] = k.peak_kw / 1000.0
            air[cap_a[t]] = -1.0
            air[_slack(b, "halls", t, f"{s.name}/air", relax)] = -1.0
            m.row(air, ub=s.air_mw, name=f"hall_air[{t},{s.name}]")
            # Energy: the facility's busy draw comes from the grid tranche or the turbines.
            load = it_terms(b, t, s.name, "busy_kw", (s.liquid_pue, s.air_pue))
            row = {j: -a for j, a in load.items()}
            row[b.e_grid[(t, s.name)]] = 1.0
            row[b.e_turb[(t, s.name)]] = 1.0
            row[_slack(b, "power", t, s.name, relax)] = 1.0
            m.row(row, lb=0.0, name=f"power[{t},{s.name}]")
            tr = {b.e_turb[(t, s.name)]: 1.0, turb_on[t]: -1.0}
            m.row(tr, ub=s.turbine_fixed_mw[t], name=f"turbine[{t},{s.name}]")
            # Swing: peak minus busy, above what the grid accepts, is met by batteries; at each
            # hall type's PUE, as the power row (air-placed blocks were at the liquid PUE).
            sw = it_terms(b, t, s.name, "peak_kw", (s.liquid_pue, s.air_pue))
            for j, a in it_terms(b, t, s.name, "busy_kw", (s.liquid_pue, s.air_pue)).items():
                sw[j] = sw.get(j, 0.0) - a
            sw[batt_on[t]] = -1.0
            sw[_slack(b, "swing", t, s.name, relax)] = -1.0
            cap = s.battery_fixed_mw[t] + s.swing_allowance_mw
            m.row(sw, ub=cap, name=f"swing[{t},{s.name}]")
            if (t, s.name) in b.turb:
                turb_total[b.turb[(t, s.name)]] = fac["turbine_unit_mw"]
            batt_total[b.batt[(t, s.name)]] = fac["battery_unit_mw"]
        for fam in (b.hall_l, b.hall_a, b.turb, b.batt):
            seq = [fam[(t, s.name)] for t in range(inp.months) if (t, s.name) in fam]
            if seq:
                m.sequences.append(seq)
        for k in inp.skus:
            seq = [
                b.order[(t, k.name, s.name)]
                for t in range(inp.months)
                if (t, k.name, s.name) in b.order
            ]
            if seq:
                m.sequences.append(seq)
        if turb_total:
            m.row(turb_total, ub=s.turbine_max_mw, name=f"turbine_permit[{s.name}]")
            m.caps.append((turb_total, s.turbine_max_mw))
        m.row(batt_total, ub=s.battery_max_mw, name=f"battery_max[{s.name}]")
        m.caps.append((batt_total, s.battery_max_mw))


def goodput_terms(b: Built, t: int) -> dict[int, float]:
    inp = b.inp
    return {
        b.n[(t, k.name, s.name)]: inp.goodput[(t, k.name)] * k.h100e
        for k in inp.skus
        for s in inp.sites
    }


def _targets(b: Built, sign: float) -> None:
    inp, m = b.inp, b.model
    del sign
    if inp.power_target:
        month, mw = inp.power_target
        row: dict[int, float] = {}
        for s in inp.sites:
            for j, a in it_terms(b, month, s.name, "busy_kw", (s.liquid_pue, s.air_pue)).items():
                row[j] = row.get(j, 0.0) + a
        row[_slack(b, "power_target", month, "all", "")] = 1.0
        m.row(row, lb=mw, name="power_target")
    targets = sorted(inp.compute_targets)
    for i, (month, h) in enumerate(targets):
        end = targets[i + 1][0] if i + 1 < len(targets) else inp.months
        for t in range(month, end):
            row = goodput_terms(b, t)
            row[_slack(b, "compute", t, "all", "")] = 1.0
            m.row(row, lb=h, name=f"compute[{t}]")
    if inp.inhouse:
        share, start, pen = inp.inhouse
        for t in range(start, inp.months):
            row = {}
            for k in inp.skus:
                for s in inp.sites:
                    a = k.busy_kw / 1000.0 * ((1.0 if k.inhouse else 0.0) - share)
                    row[b.n[(t, k.name, s.name)]] = a
            row[_slack(b, "inhouse", t, "all", "", per_unit=pen / 1e6 or 1e-9)] = 1.0
            m.row(row, lb=0.0, name=f"inhouse[{t}]")
    if inp.flagship:
        _flagship(b)


def _flagship(b: Built) -> None:
    """One fabric family at one site reaches the flagship size: a binary picks the pair."""
    inp, m = b.inp, b.model
    assert inp.flagship is not None
    size, start = inp.flagship
    fabrics = sorted({k.fabric for k in inp.skus})
    for f in fabrics:
        for s in inp.sites:
            b.flag_z[(f, s.name)] = m.var(f"flagship[{f},{s.name}]", 0, 1, 0.0, integer=True)
    fabric_terms = {
        (f, s.name): {
            b.n[(start, k.name, s.name)]: k.h100e * inp.goodput[(start, k.name)]
            for k in inp.skus
            if k.fabric == f
        }
        for f in fabrics
        for s in inp.sites
    }
    m.pick_one.append([(z, fabric_terms[key]) for key, z in b.flag_z.items()])
    # At least one pick (not exactly one): a second pick only adds rows to meet, and a
    # rounded-up warm start stays feasible.
    m.row(dict.fromkeys(b.flag_z.values(), 1.0), lb=1.0, name="flagship_pick")
    for t in range(start, inp.months):
        sl = _slack(b, "flagship", t, "all", "")
        for (f, site), z in b.flag_z.items():
            g = inp.flagship_goodput.get(t)
            row = {
                b.n[(t, k.name, site)]: k.h100e * (inp.goodput[(t, k.name)] if g is None else g)
                for k in inp.skus
                if k.fabric == f
            }
            row[z] = -size
            row[sl] = 1.0
            m.row(row, lb=0.0, name=f"flagship[{t},{f},{site}]")
