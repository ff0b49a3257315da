"""The preemption rule (workload/preempt_rule.py) and the job field that feeds it."""

from __future__ import annotations

from typing import Any

import pytest

from cortex.errors import InputError
from cortex.workload.job import Job
from cortex.workload.preempt_rule import on_preempt
from cortex.workload.spec import parse_jobs


@pytest.mark.parametrize(
    ("args", "want"),
    [
        # (done, saved, write, grace, on_signal) -> (kept, hold, wrote)
        ((670.0, 600.0, 10.0, 30.0, True), (670.0, 10.0, 10.0)),  # write fits: keeps it all
        ((670.0, 600.0, 10.0, 30.0, False), (600.0, 0.0, 0.0)),  # cannot: last checkpoint
        ((670.0, 600.0, 40.0, 30.0, True), (600.0, 30.0, 0.0)),  # SIGKILL mid-write
        ((600.0, 600.0, 10.0, 30.0, True), (600.0, 0.0, 0.0)),  # nothing new to save
        ((50.0, 0.0, 0.0, 30.0, True), (50.0, 0.0, 0.0)),  # a write that takes no time
    ],
)
def test_preempt_rule_table(args: tuple[Any, ...], want: tuple[float, float, float]) -> None:
    got = on_preempt(*args)
    assert (got.kept_s, got.hold_s, got.wrote_s) == want


def test_preempt_rule_refuses_impossible_progress() -> None:
    with pytest.raises(ValueError, match="saved_s"):
        on_preempt(10.0, 20.0, 1.0, 30.0, True)


def test_jobspec_field_defaults_to_true_and_reaches_the_job() -> None:
    base = {"name": "j", "team": "a", "gpus": 8, "duration_s": 100.0}
    (default,) = parse_jobs(base, "t.yaml")
    (off,) = parse_jobs({**base, "checkpoint_on_signal": False}, "t.yaml")
    assert default.checkpoint_on_signal is True
    assert Job.from_spec(0, off, 0, None).ckpt_on_signal is False
    assert Job.from_spec(0, default, 0, None).ckpt_on_signal is True
    with pytest.raises(InputError, match="checkpoint_on_signal"):
        parse_jobs({**base, "checkpoint_on_signal": "sometimes"}, "t.yaml")
