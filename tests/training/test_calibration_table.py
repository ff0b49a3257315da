"""The calibration table the twin reads (no torch needed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cortex.errors import InputError
from cortex.fleet.catalog import load_catalog
from cortex.workload.calibration import (
    COLUMNS,
    CalibrationRow,
    CalibrationTable,
    accelerator_flavors,
    derive,
    merge,
)
from cortex.workload.throughput import ThroughputTable

H100 = CalibrationRow(
    kind="fsd-video", flavor="H100-SXM5", samples_per_s=100.0, step_s=0.16, gpu_power_w=600.0,
    peak_mem_gb=40.0, mfu=0.4, flops_per_sample=4e12 * 0.16 / 16 * 989 / 10, config="large",
    batch_size=16, date="2026-11-26", device="NVIDIA H100 80GB HBM3", confidence="M",
    source="measured",
)  # fmt: skip


def test_the_shipped_table_loads_and_holds_no_smoke_rows() -> None:
    table = CalibrationTable.load()
    assert all(r.confidence in ("M", "D") for r in table.rows)


def test_derived_rows_follow_the_stated_rule() -> None:
    rows = {r.flavor: r for r in derive(H100)}
    speeds = ThroughputTable.load()
    cat = load_catalog()
    assert set(rows) == set(accelerator_flavors()) - {"H100-SXM5"}
    h200 = rows["H200-SXM"]
    ratio = speeds.speed("fsd-video", "H200-SXM")
    assert h200.samples_per_s == pytest.approx(100.0 * ratio)
    assert h200.step_s == pytest.approx(0.16 / ratio)
    assert h200.gpu_power_w == pytest.approx(
        600.0 * cat["H200-SXM"].busy_w / cat["H100-SXM5"].busy_w
    )
    b200 = rows["B200-HGX"]
    assert b200.mfu == pytest.approx(
        b200.samples_per_s * H100.flops_per_sample / (cat["B200-HGX"].bf16_dense_tflops * 1e12)
    )
    assert all(r.confidence == "D" and r.source.startswith("[D]") for r in rows.values())


def test_round_trip_and_merge_replaces_only_that_kind() -> None:
    optimus = replace(H100, kind="optimus-policy", samples_per_s=500.0)
    table = merge(CalibrationTable([]), [H100, optimus])
    again = CalibrationTable.from_text(table.to_text(), "mem")
    assert [(r.kind, r.flavor) for r in again.rows] == [(r.kind, r.flavor) for r in table.rows]
    assert len(again.rows) == 2 * len(accelerator_flavors())
    remeasured = merge(again, [replace(H100, samples_per_s=120.0)])
    assert len(remeasured.rows) == len(again.rows)
    assert remeasured.get("fsd-video", "H100-SXM5").samples_per_s == 120.0
    assert remeasured.get("optimus-policy", "H100-SXM5").samples_per_s == pytest.approx(500.0)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("samples_per_s", "-3", "must be positive and finite"),
        ("mfu", "fast", "not a number"),
        ("confidence", "guess", "must be one of M, D, smoke"),
        ("batch_size", "0", "must be a positive integer"),
        ("device", "", "missing value"),
    ],
)
def test_bad_rows_name_row_and_column(column: str, value: str, reason: str) -> None:
    row = H100.as_csv() | {column: value}
    text = ",".join(COLUMNS) + "\n" + ",".join(row[c] for c in COLUMNS) + "\n"
    with pytest.raises(InputError) as err:
        CalibrationTable.from_text(text, "cal.csv")
    assert err.value.field == f"row 2: {column}"
    assert reason in err.value.reason
