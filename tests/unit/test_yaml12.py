"""YAML 1.2's booleans in every file and body the project reads (yamlfiles.py): `on`, `off`,
`yes` and `no` are the text written, not True/False (PyYAML's YAML 1.1 made a job's
`--amp on` argument, a `DEBUG: yes` env value or a fleet named `no` booleans)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from cortex.control.bodies import load_yaml
from cortex.errors import InputError
from cortex.fleet.spec import load_fleet_spec
from cortex.workload.spec import load_jobs

JOB = """\
name: no
team: fsd
gpus: 8
duration_s: 60
flavors: [h100]
checkpoint_on_signal: {flag}
"""


def test_a_job_file_keeps_yes_no_on_off_as_text(tmp_path: Path) -> None:
    p = tmp_path / "job.yaml"
    p.write_text(JOB.format(flag="false"))
    (job,) = load_jobs(p)
    assert job.name == "no"  # YAML 1.1: False, refused as "not a valid string"
    assert job.checkpoint_on_signal is False  # true and false still are booleans


@pytest.mark.parametrize("flag", ["yes", "on", "off", "No"])
def test_a_boolean_field_given_yaml_1_1_words_is_refused_by_name(tmp_path: Path, flag: str) -> None:
    p = tmp_path / "job.yaml"
    p.write_text(JOB.format(flag=flag))
    with pytest.raises(InputError, match="checkpoint_on_signal") as err:
        load_jobs(p)
    assert "boolean" in str(err.value)


def test_a_fleet_file_named_on_is_named_on(tmp_path: Path) -> None:
    text = resources.files("cortex.fleet").joinpath("presets/cortex-2024.yaml").read_text()
    p = tmp_path / "fleet.yaml"
    p.write_text(text.replace("name: cortex-2024", "name: on", 1))
    assert load_fleet_spec(p).name == "on"


def test_an_api_body_keeps_the_words_and_still_refuses_aliases() -> None:
    got = load_yaml("command: [train.py, --amp, on]\nenv: {DEBUG: yes}\nx: [true, False]")
    assert got == {"command": ["train.py", "--amp", "on"], "env": {"DEBUG": "yes"},
                   "x": [True, False]}  # fmt: skip
    with pytest.raises(ValueError, match="aliases"):
        load_yaml("a: &x [1]\nb: *x")
