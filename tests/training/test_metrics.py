"""Metrics lines and the NVML device mapping (a fake pynvml: there is no GPU here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cortex.training.metrics import GpuPower, MetricsWriter, _nvml_handle


class FakeNvml:
    def nvmlDeviceGetHandleByIndex(self, i: int) -> str:  # noqa: N802  (pynvml's name)
        return f"index:{i}"

    def nvmlDeviceGetHandleByUUID(self, u: str) -> str:  # noqa: N802
        return f"uuid:{u}"


@pytest.mark.parametrize(
    ("visible", "cuda_index", "handle"),
    [
        (None, 1, "index:1"),
        ("3,5", 0, "index:3"),
        ("3,5", 1, "index:5"),
        ("GPU-ab12,GPU-cd34", 1, "uuid:GPU-cd34"),
    ],
)
def test_cuda_index_maps_to_the_nvml_device(
    visible: str | None, cuda_index: int, handle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert _nvml_handle(FakeNvml(), cuda_index) == handle


def test_no_gpu_reports_null_power() -> None:
    assert GpuPower(None).read_w() is None


def test_lines_append_and_carry_the_common_fields(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.jsonl"
    for step in (1, 2):
        w = MetricsWriter(path, {"job_id": "j1"})
        w.write(step=step, loss=0.5)
        w.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [d["step"] for d in lines] == [1, 2]
    assert all(d["job_id"] == "j1" and d["ts"] > 0 for d in lines)
