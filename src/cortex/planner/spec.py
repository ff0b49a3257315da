"""Plan files (`cortex plan PLAN.yaml`): the pydantic schema. Every field is bounded; the checks
that need the catalogs (unknown SKU, lead time past the horizon, a power ramp that falls without
a retirement) live in `inputs.py`, which turns a valid file into arrays for the model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# At most 1e15 (dollars: ten times the world's yearly output; MW, H100e: far past any plan):
# HiGHS reads a coefficient of 1e20 as infinite, and a price of 1e308 made it give up on the
# model ("Empty") while the plan printed a table of zeros and exited 0.
BIG = 1e15
NonNeg = Annotated[float, Field(ge=0, le=BIG, allow_inf_nan=False)]
Pos = Annotated[float, Field(gt=0, le=BIG, allow_inf_nan=False)]
Month = Annotated[int, Field(ge=0, le=600, strict=True)]
Count = Annotated[int, Field(ge=0, le=10_000_000, strict=True)]
# true or false only: a lax bool also takes "yes", "off" or 1 (the loader keeps YAML 1.1's
# yes/no/on/off as strings, so they are refused here by name instead of read as a guess).
Flag = Annotated[bool, Field(strict=True)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SkuOverride(_Strict):
    """Per-SKU changes to the shipped catalog (planner/data/skus.csv)."""

    price_usd: NonNeg | None = None
    busy_kw: Pos | None = None
    peak_kw: Pos | None = None
    speed_scale: Pos | None = None
    lead_months: Month | None = None
    supply_blocks_per_month: Count | None = None
    available_month: Month | None = Field(
        default=None, description="first plan month a block can arrive (overrides `available`)"
    )
    life_months: Annotated[int, Field(ge=1, le=600, strict=True)] | None = None


class RampStep(_Strict):
    """Power in force at a site from `month` on; omitted fields keep their previous level.
    A level may fall only on a step that names the retirement (a PPA ending, a turbine lease)."""

    month: Month
    grid_mw: NonNeg | None = None
    turbine_mw: NonNeg | None = None
    battery_mw: NonNeg | None = None
    retirement: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class SiteSpec(_Strict):
    name: Name
    liquid_mw: NonNeg = Field(default=0.0, description="existing liquid-cooled hall IT capacity")
    air_mw: NonNeg = Field(default=0.0, description="existing air-cooled hall IT capacity")
    liquid_pue: Annotated[float, Field(ge=1.0, le=3.0)] | None = None
    air_pue: Annotated[float, Field(ge=1.0, le=3.0)] | None = None
    power_ramp: Annotated[list[RampStep], Field(min_length=1, max_length=600)]
    turbine_max_mw: NonNeg = Field(default=0.0, description="on-site generation the site permits")
    battery_max_mw: NonNeg = 1000.0
    swing_allowance_mw: NonNeg = Field(
        default=0.0, description="peak-minus-average swing the grid accepts without batteries"
    )
    max_halls_per_month: Annotated[int, Field(ge=0, le=100, strict=True)] = 2
    allow_air_halls: Flag = True


class StartFleet(_Strict):
    """The fleet on day one: a preset (or fleet file) placed at one site, flavors mapped to SKUs."""

    preset: Annotated[str, Field(min_length=1, max_length=500)]
    site: Name
    sku_by_flavor: dict[str, Name] = Field(
        default_factory=lambda: {"H100-SXM5": "H100", "H200-SXM": "H200"}
    )
    age_months: Month = 0


class BudgetStep(_Strict):
    month: Month
    usd_per_month: NonNeg


class Budget(_Strict):
    """Cash available: `initial_usd` at month 0, then `usd_per_month` from each step on."""

    initial_usd: NonNeg = 0.0
    steps: Annotated[list[BudgetStep], Field(min_length=1, max_length=600)]


class ComputeTarget(_Strict):
    month: Month
    h100e: Pos = Field(description="goodput-compute in H100-equivalents, from `month` on")


class PowerTarget(_Strict):
    month: Month
    mw: Pos = Field(description="facility draw (busy) reached by `month`, all sites together")


class InHouse(_Strict):
    """Soft share of in-house accelerators (by IT power), penalized per MW-month short."""

    share: Annotated[float, Field(ge=0, le=1)] = 0.5
    from_month: Month = 12
    penalty_usd_per_mw_month: NonNeg = 2_000_000.0


class Flagship(_Strict):
    """The flagship job needs one fabric (one SKU family at one site) this large."""

    h100e: Pos
    from_month: Month = 12


class Scenario(_Strict):
    name: Name
    probability: Annotated[float, Field(gt=0, le=1)]
    delivery_slip_months: Month = 0
    inhouse_delay_months: Month = 0
    turbine_delay_months: Month = 0
    grid_delay_months: Month = 0
    power_price_scale: Annotated[float, Field(gt=0, le=100)] = 1.0


class TwinLoop(_Strict):
    """Twin in the loop: short `cortex sim` runs of scaled-down planned fleets."""

    checkpoints: Annotated[list[Month], Field(min_length=1, max_length=12)] = [6, 18, 30]
    scale: Annotated[int, Field(ge=1, le=100_000, strict=True)] = 50
    days: Annotated[float, Field(gt=0, le=60)] = 3.0
    seeds: Annotated[int, Field(ge=1, le=16, strict=True)] = 2
    tolerance: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.02, description="converged when no factor moves more than this"
    )
    policy: Annotated[str, Field(min_length=1, max_length=32)] = "hetero"
    fleet: Literal["mixed", "per_sku"] = Field(
        default="mixed",
        description="mixed: one run per checkpoint of every planned SKU together (factors per "
        "flavor); per_sku: one run per SKU alone",
    )
    warm_start: Flag = Field(
        default=True,
        description="synthetic runs start in steady state, as `cortex sim` does by default",
    )
    max_iterations: Annotated[int, Field(ge=1, le=20, strict=True)] = 6
    workers: Annotated[int, Field(ge=1, le=64, strict=True)] = 2
    seed: Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)] = 0


class PlanSpec(_Strict):
    name: Name
    description: Annotated[str, Field(max_length=2000)] = ""
    start: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = "2024-09"
    horizon_months: Annotated[int, Field(ge=1, le=120, strict=True)] = 36
    mode: Literal["max_compute", "min_cost"] = "max_compute"
    lambda_h100e_months_per_musd: Pos = Field(
        default=1000.0, description="max_compute: H100e-months worth one million dollars"
    )
    frontier_lambdas: Annotated[list[Pos], Field(max_length=20)] = [400, 700, 1000, 1500, 2500]
    workload_mix: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: {"fsd-video": 0.45, "optimus-policy": 0.35, "llm": 0.20}
    )
    goodput_factor: Annotated[float, Field(gt=0, le=1)] = Field(
        default=0.9, description="before the twin refits it: Llama 3 >90% effective training time"
    )
    facility: dict[Name, NonNeg] = Field(
        default_factory=dict, description="overrides of planner/data/facility.csv by name"
    )
    skus: Annotated[list[Name], Field(min_length=1, max_length=20)]
    sku_overrides: dict[Name, SkuOverride] = Field(default_factory=dict)
    start_fleet: StartFleet | None = None
    sites: Annotated[list[SiteSpec], Field(min_length=1, max_length=20)]
    budget: Budget
    first_stage_months: Month = 12
    power_target: PowerTarget | None = None
    compute_targets: Annotated[list[ComputeTarget], Field(max_length=120)] = []
    inhouse: InHouse | None = None
    flagship: Flagship | None = None
    scenarios: Annotated[list[Scenario], Field(max_length=50)] = []
    twin: TwinLoop = TwinLoop()
    time_limit_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    mip_gap: Annotated[float, Field(ge=0, le=0.5)] = Field(
        default=0.01, description="relative gap; also times the whole budget as an absolute gap"
    )

    # Field validators, not one model validator, so that the error names the field.
    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, sites: list[SiteSpec]) -> list[SiteSpec]:
        names = [s.name for s in sites]
        if len(set(names)) != len(names):
            raise ValueError("site names must be unique")
        return sites

    @field_validator("workload_mix")
    @classmethod
    def _mix_sums_to_1(cls, mix: dict[str, float]) -> dict[str, float]:
        if abs(sum(mix.values()) - 1.0) > 1e-6:
            raise ValueError(f"shares must sum to 1, got {sum(mix.values()):g}")
        return mix

    @field_validator("scenarios")
    @classmethod
    def _probabilities_sum_to_1(cls, scenarios: list[Scenario]) -> list[Scenario]:
        total = sum(s.probability for s in scenarios)
        if scenarios and abs(total - 1.0) > 1e-6:
            raise ValueError(f"probabilities must sum to 1, got {total:g}")
        return scenarios

    @model_validator(mode="after")
    def _consistent(self) -> PlanSpec:
        if self.mode == "min_cost" and not (self.compute_targets or self.power_target):
            raise ValueError("min_cost needs compute_targets or a power_target")
        return self
