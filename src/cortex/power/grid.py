"""Grid-side limits and battery dispatch settings (data/grid.csv; battery units are in
data/battery_units.csv, shared with the swing tool)."""

from __future__ import annotations

from functools import cache

from cortex.power.datafile import read_rows


@cache
def grid_params() -> dict[str, float]:
    return {r["name"]: float(r["value"]) for r in read_rows("grid.csv")}
