"""Resolve a plan file against the shipped catalogs into per-month arrays for the model.

Everything the MILP reads is here, in plain numbers, so scenarios are `dataclasses.replace`
calls on an `Inputs` and the model builder never looks at YAML.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cortex import yamlfiles
from cortex.errors import InputError, from_validation_error, read_text
from cortex.planner.spec import PlanSpec, SiteSpec
from cortex.workload.throughput import ThroughputTable


@dataclass(frozen=True)
class Sku:
    """One orderable block and its per-block figures (after the plan's overrides)."""

    name: str
    flavor: str
    block_name: str
    gpus: int
    price_usd: float
    busy_kw: float
    peak_kw: float
    liquid_only: bool
    lead_months: int
    supply_per_month: int
    available_month: int
    life_months: int
    fabric: str
    inhouse: bool
    h100e: float  # H100-equivalents per block under the plan's workload mix
    source: str
    gpus_per_node: int = 8
    nodes_per_pod: int = 32
    nodes_per_rack: int = 4


@dataclass(frozen=True)
class Site:
    name: str
    liquid_mw: float
    air_mw: float
    liquid_pue: float
    air_pue: float
    grid_mw: tuple[float, ...]  # per month
    turbine_fixed_mw: tuple[float, ...]
    battery_fixed_mw: tuple[float, ...]
    turbine_max_mw: float
    battery_max_mw: float
    swing_allowance_mw: float
    max_halls_per_month: int
    allow_air_halls: bool


@dataclass(frozen=True)
class Inputs:
    """A plan resolved to numbers. Months run 0..T-1 from `start`."""

    name: str
    start: str
    months: int
    mode: str
    lam: float
    skus: tuple[Sku, ...]
    sites: tuple[Site, ...]
    initial: dict[tuple[str, str], int]  # (sku, site) -> blocks installed at month 0
    initial_age: int
    facility: dict[str, float]
    grid_price: tuple[float, ...]
    budget_cum_usd: tuple[float, ...]  # cash available by the end of each month
    goodput: dict[tuple[int, str], float]  # (month, sku) -> goodput factor
    power_target: tuple[int, float] | None
    compute_targets: tuple[tuple[int, float], ...]
    inhouse: tuple[float, int, float] | None  # share, from month, penalty $/MW-month
    flagship: tuple[float, int] | None
    first_stage_months: int
    time_limit_s: float
    mip_gap: float
    notes: list[str] = field(default_factory=list)
    # month -> goodput factor of the flagship job (its own scale); empty: the SKUs' factors
    flagship_goodput: dict[int, float] = field(default_factory=dict)
    start_preset: str = ""  # start_fleet.preset, "" without one

    def with_goodput(self, goodput: dict[tuple[int, str], float]) -> Inputs:
        return replace(self, goodput=goodput)


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("cortex.planner").joinpath(f"data/{name}").read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return list(csv.DictReader(lines))


@cache
def sku_catalog() -> dict[str, dict[str, str]]:
    """planner/data/skus.csv keyed by SKU name."""
    return {r["sku"]: r for r in _rows("skus.csv")}


@cache
def facility_defaults() -> dict[str, float]:
    """planner/data/facility.csv as name -> value."""
    return {r["name"]: float(r["value"]) for r in _rows("facility.csv")}


def facility_value_error(key: str, v: float) -> str:
    """Why an override of facility.csv's `key` cannot be used, or "". The schema bounds every
    value to [0, 1e15] only, and each kind of value needs more: a hall life of 0 divided by
    zero (a traceback), a PUE of 0 drew no power, a unit of 0 MW bought nothing, and a build
    or lead time of 2.5 months was cut to 2 in the model but read as 3 in the report."""
    if key.endswith("_pue"):
        return "" if 1.0 <= v <= 3.0 else f"a PUE is between 1 and 3, got {v:g}"
    if key.endswith("_months"):
        low = 1 if key.endswith("_life_months") else 0
        if v != int(v) or not low <= v <= 600:
            return f"whole months from {low} to 600, got {v:g}"
    if key.endswith("_mw") and v <= 0:  # a hall's or a unit's size
        return f"a size in MW above 0, got {v:g}"
    if key == "discount_rate_per_year" and v > 1:
        return f"a fraction per year (0.10 is 10%), at most 1, got {v:g}"
    return ""


def month_index(start: str, ym: str) -> int:
    """Months from `start` (YYYY-MM) to `ym` (YYYY-MM); negative when earlier."""
    y0, m0 = (int(x) for x in start.split("-"))
    y1, m1 = (int(x) for x in ym.split("-"))
    return (y1 - y0) * 12 + (m1 - m0)


def month_label(start: str, t: int) -> str:
    y0, m0 = (int(x) for x in start.split("-"))
    k = y0 * 12 + (m0 - 1) + t
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


def load_plan(path: str | Path) -> tuple[PlanSpec, Inputs]:
    """Read, validate and resolve a plan file; bad input raises InputError naming the field."""
    spec = load_spec(path)
    return spec, resolve(spec, str(path))


def load_spec(path: str | Path) -> PlanSpec:
    source = str(path)
    text = read_text(path, source)
    try:
        data = yamlfiles.load(text)  # YAML 1.2's booleans: `on` is not True
    except yaml.YAMLError as err:
        raise InputError(source, "<yaml>", str(err).splitlines()[0]) from None
    return parse_plan(data, source)


def parse_plan(data: Any, source: str) -> PlanSpec:
    if not isinstance(data, dict):
        raise InputError(source, "<root>", "a plan file must be a mapping")
    try:
        return PlanSpec.model_validate(data)
    except ValidationError as err:
        raise from_validation_error(source, err) from None


def _skus(spec: PlanSpec, source: str) -> tuple[Sku, ...]:
    cat = sku_catalog()
    table = ThroughputTable.load()
    for kind in spec.workload_mix:
        if kind not in table.kinds():
            known = ", ".join(table.kinds())
            raise InputError(source, f"workload_mix.{kind}", f"unknown kind (known: {known})")
    for i, name in enumerate(spec.skus):
        if name not in cat:
            raise InputError(
                source, f"skus[{i}]", f"unknown SKU {name!r} (known: {', '.join(cat)})"
            )
    for name in spec.sku_overrides:
        if name not in spec.skus:
            raise InputError(source, f"sku_overrides.{name}", "not one of this plan's skus")
    out = []
    for i, name in enumerate(spec.skus):
        if name in spec.skus[:i]:
            raise InputError(source, f"skus[{i}]", f"SKU {name!r} listed twice")
        row = cat[name]
        ov = spec.sku_overrides.get(name)
        speed_scale = float(row["speed_scale"])
        if ov and ov.speed_scale is not None:
            speed_scale = ov.speed_scale
        speed = sum(share * table.speed(k, row["flavor"]) for k, share in spec.workload_mix.items())
        avail = max(month_index(spec.start, row["available"]), 0)

        def pick(key: str, default: float, ov: Any = ov) -> Any:
            v = getattr(ov, key, None) if ov else None
            return default if v is None else v

        lead = int(pick("lead_months", int(row["lead_months"])))
        where = f"sku_overrides.{name}.lead_months" if ov and ov.lead_months else f"skus[{i}]"
        if lead >= spec.horizon_months:
            raise InputError(
                source,
                where,
                f"lead time {lead} months is past the {spec.horizon_months}-month horizon",
            )
        available = int(pick("available_month", avail))
        in_start = spec.start_fleet is not None and name in spec.start_fleet.sku_by_flavor.values()
        if available >= spec.horizon_months and not in_start:  # as a lead time past it: never
            given = ov is not None and ov.available_month is not None
            raise InputError(
                source,
                f"sku_overrides.{name}.available_month" if given else f"skus[{i}]",
                f"first delivery at month {available} "
                f"({month_label(spec.start, available)}) is past the "
                f"{spec.horizon_months}-month horizon: no block could arrive",
            )
        busy = float(pick("busy_kw", float(row["busy_kw"])))
        peak = float(pick("peak_kw", float(row["peak_kw"])))
        if peak < busy:
            raise InputError(source, f"sku_overrides.{name}.peak_kw", "below busy_kw")
        gpus = int(row["gpus_per_block"])
        out.append(
            Sku(
                name=name,
                flavor=row["flavor"],
                block_name=row["block_name"],
                gpus=gpus,
                price_usd=float(pick("price_usd", float(row["price_usd"]))),
                busy_kw=busy,
                peak_kw=peak,
                liquid_only=row["cooling"] == "liquid",
                lead_months=lead,
                supply_per_month=int(
                    pick("supply_blocks_per_month", int(row["supply_blocks_per_month"]))
                ),
                available_month=available,
                life_months=int(pick("life_months", int(row["life_months"]))),
                fabric=row["fabric"],
                inhouse=row["inhouse"] == "true",
                h100e=gpus * speed * speed_scale,
                source=row["source"],
                gpus_per_node=int(row["gpus_per_node"]),
                nodes_per_pod=int(row["nodes_per_pod"]),
                nodes_per_rack=int(row["nodes_per_rack"]),
            )
        )
    return tuple(out)


def _ramp(site: SiteSpec, i: int, months: int, source: str) -> tuple[list[float], ...]:
    levels = {"grid_mw": 0.0, "turbine_mw": 0.0, "battery_mw": 0.0}
    series: dict[str, list[float]] = {k: [0.0] * months for k in levels}
    steps = sorted(enumerate(site.power_ramp), key=lambda p: p[1].month)
    by_month: dict[int, int] = {}
    for j, step in steps:
        if step.month in by_month:
            raise InputError(
                source, f"sites[{i}].power_ramp[{j}].month", f"month {step.month} given twice"
            )
        by_month[step.month] = j
    cursor = 0
    for j, step in steps:
        for t in range(cursor, min(step.month, months)):
            for k, v in levels.items():
                series[k][t] = v
        for k, level in list(levels.items()):
            new = getattr(step, k)
            if new is None:
                continue
            if new < level - 1e-9 and step.retirement is None and step.month > 0:
                raise InputError(
                    source,
                    f"sites[{i}].power_ramp[{j}].{k}",
                    f"falls from {level:g} to {new:g} MW at month {step.month} "
                    "without a retirement",
                )
            levels[k] = new
        cursor = max(cursor, step.month)
    for t in range(min(cursor, months), months):
        for k, v in levels.items():
            series[k][t] = v
    return series["grid_mw"], series["turbine_mw"], series["battery_mw"]


def _budget(spec: PlanSpec) -> tuple[float, ...]:
    steps = sorted(spec.budget.steps, key=lambda s: s.month)
    cum, rate, out = spec.budget.initial_usd, 0.0, []
    k = 0
    for t in range(spec.horizon_months):
        while k < len(steps) and steps[k].month <= t:
            rate = steps[k].usd_per_month
            k += 1
        cum += rate
        out.append(cum)
    return tuple(out)


def _start_fleet(spec: PlanSpec, skus: tuple[Sku, ...], source: str) -> dict[tuple[str, str], int]:
    if spec.start_fleet is None:
        return {}
    from cortex.fleet.spec import load_fleet_spec

    sf = spec.start_fleet
    if sf.site not in {s.name for s in spec.sites}:
        raise InputError(source, "start_fleet.site", f"no site named {sf.site!r}")
    try:
        fleet = load_fleet_spec(sf.preset)
    except InputError as err:  # named as the plan's field, not as a file of its own
        raise InputError(
            source, "start_fleet.preset", f"{sf.preset!r}: {err.field}: {err.reason}"
        ) from None
    by_name = {s.name: s for s in skus}
    flavors = {g.flavor for hall in fleet.halls for g in hall.groups}
    for flavor, mapped in sf.sku_by_flavor.items():
        where = f"start_fleet.sku_by_flavor.{flavor}"
        # a mapping the file gives that nothing reads (a flavor's typo); the default names
        # both Hopper flavors, for presets that have either
        if flavor not in flavors and "sku_by_flavor" in sf.model_fields_set:
            raise InputError(source, where, f"{sf.preset} has no {flavor} GPUs")
        if flavor in flavors and mapped in by_name and by_name[mapped].flavor != flavor:
            # 50,000 H100 mapped to INHOUSE became 167 cabinets of 300 Dojo D1: chips of one
            # kind counted as another's
            raise InputError(
                source, where, f"SKU {mapped} is {by_name[mapped].flavor} blocks, not {flavor}"
            )
    gpus: dict[str, int] = {}
    for hall in fleet.halls:
        for g in hall.groups:
            sku = sf.sku_by_flavor.get(g.flavor)
            if sku is None or sku not in by_name:
                raise InputError(
                    source,
                    "start_fleet.sku_by_flavor",
                    f"flavor {g.flavor} of {sf.preset} maps to no SKU of this plan",
                )
            gpus[sku] = gpus.get(sku, 0) + g.nodes * g.gpus_per_node
    for k, n in gpus.items():  # rounded to whole blocks: under half a block was none at all
        if round(n / by_name[k].gpus) == 0:
            raise InputError(
                source,
                "start_fleet.preset",
                f"{sf.preset}'s {n:,} GPUs of {k} are under half a {k} block "
                f"({by_name[k].gpus} GPUs): the plan would start with none",
            )
    return {(k, sf.site): round(n / by_name[k].gpus) for k, n in gpus.items()}


def resolve(spec: PlanSpec, source: str) -> Inputs:
    """Check a parsed plan against the catalogs and turn it into per-month numbers."""
    n_months = spec.horizon_months
    fac = dict(facility_defaults())
    for key, v in spec.facility.items():
        if key not in fac:
            raise InputError(source, f"facility.{key}", f"unknown (known: {', '.join(fac)})")
        bad = facility_value_error(key, v)
        if bad:
            raise InputError(source, f"facility.{key}", bad)
        fac[key] = v
    skus = _skus(spec, source)
    sites = []
    for i, s in enumerate(spec.sites):
        grid, turb, batt = _ramp(s, i, n_months, source)
        sites.append(
            Site(
                name=s.name,
                liquid_mw=s.liquid_mw,
                air_mw=s.air_mw,
                liquid_pue=s.liquid_pue or fac["liquid_pue"],
                air_pue=s.air_pue or fac["air_pue"],
                grid_mw=tuple(grid),
                turbine_fixed_mw=tuple(turb),
                battery_fixed_mw=tuple(batt),
                turbine_max_mw=s.turbine_max_mw,
                battery_max_mw=s.battery_max_mw,
                swing_allowance_mw=s.swing_allowance_mw,
                max_halls_per_month=s.max_halls_per_month,
                allow_air_halls=s.allow_air_halls,
            )
        )
    for name, where, m in (
        ("power_target", "power_target.month", spec.power_target),
        ("flagship", "flagship.from_month", spec.flagship),
        ("inhouse", "inhouse.from_month", spec.inhouse),
    ):
        month = getattr(m, "month", None) if name == "power_target" else getattr(m, "from_month", 0)
        if m is not None and month is not None and month >= n_months:
            raise InputError(source, where, f"month {month} is past the {n_months}-month horizon")
    seen: set[int] = set()
    for j, step in enumerate(spec.budget.steps):  # as for a power ramp: which rate was meant?
        if step.month in seen:
            raise InputError(source, f"budget.steps[{j}].month", f"month {step.month} given twice")
        seen.add(step.month)
    months_given: set[int] = set()
    for j, ct in enumerate(spec.compute_targets):
        if ct.month >= n_months:
            raise InputError(
                source, f"compute_targets[{j}].month", f"month {ct.month} is past the horizon"
            )
        if ct.month in months_given:  # the model kept the larger and dropped the other
            raise InputError(source, f"compute_targets[{j}].month", f"month {ct.month} given twice")
        months_given.add(ct.month)
    if spec.inhouse is not None and spec.inhouse.share > 0 and not any(k.inhouse for k in skus):
        # no block could count toward the share, so every block bought widened its gap: the
        # plan bought nothing at all
        inhouse = [name for name, row in sku_catalog().items() if row["inhouse"] == "true"]
        raise InputError(
            source,
            "inhouse.share",
            f"none of this plan's skus is in-house ({', '.join(inhouse)}): the share cannot "
            "be met by anything",
        )
    initial = _start_fleet(spec, skus, source)
    goodput = {(t, k.name): spec.goodput_factor for t in range(n_months) for k in skus}
    inh = spec.inhouse
    return Inputs(
        name=spec.name,
        start=spec.start,
        months=n_months,
        mode=spec.mode,
        lam=spec.lambda_h100e_months_per_musd,
        skus=skus,
        sites=tuple(sites),
        initial=initial,
        initial_age=spec.start_fleet.age_months if spec.start_fleet else 0,
        facility=fac,
        grid_price=tuple(fac["grid_usd_per_mwh"] for _ in range(n_months)),
        budget_cum_usd=_budget(spec),
        goodput=goodput,
        power_target=(spec.power_target.month, spec.power_target.mw) if spec.power_target else None,
        compute_targets=tuple((c.month, c.h100e) for c in spec.compute_targets),
        inhouse=(inh.share, inh.from_month, inh.penalty_usd_per_mw_month) if inh else None,
        flagship=(spec.flagship.h100e, spec.flagship.from_month) if spec.flagship else None,
        first_stage_months=spec.first_stage_months,
        start_preset=spec.start_fleet.preset if spec.start_fleet else "",
        time_limit_s=spec.time_limit_s,
        mip_gap=spec.mip_gap,
    )
