"""What a weather tick's and a shortage's solve read from the books (drive/power_books.py,
drive/power_jobs.py): the budgets read once (needs_solve, solve, make_room_for) say what the
site and hall budget methods say, reserves included; a kept class given again to the next solve
reads the members of that solve's running jobs; a split class's members made where missing."""

from __future__ import annotations

import random

import pytest

import testkit
from cortex.drive.power_books import RAISE_SPARE_FRAC
from cortex.scheduler.cap_solver import CapPlan, cap_classes, make_room_with
from cortex.sim.power import CapEvent, PowerConfig, PowerRuntime
from cortex.workload.job import Job

FLEET = testkit.two_hall_power_fleet("solve-reads")
KINDS = ("llm", "fsd-video")
SPEED = {(k, 0): g for k, g in zip(KINDS, (1.0, 1.3), strict=True)}
DAY_S = 86400.0


def _needs_solve(pw: PowerRuntime, t: float) -> bool:
    """The rule as main b224b0e wrote it: each budget read through its own method."""
    if pw.inc_total_w > pw.site_budget_w(t):
        return True
    hb = pw.hall_budget_w(t)
    if any(w > b for w, b in zip(pw.hall_inc_w, hb, strict=True)):
        return True
    if len(pw.levels) == 1 or pw.n_capped == 0:
        return False
    spare = pw.site_budget_w(t) - pw.inc_total_w
    return pw._periodic_solve(t) or spare >= RAISE_SPARE_FRAC * pw.site_budget_w(t)


def _same(a: CapPlan | None, b: CapPlan | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.levels == b.levels and a.paused == b.paused and a.target == b.target


def _start(pw: PowerRuntime, rng: random.Random, i: int, running: dict[int, Job]) -> None:
    if rng.random() < 0.15:  # a gang over both halls
        nodes = [rng.randrange(8), 8 + rng.randrange(8)]
    else:
        base = rng.choice([0, 8])
        nodes = [base + x for x in rng.sample(range(8), rng.randint(1, 3))]
    placement = tuple((nd, rng.choice([8, 8, 4])) for nd in nodes)
    gang = sum(k for _, k in placement)
    job = Job(
        1000 + i,
        "j",
        "a",
        gang,
        3600.0,
        kind=rng.choice(KINDS),
        priority_class="normal",
        priority=rng.choice([0, 1]),
    )
    job.run_flavor, job.run_gpus, job.run_start_s = 0, gang, float(i)
    pw.start(job, 0, gang, placement, rng.randrange(len(pw.levels)), 10.0 * i)
    running[job.id] = job


def _step(pw: PowerRuntime, rng: random.Random, i: int, running: dict[int, Job]) -> None:
    op = rng.random()
    if op < 0.55 or len(running) < 3:
        _start(pw, rng, i, running)
    elif op < 0.8:
        pw.stop(running.pop(rng.choice(list(running))).id)
    else:
        pw.relevel(running[rng.choice(list(running))], rng.randrange(len(pw.levels)))


@pytest.mark.parametrize("seed", range(6))
def test_budgets_read_once_say_what_each_method_says(seed: int) -> None:
    rng = random.Random(seed)
    cfg = PowerConfig("full", rack_cap_kw=30.0, cap_events=(CapEvent(3 * 3600.0, 3600.0, 0.15),))
    pw = PowerRuntime.build(FLEET, cfg, DAY_S)
    # Hall caps (the fleet has none), so that a hall's budget can bind.
    pw.hall_limit_w = [h + 0.06e6 for h in pw.hall_base_w]
    pw._budget_cache.clear()
    running: dict[int, Job] = {}
    seen: dict[tuple[int, bool], int] = {}
    rooms = 0
    head = Job(1, "h", "a", 16, 3600.0, kind="llm", priority_class="production", priority=5)
    for i in range(300):
        _step(pw, rng, i, running)
        # Hourly instants (the periodic solve) and others, in and out of the cap event.
        t = rng.choice([3600.0 * rng.randrange(24), rng.uniform(0.0, DAY_S)])
        site0, halls0 = pw._budgets(t)
        inc = pw.inc_total_w
        # Reserves that put the running set just over or under the site budget, a hall's
        # budget, and the 1% spare that raises capped jobs at once (each side of each rule).
        pw.reserved_w = rng.choice(
            [0.0, 0.0, site0 - inc - 1.0, site0 - inc + 1.0]
            + [site0 - inc / (1.0 - RAISE_SPARE_FRAC) + d for d in (-1.0, 1.0)]
        )
        h = rng.randrange(2)
        pw.reserved_hall_w = rng.choice(
            [{}, {}, {h: halls0[h] - pw.hall_inc_w[h] + rng.choice([-1.0, 1.0])}]
        )
        assert pw._budgets_left(t) == (pw.site_budget_w(t), pw.hall_budget_w(t))
        want = _needs_solve(pw, t)
        assert pw.needs_solve(t) == want
        rule = 0 if inc > pw.site_budget_w(t) else 1 if pw.reserved_hall_w else 2
        seen[(rule, want)] = seen.get((rule, want), 0) + 1
        if i % 4 == 0:
            site, halls = pw.site_budget_w(t), pw.hall_budget_w(t)
            want_plan = pw.solve_kept(running, SPEED, site, halls)
            assert _same(pw.solve(running, SPEED, t), want_plan)
            cj = pw.head_cap_job(head, 0, SPEED[("llm", 0)], t)
            want_room = make_room_with(
                min(k[2] for k in pw._classes),
                cj,
                {j: jp.level for j, jp in pw.jobs.items()},
                pw.ramp_headroom_it_w(t),
                lambda: pw.solve_kept(running, SPEED, site, halls, cj),  # noqa: B023
            )
            room = pw.make_room_for(head, running, SPEED, t)
            assert _same(room, want_room)
            rooms += room is not None
    # Each rule answered both ways (over the site, over a hall, the spare or the hour).
    assert {k for k, v in seen.items() if v} >= {(0, True), (1, True), (2, True), (2, False)}
    assert rooms > 3


@pytest.mark.parametrize("seed", range(6))
def test_a_kept_class_reads_the_members_of_the_solve_that_reads_it(seed: int) -> None:
    # The twin hands every solve the same running-jobs dict; the live loop a new one each time.
    # Either way a class's members are those of the dict the solve was given: CapJobs in start
    # order, made for the members that started since (none made yet) and read for the rest.
    rng = random.Random(seed)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=30.0), DAY_S)
    running: dict[int, Job] = {}
    speed = SPEED
    fresh = 0
    for i in range(240):
        _step(pw, rng, i, running)
        if i % 3:
            continue
        if rng.random() < 0.5:  # a new dict of the same jobs, as the live loop
            running = dict(running)
        if rng.random() < 0.5:  # and of the same speeds
            speed = dict(SPEED)
        fresh += sum(jp.capjob is None for jp in pw.jobs.values())
        got = pw.kept_classes(running, speed)
        members = [list(g.members()) for g in got]  # before cap_jobs below makes every CapJob
        want, _ = cap_classes(pw.cap_jobs(running, speed))
        assert [c.key for c in got] == [c.key for c in want]
        for g, m, w in zip(got, members, want, strict=True):
            assert m == list(w.members())
            assert g.q == w.q and g.halls == w.halls
    assert fresh > 50
