"""Bad plan files exit 2 with one line `error: FILE: field: reason`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_planner_toy import TOY

from cortex.errors import InputError
from cortex.planner.inputs import load_spec


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


# YAML 1.1's loose booleans and pydantic's lax ones: `yes`, `on`, `off` (read as booleans by
# PyYAML), and "yes" or 1 (taken by a lax bool) all set a boolean field by a guess.
LOOSE = ["yes", "on", "off", "No", "1", "0", "'yes'", "'true'"]
BOOL_FIELDS = [
    ({**TOY, "twin": {"warm_start": "@V@"}}, "twin.warm_start"),
    ({**TOY, "sites": [{**TOY["sites"][0], "allow_air_halls": "@V@"}]}, "sites[0].allow_air_halls"),
]


def _plan_text(data: dict, raw: str) -> str:
    return yaml.safe_dump(data).replace("'@V@'", raw)


@pytest.mark.parametrize("raw", LOOSE)
@pytest.mark.parametrize(("data", "field"), BOOL_FIELDS)
def test_a_boolean_field_takes_only_true_or_false(
    tmp_path: Path, data: dict, field: str, raw: str
) -> None:
    p = tmp_path / "plan.yaml"
    p.write_text(_plan_text(data, raw))
    with pytest.raises(InputError) as got:
        load_spec(p)
    assert (got.value.source, got.value.field) == (str(p), field)
    assert "valid boolean" in got.value.reason


@pytest.mark.parametrize(("raw", "want"), [("true", True), ("false", False), ("False", False)])
@pytest.mark.parametrize(("data", "field"), BOOL_FIELDS)
def test_true_and_false_are_booleans(
    tmp_path: Path, data: dict, field: str, raw: str, want: bool
) -> None:
    p = tmp_path / "plan.yaml"
    p.write_text(_plan_text(data, raw))
    spec = load_spec(p)
    got = spec.twin.warm_start if field.startswith("twin") else spec.sites[0].allow_air_halls
    assert got is want


@pytest.mark.parametrize(("data", "field"), BOOL_FIELDS)
def test_a_loose_boolean_exits_2_with_one_line(tmp_path: Path, data: dict, field: str) -> None:
    p = tmp_path / "plan.yaml"
    p.write_text(_plan_text(data, "yes"))
    r = subprocess.run(
        [sys.executable, "-c", "from cortex.cli.main import main; main()", "plan", str(p)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {p}: {field}: "), lines
