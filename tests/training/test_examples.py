"""The example training job file: valid job specs once the control-plane fields are set aside,
and every command names a real entry point with arguments it accepts."""

from __future__ import annotations

import yaml

from cortex.training.cli import parser
from cortex.workload.spec import parse_jobs

from .trainkit import ROOT

CONTROL_PLANE_FIELDS = ("command", "env", "working_dir")


def test_training_examples_are_valid_jobs_with_runnable_commands() -> None:
    data = yaml.safe_load((ROOT / "examples" / "training-jobs.yaml").read_text())
    jobs = data["jobs"]
    specs = parse_jobs(
        {"jobs": [{k: v for k, v in j.items() if k not in CONTROL_PLANE_FIELDS} for j in jobs]},
        "examples/training-jobs.yaml",
    )
    assert {s.kind.value for s in specs} == {"fsd-video", "optimus-policy"}
    for job in jobs:
        python, dash_m, module, *args = job["command"]
        assert (python, dash_m) == ("python", "-m")
        workload = module.removeprefix("cortex.training.")
        assert workload in ("fsd", "optimus")
        parser(workload).parse_args(args)  # exits 2 on a bad flag
