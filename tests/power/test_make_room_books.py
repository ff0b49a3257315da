"""The shortage re-solve as the books run it (drive/power_books.py PowerBooks.make_room_for: the
kept class sums, the running jobs' levels read from the books) against make_room's rule over the
running jobs themselves (scheduler/cap_solver.py make_room), after any sequence of starts, stops
and level moves: the same answer, None included. A plan applied and asked for again changes
nothing, so the second answer is None: the current levels it is compared with must be the
books' own."""

from __future__ import annotations

import random

import pytest
from test_kept_class_sums import FLEET, KINDS, SPEED

import testkit
from cortex.scheduler.cap_solver import CapPlan, LevelsOf, _all_current, make_room
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.workload.job import Job


def _want(pw: PowerRuntime, head: Job, running: dict[int, Job], t: float) -> CapPlan | None:
    cj = pw.head_cap_job(head, 0, SPEED[(head.kind, 0)], t)
    current = {j: jp.level for j, jp in pw.jobs.items()}
    return make_room(
        pw.cap_jobs(running, SPEED),
        cj,
        current,
        pw.site_budget_w(t),
        pw.hall_budget_w(t),
        len(pw.levels),
        pw.ramp_headroom_it_w(t),
    )


def _same(a: CapPlan | None, b: CapPlan | None) -> bool:
    # The levels as a mapping: the kept solve lists them class by class (test_kept_class_sums).
    if a is None or b is None:
        return a is b
    return a.levels == b.levels and a.paused == b.paused


@pytest.mark.parametrize("seed", range(6))
def test_the_books_make_room_as_the_rule_over_the_running_jobs(seed: int) -> None:
    rng = random.Random(seed)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=30.0), 86400.0)
    running: dict[int, Job] = {}
    seen = {"plans": 0, "paused": 0, "again_none": 0, "none": 0}
    for i in range(300):
        op = rng.random()
        if op < 0.5 or len(running) < 3:
            nodes = rng.sample(range(16), rng.randint(1, 3))
            job, placement, gang = testkit.books_job(
                rng, 1000 + i, nodes, KINDS, priority=[0, 10, 20]
            )
            job.run_flavor, job.run_gpus, job.run_start_s = 0, gang, float(rng.randrange(50))
            pw.start(job, 0, gang, placement, rng.randrange(len(pw.levels)), 10.0 * i)
            running[job.id] = job
        elif op < 0.8:
            pw.stop(running.pop(rng.choice(list(running))).id)
        else:
            job = running[rng.choice(list(running))]
            pw.relevel(job, rng.randrange(len(pw.levels)))
        if i % 4:
            continue
        t = 10.0 * i + 1.0
        head = Job(
            1,
            "h",
            "a",
            rng.choice([4, 8, 16]),
            3600.0,
            kind=rng.choice(KINDS),
            priority=rng.choice([0, 10, 30, 30]),
        )
        got = pw.make_room_for(head, running, SPEED, t)
        assert _same(got, _want(pw, head, running, t))
        if got is None:
            seen["none"] += 1
            continue
        seen["plans"] += 1
        seen["paused"] += bool(got.paused)
        assert head.id not in got.levels
        # Applied (levels moved, the paused stopped), the same question changes nothing.
        for job_id in got.paused:
            pw.stop(running.pop(job_id).id)
        for job_id, level in got.levels.items():
            if pw.jobs[job_id].level != level:
                pw.relevel(running[job_id], level)
        again = pw.make_room_for(head, running, SPEED, t)
        assert _same(again, _want(pw, head, running, t))
        seen["again_none"] += again is None
    assert min(seen.values()) >= 3, seen


@pytest.mark.parametrize("seed", range(40))
def test_all_current_is_the_items_views_rule(seed: int) -> None:
    # levels.items() <= current.items() for plans against current levels that differ in one
    # place or several (near the start, the middle, the end), lack an id, hold extra ids, or
    # agree everywhere; through a dict and through the books' LevelsOf alike.
    rng = random.Random(seed)
    n = rng.randint(0, 30)
    ids = rng.sample(range(1000), n)
    current = {j: rng.randrange(9) for j in ids}
    levels = dict(current)
    if n and rng.random() < 0.8:
        for _ in range(rng.randint(1, 3)):
            j = ids[rng.choice([0, n // 2, n - 1, rng.randrange(n)])]
            what = rng.random()
            if what < 0.6:
                levels[j] = (levels[j] + rng.randint(1, 8)) % 9
            elif what < 0.8:
                del current[j]
            else:
                levels[2000 + j] = 0
    if rng.random() < 0.3:
        current[5000] = 1
    want = levels.items() <= current.items()
    assert _all_current(levels, current) is want
    booked = {j: _Booked(lv) for j, lv in current.items()}
    assert _all_current(levels, LevelsOf(booked)) is want
    assert dict(LevelsOf(booked)) == current


class _Booked:
    def __init__(self, level: int) -> None:
        self.level = level


def test_all_current_pairs_each_id_with_its_own_level() -> None:
    # Swapped levels are not current, though the same multiset; a lone id off by one is found
    # wherever it lies; an empty plan is current.
    assert not _all_current({1: 0, 2: 1}, {1: 1, 2: 0})
    for k in range(5):
        levels = dict.fromkeys(range(5), 3)
        levels[k] = 4
        assert not _all_current(levels, dict.fromkeys(range(5), 3))
        assert not _all_current(levels, LevelsOf({j: _Booked(3) for j in range(5)}))
    assert _all_current({}, {}) and _all_current({}, {1: 2})
    assert not _all_current({7: 0}, {})
