"""A kept solve's level moves read class by class (drive/power_moves.py kept_moves, through
PowerBooks.cap_moves with the plan): a class whose members all sit at the plan's level for it
(its count per level) is not read. The moves must be cap_moves' over every entry of the plan's
levels, in the same order, after any sequence of starts, stops and level moves: for the books'
own solves (with and without a shortage head, applied or not) and for plans made here with
a class moved, a split class whose moved members the books hold or not (a head's), and classes
left as they are."""

from __future__ import annotations

import math
import random

import pytest
from test_kept_class_sums import FLEET, KINDS, SPEED

import testkit
from cortex.scheduler.cap_solver import CapPlan
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.workload.job import Job


def _check(
    pw: PowerRuntime, plan: CapPlan, running: dict[int, Job], seen: dict, apply: bool = False
) -> None:
    for key, cls in pw._classes.items():
        lv = plan.target[key]
        still = all(pw.jobs[j].level == plan.levels[j] for j in cls.members)
        seen["still"] += still
        seen["skipped"] += still and cls.lv == lv
        seen["read"] += not still
        first = pw.jobs[next(iter(cls.members))].level
        seen["uniform moved"] += first != lv and all(pw.jobs[j].level == first for j in cls.members)
    want = pw.cap_moves(plan.levels, running)  # every entry read
    got = pw.cap_moves(plan.levels, running, plan)
    assert got == want
    if apply:  # its moves made: every class read is marked at its level, the split one not
        for jid, lv in got:
            pw.relevel(running[jid], lv)
        split = {pw.jobs[j].key for j in (plan.moved or ()) if j in pw.jobs}
        for key, cls in pw._classes.items():
            if key not in split:
                assert cls.lv == plan.target[key]
    else:  # not made: each class the read marked is marked as it is (as a driver must)
        for cls in pw._classes.values():
            lvs = {pw.jobs[j].level for j in cls.members}
            cls.lv = lvs.pop() if len(lvs) == 1 else -1
    for cls in pw._classes.values():  # a mark is each member's level
        assert cls.lv == -1 or all(pw.jobs[j].level == cls.lv for j in cls.members)


def _made(pw: PowerRuntime, rng: random.Random, seen: dict) -> CapPlan:
    """A plan in the kept solve's form: each class at a level (most at their members' own),
    one class split with some members one level up, and at times an unbooked head there."""
    target, levels, moved = {}, {}, {}
    keys = list(pw._classes)
    split = rng.choice(keys) if rng.random() < 0.8 else None
    for key, cls in pw._classes.items():
        first = pw.jobs[next(iter(cls.members))].level
        lv = first if rng.random() < 0.7 else rng.randrange(len(pw.levels))
        target[key] = lv
        for j in cls.members:
            levels[j] = lv
        if key == split and lv > 0:
            if rng.random() < 0.3:
                moved[1] = lv - 1  # a head in the split class, not booked: listed first
                seen["head first"] += 1
            for j in cls.members:
                if rng.random() < 0.5:
                    moved[j] = lv - 1
            seen["split"] += len(moved) > 0
    levels.update((j, lv) for j, lv in moved.items() if j in pw.jobs)
    return CapPlan(levels, [], target, moved)


@pytest.mark.parametrize("seed", range(6))
def test_kept_moves_are_the_moves_of_every_entry(seed: int) -> None:
    rng = random.Random(seed)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=30.0), 86400.0)
    running: dict[int, Job] = {}
    seen = {"still": 0, "skipped": 0, "read": 0, "uniform moved": 0, "split": 0, "head first": 0}
    seen |= {"solves": 0, "rooms": 0, "applied": 0, "solver split": 0}
    top = 0.0
    for i in range(300):
        op = rng.random()
        if op < 0.5 or len(running) < 3:
            nodes = rng.sample(range(16), rng.randint(1, 3))
            job, placement, gang = testkit.books_job(
                rng, 1000 + i, nodes, KINDS, priority=[0, 10, 20]
            )
            job.run_flavor, job.run_gpus, job.run_start_s = 0, gang, float(rng.randrange(50))
            # Most starts at their class's current level (as the solver's target gives them)
            cls = pw._classes.get((job.kind, 0, job.priority, pw.topo.node_hall[nodes[0]]))
            level = rng.randrange(len(pw.levels))
            if cls is not None and rng.random() < 0.8:
                level = pw.jobs[next(iter(cls.members))].level
            pw.start(job, 0, gang, placement, level, 10.0 * i)
            running[job.id] = job
        elif op < 0.7:
            pw.stop(running.pop(rng.choice(list(running))).id)
        elif op < 0.8:
            job = running[rng.choice(list(running))]
            pw.relevel(job, rng.randrange(len(pw.levels)))
        top = max(top, pw.inc_total_w)
        if i % 3:
            continue
        for f in (0.5, 0.7, 0.9, 1.5):
            site = top * f
            halls = [site * rng.choice([0.6, math.inf]) for _ in range(2)]
            plan = pw.solve_kept(running, SPEED, site, halls)
            if plan.moved is not None:
                seen["solves"] += 1
                seen["solver split"] += bool(plan.moved)
                _check(pw, plan, running, seen)
        head = Job(1, "h", "a", 16, 3600.0, kind="llm", priority=30)
        room = pw.make_room_for(head, running, SPEED, 10.0 * i)
        if room is not None and room.moved is not None:
            seen["rooms"] += 1
            _check(pw, room, running, seen)
        made = _made(pw, rng, seen)
        apply = rng.random() < 0.6  # applied: its classes then sit at their levels
        seen["applied"] += apply
        _check(pw, made, running, seen, apply)
        if apply:
            _check(pw, made, running, seen)  # nothing left to move
    assert seen["solves"] > 100 and seen["rooms"] > 5 and seen["applied"] > 20
    assert seen["still"] > 1000 and seen["read"] > 500 and seen["split"] > 20
    assert seen["skipped"] > 1000  # not read: its mark at the plan level
    assert seen["head first"] > 5 and seen["uniform moved"] > 300 and seen["solver split"] > 15
