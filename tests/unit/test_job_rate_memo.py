"""The twin's rate of a run's own failures (`RunBooks._job_rate`, read at every start and every
estimate) is kept per (gang, priority class): whatever the order of the questions, each answer
must be the law's (sim/failures.py job_rate_per_s) for that gang, class and config, and the law
is asked once per gang and class."""

from __future__ import annotations

import random

import pytest

from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim import runs
from cortex.sim.failures import job_rate_per_s
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job

CLASSES = ("preemptible", "normal", "production", "research")


def test_the_kept_rate_is_the_law_for_every_gang_and_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[int, str]] = []

    def law(gpus: int, priority_class: str, scale: float = 1.0) -> float:
        asked.append((gpus, priority_class))
        return job_rate_per_s(gpus, priority_class, scale)

    monkeypatch.setattr(runs, "job_rate_per_s", law)
    topo = build(load_fleet_spec("tiny"))
    rng = random.Random(5)
    for failures, scale in ((True, 1.0), (True, 2.5), (False, 1.0)):
        twin = Twin(topo, [], SimConfig(days=1.0, failures=failures, failure_scale=scale))
        asked.clear()
        keys = set()
        for i in range(2000):
            gang = rng.choice([1, 2, 8, 16, 64, 512, rng.randrange(1, 5000)])
            cls = rng.choice(CLASSES)
            # The gang a run has, not the job's request (an elastic job runs smaller).
            job = Job(i, "j", "a", rng.choice([gang, 2 * gang]), 3600.0, priority_class=cls)
            want = job_rate_per_s(gang, cls, scale) if failures else 0.0
            assert twin._job_rate(job, gang) == want
            keys.add((gang, cls))
        assert len(asked) == (len(keys) if failures else 0)
