"""The throughput-versus-power-cap curve and per-kind draw (data/cap_curve.csv, draw_by_kind.csv).

A cap is expressed against the job's uncapped mean draw, the form that carries across chips
(power-cap/README.md): a job already drawing well under its cap loses nothing.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from cortex.errors import InputError, columns_once, read_text
from cortex.power.datafile import read_rows


def _rows(text: str, source: str = "") -> list[dict[str, str]]:
    reader = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    columns_once(reader.fieldnames, source)
    return list(reader)


def _float(source: str, field: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise InputError(source, field, f"not a number: {raw!r}") from None


@dataclass(frozen=True)
class CapCurve:
    """Per flavor (or "*" for all): breakpoints of cap/draw -> throughput kept, non-decreasing."""

    points: dict[str, tuple[tuple[float, ...], tuple[float, ...]]]
    source: str = "cortex.power/data/cap_curve.csv"

    @classmethod
    def parse(cls, text: str, source: str) -> CapCurve:
        pts: dict[str, list[tuple[float, float]]] = {}
        for i, row in enumerate(_rows(text, source)):
            fl = (row.get("flavor") or "").strip()
            if not fl:
                raise InputError(source, f"row {i + 1}.flavor", "missing")
            x = _float(source, f"row {i + 1}.cap_over_draw", row.get("cap_over_draw") or "")
            y = _float(source, f"row {i + 1}.throughput_kept", row.get("throughput_kept") or "")
            if not (math.isfinite(x) and x > 0):  # NaN passed `x <= 0`
                raise InputError(
                    source, f"row {i + 1}.cap_over_draw", f"must be finite and positive, got {x}"
                )
            if not 0 <= y <= 1:
                raise InputError(source, f"row {i + 1}.throughput_kept", "must be within [0, 1]")
            pts.setdefault(fl, []).append((x, y))
        if not pts:
            raise InputError(source, "<rows>", "no curve points")
        if "*" not in pts:  # `kept` falls back on it for any flavor without rows (KeyError)
            raise InputError(
                source, "flavor", "no '*' rows: the curve for flavors without rows of their own"
            )
        out: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
        for fl, p in pts.items():
            p.sort()
            xs = tuple(x for x, _ in p)
            ys = tuple(y for _, y in p)
            if len(set(xs)) != len(xs):
                raise InputError(source, f"{fl}.cap_over_draw", "repeated breakpoint")
            if any(b < a for a, b in itertools.pairwise(ys)):
                raise InputError(
                    source,
                    f"{fl}.throughput_kept",
                    "not monotone: throughput kept must not fall as the cap rises",
                )
            out[fl] = (xs, ys)
        return cls(out, source)

    @classmethod
    def load(cls, path: str | Path | None = None) -> CapCurve:
        if path is None:
            return _default_curve()
        p = Path(path)
        text = read_text(p)
        return cls.parse(text, str(p))

    def kept(self, flavor: str, cap_over_draw: float) -> float:
        """Throughput kept at a cap of `cap_over_draw` times the uncapped draw; linear between
        breakpoints, flat beyond the ends (1.0 once the cap clears the draw)."""
        xs, ys = self.points.get(flavor) or self.points["*"]
        return float(np.interp(cap_over_draw, xs, ys))


@cache
def _default_curve() -> CapCurve:
    text = resources.files("cortex.power").joinpath("data/cap_curve.csv").read_text()
    return CapCurve.parse(text, "cortex.power/data/cap_curve.csv")


@cache
def draw_fractions() -> dict[str, float]:
    """Mean training draw as a fraction of TDP, per workload kind (data/draw_by_kind.csv)."""
    return {r["kind"]: float(r["draw_frac_of_tdp"]) for r in read_rows("draw_by_kind.csv")}
