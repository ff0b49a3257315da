"""Bad plan files exit 2 with one line `error: FILE: field: reason`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_planner_toy import TOY


def _run(tmp_path: Path, data: dict) -> subprocess.CompletedProcess[str]:
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(data))
    return subprocess.run(
        [sys.executable, "-c", "from cortex.cli.main import main; main()", "plan", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _override(sku: str, **kw: object) -> dict:
    ov = {k: dict(v) for k, v in TOY["sku_overrides"].items()}
    ov[sku].update(kw)
    return {**TOY, "sku_overrides": ov}


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({**TOY, "skus": ["H100", "H300"]}, "skus[1]", "unknown SKU 'H300'"),
        (
            _override("H200", price_usd=-1.0),
            "sku_overrides.H200.price_usd",
            "greater than or equal to 0",
        ),
        (
            _override("H100", lead_months=9),
            "sku_overrides.H100.lead_months",
            "past the 6-month horizon",
        ),
        (
            {
                **TOY,
                "sites": [
                    {
                        **TOY["sites"][0],
                        "power_ramp": [{"month": 0, "grid_mw": 100}, {"month": 3, "grid_mw": 60}],
                    }
                ],
            },
            "sites[0].power_ramp[1].grid_mw",
            "falls from 100 to 60 MW at month 3 without a retirement",
        ),
    ],
)
def test_bad_plan_exits_2_with_one_line(
    tmp_path: Path, data: dict, field: str, reason: str
) -> None:
    r = _run(tmp_path, data)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {tmp_path / 'plan.yaml'}: {field}: ")
    assert reason in lines[0]


def test_ramp_may_fall_with_a_retirement(tmp_path: Path) -> None:
    ramp = [{"month": 0, "grid_mw": 100}, {"month": 5, "grid_mw": 60, "retirement": "PPA ends"}]
    r = _run(tmp_path, {**TOY, "sites": [{**TOY["sites"][0], "power_ramp": ramp}]})
    assert r.returncode == 0, r.stderr
