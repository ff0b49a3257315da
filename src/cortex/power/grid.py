"""Grid limits and Megapack units (data/grid.csv)."""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources


@cache
def grid_params() -> dict[str, float]:
    text = resources.files("cortex.power").joinpath("data/grid.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {r["name"]: float(r["value"]) for r in rows}
