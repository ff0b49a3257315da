"""The GPU calibration script, run end to end on CPU in its smoke mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from cortex.fleet.catalog import load_catalog
from cortex.workload.calibration import CalibrationTable
from cortex.workload.throughput import ThroughputTable

from .trainkit import ROOT, env


def _calibrate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cortex.calibrate", *args], env=env(), cwd=ROOT,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_smoke_mode_writes_a_well_formed_table(tmp_path: Path) -> None:
    out = _calibrate("--smoke", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    table = CalibrationTable.from_csv(tmp_path / "calibration.csv")
    catalog = load_catalog()
    # Every accelerator flavor of the throughput table; CPU slots have no bf16 peak to derive to.
    flavors = [f for f in ThroughputTable.load().flavors() if catalog[f].bf16_dense_tflops > 0]
    assert {(r.kind, r.flavor) for r in table.rows} == {
        (k, f) for k in ("fsd-video", "optimus-policy") for f in flavors
    }
    assert all(r.confidence == "smoke" for r in table.rows)
    measured = table.get("fsd-video", "H100-SXM5")
    assert measured is not None and measured.device == "cpu (smoke)"
    assert measured.gpu_power_w is None  # no NVML on CPU
    raw = json.loads((tmp_path / "calibration.json").read_text())
    for run in raw["runs"]:
        assert run["flops_per_step"] > 0 and run["steps_timed"] >= 1
        assert run["samples_per_s"] == pytest.approx(run["batch_size"] / run["step_s"])


def test_smoke_rows_cannot_reach_the_shipped_table(tmp_path: Path) -> None:
    out = _calibrate("--smoke", "--update-data", "--out", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: --update-data")


def test_merge_takes_only_measured_rows(tmp_path: Path) -> None:
    assert _calibrate("--smoke", "--out", str(tmp_path)).returncode == 0
    out = _calibrate("--merge", str(tmp_path / "calibration.csv"))
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {tmp_path / 'calibration.csv'}: no measured (M) rows"
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,flavor\n")
    out = _calibrate("--merge", str(bad))
    assert out.returncode == 2
    assert "required column missing" in out.stderr
