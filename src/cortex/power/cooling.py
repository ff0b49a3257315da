"""Facility power and cooling against outdoor temperature (data/cooling.csv).

Facility power is linear in IT power at a given temperature: a part that scales with the heat to
reject (worse when it is hot) plus a fixed part (UPS losses, lighting). So PUE rises both with
heat and at low load, as measured PUEs do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from cortex.power.datafile import read_rows


@dataclass(frozen=True)
class CoolingModel:
    pue: float  # the fleet's PUE at design temperature and full load
    design_temp_c: float
    pue_per_c: float
    fixed_frac: float
    cooling_rated_temp_c: float
    cooling_derate_per_c: float
    heat_ref_temp_c: float
    heat_loss_per_c: float

    @classmethod
    def for_pue(cls, pue: float) -> CoolingModel:
        return cls(pue=pue, **_params())

    def slope(self, temp_c: float) -> float:
        """d facility / d IT at this temperature (never below 1: heat must leave somehow)."""
        return max(1.0, self.pue - self.fixed_frac + self.pue_per_c * (temp_c - self.design_temp_c))

    def facility_terms(self, nameplate_it_w: float, temp_c: float) -> tuple[float, float]:
        """(slope, fixed watts): facility watts are `it_w * slope + fixed` (kept by callers
        that read many draws at one temperature, drive/power_books.py)."""
        return self.slope(temp_c), self.fixed_frac * nameplate_it_w

    def facility_w(self, it_w: float, nameplate_it_w: float, temp_c: float) -> float:
        slope, fixed_w = self.facility_terms(nameplate_it_w, temp_c)
        return it_w * slope + fixed_w

    def it_budget_w(self, facility_cap_w: float, nameplate_it_w: float, temp_c: float) -> float:
        """The most IT power that keeps the facility under `facility_cap_w` at `temp_c`."""
        return (facility_cap_w - self.fixed_frac * nameplate_it_w) / self.slope(temp_c)

    def cooling_capacity_w(self, rated_w: float, temp_c: float) -> float:
        """Heat a hall's plant can reject at this outdoor temperature."""
        over = max(0.0, temp_c - self.cooling_rated_temp_c)
        return rated_w * max(0.0, 1.0 - self.cooling_derate_per_c * over)

    def speed(self, temp_c: float) -> float:
        """Throughput factor from heat (the Llama 3 diurnal swing)."""
        return 1.0 - self.heat_loss_per_c * max(0.0, temp_c - self.heat_ref_temp_c)


@cache
def _params() -> dict[str, float]:
    return {r["name"]: float(r["value"]) for r in read_rows("cooling.csv")}
