"""The books' kept class sums (drive/power_jobs.py kept_classes) read class by class: the same
integers as cap_classes makes from the running jobs, for the site ladder, every hall's ladder
and the steps. A class with no split member takes its hall's sums as a copy of its site sums'
first n (each member lies wholly in the class's hall); one with split members adds each moved
ladder in. A solve falls back to solve_caps when the kept hall sums put the floor over a hall's
budget, so a wrong hall sum can still give the right plan: these sums are compared directly."""

from __future__ import annotations

import random

import pytest

import testkit
from cortex.scheduler.cap_solver import cap_classes, class_steps
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.workload.job import Job

FLEET = testkit.two_hall_power_fleet("kept-halls")
KINDS = ("llm", "fsd-video")
SPEED = {(k, 0): g for k, g in zip(KINDS, (1.0, 1.3), strict=True)}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("split_share", [0.0, 0.15])
def test_kept_class_sums_are_the_running_jobs_sums(seed: int, split_share: float) -> None:
    rng = random.Random(seed)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=30.0), 86400.0)
    n = len(pw.levels)
    running: dict[int, Job] = {}
    reads = {"whole": 0, "split": 0}
    for i in range(300):
        op = rng.random()
        if op < 0.55 or len(running) < 3:
            if rng.random() < split_share:  # a gang over both halls: a split member
                nodes = [rng.randrange(8), 8 + rng.randrange(8)]
            else:  # one to three nodes of one hall
                base = rng.choice([0, 8])
                nodes = [base + x for x in rng.sample(range(8), rng.randint(1, 3))]
            job, placement, gang = testkit.books_job(
                rng, 1000 + i, nodes, KINDS, priority_class=["normal", "production"]
            )
            job.run_flavor, job.run_gpus, job.run_start_s = 0, gang, float(i)
            pw.start(job, 0, gang, placement, rng.randrange(n), 10.0 * i)
            running[job.id] = job
        elif op < 0.85:
            pw.stop(running.pop(rng.choice(list(running))).id)
        else:
            pw.relevel(running[rng.choice(list(running))], rng.randrange(n))
        if i % 3:
            continue
        got = pw.kept_classes(running, SPEED)
        want, _ = cap_classes(pw.cap_jobs(running, SPEED))
        assert [c.key for c in got] == [c.key for c in want]
        for g, w in zip(got, want, strict=True):
            assert g.q == w.q
            assert g.halls == w.halls
            assert g.steps == class_steps(w.q, w.halls, n)
            reads["split" if pw._classes[g.key].split else "whole"] += 1
    assert reads["whole"] > 50
    assert split_share == 0.0 or reads["split"] > 20
