"""Throughput table: how fast each workload kind runs on each flavor, relative to H100-SXM5.

A job's `work_s` is measured on the reference flavor (H100-SXM5) at its requested gang size, so
a run on flavor F takes `work_s / speed(kind, F)` seconds. The shipped table lives in
`data/throughput.csv` with columns `kind,flavor,speed,confidence,source`; every row names its
source or the rule that derived it. Rules used there [D]:

- H100-SXM5 is 1.0 for every kind, by definition.
- NVIDIA flavors: a roofline mix `eff / ((1 - m) / C + m / B)`, where C is the dense bf16
  TFLOPS ratio to H100, B the HBM bandwidth ratio (3.35 TB/s on H100), m the memory-bound
  share of a step for the kind, and eff a software and communication efficiency per flavor.
  H200 thus gains only on memory-bound kinds (4.8 vs 3.35 TB/s, same compute).
- Dojo-D1, per chip: the TFLOPS ratio 362/989 times a penalty per kind.

The factors m, eff and the Dojo penalties are judgement, not measurements: treat every derived
row as low confidence until a benchmark replaces it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from cortex.errors import InputError

REFERENCE_FLAVOR = "H100-SXM5"
"""The flavor on which every job's `work_s` is measured; its speed is 1.0 for every kind."""

_COLUMNS = ("kind", "flavor", "speed", "confidence", "source")


@dataclass(frozen=True, slots=True)
class ThroughputRow:
    """One (kind, flavor) entry with the evidence behind it."""

    kind: str
    flavor: str
    speed: float
    confidence: str
    source: str


class ThroughputTable:
    """Speed of each workload kind on each flavor relative to the reference flavor.

    Lookups are one dict access: the simulator calls `speed` at every job start.
    """

    __slots__ = ("_flavors", "_kinds", "_rows", "_speed")

    def __init__(self, rows: list[ThroughputRow]) -> None:
        self._rows = {(r.kind, r.flavor): r for r in rows}
        self._speed = {key: r.speed for key, r in self._rows.items()}
        self._kinds = tuple(dict.fromkeys(r.kind for r in rows))
        self._flavors = tuple(dict.fromkeys(r.flavor for r in rows))

    @classmethod
    def load(cls) -> ThroughputTable:
        """The shipped table (data/throughput.csv), parsed once and cached."""
        return _shipped()

    @classmethod
    def from_csv(cls, path: str | Path) -> ThroughputTable:
        """Read a table from a CSV file; raise InputError naming the row and column."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as err:
            raise InputError(str(p), "<file>", err.strerror or str(err)) from None
        return cls.from_text(text, str(p))

    @classmethod
    def from_text(cls, text: str, source: str) -> ThroughputTable:
        """Parse CSV text. Every kind must have a row for every flavor, the reference flavor
        must be 1.0, speeds must be positive and finite, and each row must name a source."""
        reader = csv.DictReader(text.splitlines())
        header = reader.fieldnames or []
        for col in _COLUMNS:
            if col not in header:
                raise InputError(source, f"row 1: {col}", "required column missing")
        rows: list[ThroughputRow] = []
        seen: set[tuple[str, str]] = set()
        for rec in reader:
            line = reader.line_num
            vals = {}
            for col in _COLUMNS:
                raw = rec.get(col)
                if raw is None or not raw.strip():
                    raise InputError(source, f"row {line}: {col}", "missing value")
                vals[col] = raw.strip()
            try:
                speed = float(vals["speed"])
            except ValueError:
                raise InputError(
                    source, f"row {line}: speed", f"not a number: {vals['speed']!r}"
                ) from None
            if not math.isfinite(speed) or speed <= 0:
                raise InputError(source, f"row {line}: speed", "must be positive and finite")
            key = (vals["kind"], vals["flavor"])
            if key in seen:
                raise InputError(source, f"row {line}: flavor", f"duplicate entry for {key}")
            if vals["flavor"] == REFERENCE_FLAVOR and speed != 1.0:
                raise InputError(source, f"row {line}: speed", "reference flavor must be 1.0")
            seen.add(key)
            rows.append(ThroughputRow(key[0], key[1], speed, vals["confidence"], vals["source"]))
        table = cls(rows)
        for kind in table.kinds():
            for flavor in table.flavors():
                if (kind, flavor) not in seen:
                    raise InputError(source, "flavor", f"no row for kind {kind!r} on {flavor!r}")
        if rows and REFERENCE_FLAVOR not in table.flavors():
            raise InputError(source, "flavor", f"no rows for reference flavor {REFERENCE_FLAVOR}")
        return table

    def speed(self, kind: str, flavor: str) -> float:
        """Speed of `kind` on `flavor` relative to H100-SXM5; KeyError names what is unknown."""
        try:
            return self._speed[(kind, flavor)]
        except KeyError:
            raise KeyError(self._unknown(kind, flavor)) from None

    def row(self, kind: str, flavor: str) -> ThroughputRow:
        """The full entry (speed, confidence, source); KeyError as for `speed`."""
        try:
            return self._rows[(kind, flavor)]
        except KeyError:
            raise KeyError(self._unknown(kind, flavor)) from None

    def kinds(self) -> tuple[str, ...]:
        """Workload kinds in file order."""
        return self._kinds

    def flavors(self) -> tuple[str, ...]:
        """Flavors in file order."""
        return self._flavors

    def _unknown(self, kind: str, flavor: str) -> str:
        if kind not in self._kinds:
            return f"unknown workload kind {kind!r} (known: {', '.join(self._kinds)})"
        return f"no throughput for flavor {flavor!r} (known: {', '.join(self._flavors)})"


@cache
def _shipped() -> ThroughputTable:
    text = resources.files("cortex.workload").joinpath("data/throughput.csv").read_text()
    return ThroughputTable.from_text(text, "cortex/workload/data/throughput.csv")
