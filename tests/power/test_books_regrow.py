"""The live loop's regrow (control/loop_power.py LivePower.regrow: nodes joined under a power
policy) copies the books with their fleet-derived memos emptied, the ladders among them, and
keeps the bookings and the cap classes' kept sums. A solve after it must still read those sums:
a class whose members started before the copy moves (a member stops, or one more of its ladder
starts) and kept_classes asks the moved ladder's solver units, which the copy has not computed
(before: KeyError in _q_of, the live loop's power solve down until a restart)."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from test_kept_class_sums import FLEET, KINDS, SPEED, _per_job, _same

from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.workload.job import Job


def _regrown(pw: PowerRuntime) -> PowerRuntime:
    # What regrow replaces of the books' memos ("computed from the old fleet's budgets and
    # nodes"); the fleet itself is the same here: the ladders it gives are the same.
    return dataclasses.replace(
        pw, _ladders={}, _budget_cache={}, _per_cache={}, _draw_cache={}, _never_cache={}
    )


def _start(pw: PowerRuntime, running: dict[int, Job], rng: random.Random, i: int) -> None:
    nodes = rng.sample(range(16), rng.randint(1, 2))
    placement = tuple((n, rng.choice([8, 8, 4])) for n in nodes)
    gang = sum(k for _, k in placement)
    job = Job(1000 + i, "j", "a", gang, 3600.0, kind=rng.choice(KINDS), priority=0)
    job.run_flavor, job.run_gpus, job.run_start_s = 0, gang, float(i)
    pw.start(job, 0, gang, placement, rng.randrange(len(pw.levels)), 10.0 * i)
    running[job.id] = job


@pytest.mark.parametrize("seed", range(4))
def test_a_solve_after_a_regrow_reads_the_kept_sums_of_classes_booked_before(seed: int) -> None:
    rng = random.Random(seed)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=30.0), 86400.0)
    running: dict[int, Job] = {}
    for i in range(12):
        _start(pw, running, rng, i)
    site = pw.inc_total_w * 0.6
    halls = [math.inf, math.inf]
    assert _same(
        pw.solve_kept(running, SPEED, site, halls), _per_job(pw, running, None, site, halls)
    )
    pw = _regrown(pw)
    for i in range(12, 40):
        if rng.random() < 0.5:
            pw.stop(running.pop(rng.choice(list(running))).id)
        else:
            _start(pw, running, rng, i)
        got = pw.solve_kept(running, SPEED, site, halls)
        assert _same(got, _per_job(pw, running, None, site, halls))
