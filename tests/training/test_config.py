"""Presets and overrides (no torch needed)."""

from __future__ import annotations

import pytest

from cortex.errors import InputError
from cortex.training.config import PRESETS, build_config


@pytest.mark.parametrize("workload", ["fsd", "optimus"])
@pytest.mark.parametrize("name", ["tiny", "small", "large"])
def test_every_preset_validates(workload: str, name: str) -> None:
    cfg = build_config(workload, name)
    assert cfg.name == name


def test_overrides_apply_and_none_keeps_preset() -> None:
    cfg = build_config("fsd", "tiny", {"steps": 7, "batch_size": None})
    assert cfg.train.steps == 7
    assert cfg.train.batch_size == PRESETS["fsd"]["tiny"]["train"]["batch_size"]


@pytest.mark.parametrize(
    ("workload", "name", "overrides", "field", "reason"),
    [
        ("fsd", "huge", {}, "config", "unknown config (known: tiny, small, large)"),
        ("optimus", "tiny", {"batch_size": -4}, "train.batch_size", "greater than 0"),
        ("fsd", "tiny", {"steps": 0}, "train.steps", "greater than 0"),
        ("fsd", "tiny", {"lr": 5.0}, "train.lr", "less than 1"),
        ("optimus", "tiny", {"num_workers": -1}, "train.num_workers", "greater than or equal"),
    ],
)
def test_bad_values_name_the_field(
    workload: str, name: str, overrides: dict, field: str, reason: str
) -> None:
    with pytest.raises(InputError) as err:
        build_config(workload, name, overrides)
    assert err.value.field == field
    assert reason in err.value.reason
