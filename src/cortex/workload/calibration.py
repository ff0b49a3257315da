"""Measured throughput and power of the training workloads per flavor (`data/calibration.csv`).

`throughput.csv` gives each kind's speed *relative* to H100-SXM5; this table gives the absolute
figures a real run measured: samples/s, step time, GPU power, peak memory and MFU, with the date
and device. `python -m cortex.calibrate` writes it. One flavor per kind is measured
(confidence `M`); the rows of the other flavors are derived from it (`D`) by the rule in their
`source`:

- samples_per_s and step_s scale by the throughput table's speed ratio of the two flavors;
- gpu_power_w scales by the catalog's busy_w ratio (fleet/data/accelerators.csv);
- mfu is recomputed from the derived samples/s and that flavor's dense bf16 peak;
- peak_mem_gb is carried over (same model and batch).

CPU smoke runs write confidence `smoke`; they test the script, and the shipped file must not
hold them. The shipped file may hold only the header: the H100 measurement is pending a session
with a GPU (docs/training.md).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from cortex.errors import InputError

COLUMNS = (
    "kind", "flavor", "samples_per_s", "step_s", "gpu_power_w", "peak_mem_gb", "mfu",
    "flops_per_sample", "config", "batch_size", "date", "device", "confidence", "source",
)  # fmt: skip
_NUMERIC = ("samples_per_s", "step_s", "gpu_power_w", "peak_mem_gb", "mfu", "flops_per_sample")
_OPTIONAL = ("gpu_power_w", "peak_mem_gb")  # empty where the device cannot report them (CPU)
CONFIDENCE = ("M", "D", "smoke")


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    kind: str
    flavor: str
    samples_per_s: float
    step_s: float
    gpu_power_w: float | None
    peak_mem_gb: float | None
    mfu: float
    flops_per_sample: float
    config: str
    batch_size: int
    date: str
    device: str
    confidence: str
    source: str

    def as_csv(self) -> dict[str, str]:
        out = {}
        for col in COLUMNS:
            v = getattr(self, col)
            out[col] = "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
        return out


class CalibrationTable:
    def __init__(self, rows: list[CalibrationRow]) -> None:
        self.rows = rows
        self._by_key = {(r.kind, r.flavor): r for r in rows}

    def get(self, kind: str, flavor: str) -> CalibrationRow | None:
        return self._by_key.get((kind, flavor))

    @classmethod
    def load(cls) -> CalibrationTable:
        """The shipped table (data/calibration.csv)."""
        return _shipped()

    @classmethod
    def from_csv(cls, path: str | Path) -> CalibrationTable:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as err:
            raise InputError(str(p), "<file>", err.strerror or str(err)) from None
        return cls.from_text(text, str(p))

    @classmethod
    def from_text(cls, text: str, source: str) -> CalibrationTable:
        reader = csv.DictReader(io.StringIO(text))
        for col in COLUMNS:
            if col not in (reader.fieldnames or []):
                raise InputError(source, f"row 1: {col}", "required column missing")
        rows: list[CalibrationRow] = []
        seen: set[tuple[str, str]] = set()
        for rec in reader:
            line = reader.line_num
            vals: dict[str, float | None] = {}
            for col in _NUMERIC:
                raw = (rec.get(col) or "").strip()
                if not raw and col in _OPTIONAL:
                    vals[col] = None
                    continue
                try:
                    x = float(raw)
                except ValueError:
                    raise InputError(
                        source, f"row {line}: {col}", f"not a number: {raw!r}"
                    ) from None
                if not math.isfinite(x) or x <= 0:
                    raise InputError(source, f"row {line}: {col}", "must be positive and finite")
                vals[col] = x
            text_vals = {c: (rec.get(c) or "").strip() for c in COLUMNS if c not in _NUMERIC}
            for col, v in text_vals.items():
                if not v:
                    raise InputError(source, f"row {line}: {col}", "missing value")
            if text_vals["confidence"] not in CONFIDENCE:
                raise InputError(
                    source, f"row {line}: confidence", f"must be one of {', '.join(CONFIDENCE)}"
                )
            try:
                batch = int(text_vals["batch_size"])
            except ValueError:
                batch = 0
            if batch <= 0:
                raise InputError(source, f"row {line}: batch_size", "must be a positive integer")
            key = (text_vals["kind"], text_vals["flavor"])
            if key in seen:
                raise InputError(source, f"row {line}: flavor", f"duplicate entry for {key}")
            seen.add(key)
            samples, step, mfu, flops = (
                vals["samples_per_s"],
                vals["step_s"],
                vals["mfu"],
                vals["flops_per_sample"],
            )
            assert samples is not None and step is not None and mfu is not None
            assert flops is not None
            rows.append(
                CalibrationRow(
                    kind=key[0], flavor=key[1], samples_per_s=samples, step_s=step,
                    gpu_power_w=vals["gpu_power_w"], peak_mem_gb=vals["peak_mem_gb"], mfu=mfu,
                    flops_per_sample=flops, config=text_vals["config"], batch_size=batch,
                    date=text_vals["date"], device=text_vals["device"],
                    confidence=text_vals["confidence"], source=text_vals["source"],
                )
            )  # fmt: skip
        return cls(rows)

    def to_text(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow(r.as_csv())
        return buf.getvalue()


@cache
def _shipped() -> CalibrationTable:
    text = resources.files("cortex.workload").joinpath("data/calibration.csv").read_text()
    return CalibrationTable.from_text(text, "cortex/workload/data/calibration.csv")


def accelerator_flavors() -> list[str]:
    """Flavors of the throughput table that have an accelerator peak (not CPU slots)."""
    from cortex.fleet.catalog import load_catalog
    from cortex.workload.throughput import ThroughputTable

    catalog = load_catalog()
    return [f for f in ThroughputTable.load().flavors() if catalog[f].bf16_dense_tflops > 0]


def derive(measured: CalibrationRow) -> list[CalibrationRow]:
    """Rows for every other flavor of the throughput table, derived from one measured row by
    the rule in the module docstring (each row's `source` spells it out with its numbers)."""
    from cortex.fleet.catalog import load_catalog
    from cortex.workload.throughput import ThroughputTable

    table = ThroughputTable.load()
    catalog = load_catalog()
    base = catalog[measured.flavor]
    s0 = table.speed(measured.kind, measured.flavor)
    out = []
    for flavor in table.flavors():
        acc = catalog[flavor]
        if flavor == measured.flavor or acc.bf16_dense_tflops <= 0:
            continue  # CPU slots (control plane) have no accelerator peak to derive against
        ratio = table.speed(measured.kind, flavor) / s0
        samples = measured.samples_per_s * ratio
        power = None
        if measured.gpu_power_w is not None:
            power = measured.gpu_power_w * acc.busy_w / base.busy_w
        mfu = samples * measured.flops_per_sample / (acc.bf16_dense_tflops * 1e12)
        rule = (
            f"[D] from the {measured.flavor} row ({measured.confidence}, {measured.date}): "
            f"samples_per_s and step_s x speed ratio {ratio:.3f} (workload/data/throughput.csv); "
            f"gpu_power_w x busy_w ratio {acc.busy_w:g}/{base.busy_w:g} "
            f"(fleet/data/accelerators.csv); mfu at {acc.bf16_dense_tflops:g} TFLOPS bf16 dense; "
            f"peak_mem_gb carried over (same model and batch)"
        )
        out.append(
            CalibrationRow(
                kind=measured.kind, flavor=flavor, samples_per_s=samples,
                step_s=measured.step_s / ratio, gpu_power_w=power,
                peak_mem_gb=measured.peak_mem_gb, mfu=mfu,
                flops_per_sample=measured.flops_per_sample, config=measured.config,
                batch_size=measured.batch_size, date=measured.date, device=measured.device,
                confidence="smoke" if measured.confidence == "smoke" else "D", source=rule,
            )
        )  # fmt: skip
    return out


def merge(table: CalibrationTable, measured: list[CalibrationRow]) -> CalibrationTable:
    """`table` with each measured row and its derived rows replacing that kind's old rows."""
    kinds = {r.kind for r in measured}
    rows = [r for r in table.rows if r.kind not in kinds]
    for m in measured:
        rows.append(m)
        rows.extend(derive(m))
    return CalibrationTable(rows)
