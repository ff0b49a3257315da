"""Power admission (scheduler/power.py) against a plain reference on random states: CapToFit
walks from the class's level (the placement's first node's hall, at most the floor) down to the
floor with `_fits`, stopping at the first level that fits, on the ramp, or at the floor; its
one-node path answers inline (a grant, or a ramp refusal built there: RESULTS section 149), and
`ramp_refuses` reads the class levels of every hall. The answers must be the reference's
exactly: the same level and doubles, the same halls in order, the same reason with the same
numbers."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import testkit
from cortex.scheduler.power import (
    AdmitUncapped,
    CapToFit,
    Grant,
    PowerView,
    Watts,
    _fits,
    _ramp_refuses,
    placement_shape,
)
from cortex.scheduler.reasons import Code, Reason
from cortex.workload.job import Job

BIG = 1e9


def _reference(
    view: PowerView, room: Watts, job: Job, placement: tuple, credit: tuple, floor: int
) -> Grant | Reason:
    shape = placement_shape(view.node_hall, view.node_max_cap_w, view.min_node_cap_w, placement)
    hall = view.node_hall[placement[0][0]]
    first = min(view.target.get((job.kind, 0, job.priority, hall), 0), floor)
    for level in range(first, floor + 1):
        inc, halls, r = _fits(view, room, job, 0, 8, shape, level, credit)
        if r is None:
            return Grant(level, inc, halls, shape)
        if r.code is Code.POWER_RAMP or level == floor:
            return r
    raise AssertionError("no level")


def _same(got: Grant | Reason, want: Grant | Reason) -> bool:
    if isinstance(want, Reason):
        return isinstance(got, Reason) and (got.code, repr(got.detail)) == (
            want.code,
            repr(want.detail),
        )
    return isinstance(got, Grant) and repr(
        (got.level, got.inc_w, list(got.halls_w.items()), got.shape)
    ) == repr((want.level, want.inc_w, list(want.halls_w.items()), want.shape))


def _states(seed: int, n: int) -> Iterator[tuple[random.Random, PowerView]]:
    rng = random.Random(seed)
    for _ in range(n):
        halls = rng.randint(1, 3)
        levels = tuple(
            sorted((rng.choice((1.0, 0.9, 0.8, 0.7, 0.6, 0.5)) for _ in range(4)), reverse=True)
        )
        caps = [rng.choice((math.inf, 450.0, 520.0, 650.0)) for _ in range(8)]
        capped = rng.random() < 0.3

        def pick(levels: tuple[float, ...] = levels) -> float:
            steps = [8 * (min(lv * 700.0, 600.0) - 100.0) for lv in levels]
            return rng.choice([0.0, *[s + d for s in steps for d in (-1.0, 0.0, 1.0)]])

        ramp_limit = rng.choice((math.inf, 10_000.0, 4000.0, 3000.0))
        # class levels up to 5: above the floor (3) too, which the floor bounds
        target = (
            {("generic", 0, 100, h): rng.randint(0, 5) for h in range(halls)}
            if rng.random() < 0.7
            else {}
        )
        view = testkit.toy_power_view(
            levels,
            halls,
            caps,
            capped,
            site_w=rng.choice((pick(), BIG)),
            hall_w=[rng.choice((pick(), BIG)) for _ in range(halls)],
            ramp_w=rng.choice((min(pick(), ramp_limit), ramp_limit, -500.0)),
            ramp_limit_w=ramp_limit,
            target=target,
        )
        yield rng, view


def test_admission_is_the_reference_walk_on_random_states() -> None:
    job = Job(1, "p1", "a", 8, 100.0)
    job.priority = 100
    codes: dict[tuple[int, str], int] = {}
    for rng, view in _states(149, 3000):
        room = Watts.of(view)
        for _ in range(4):
            nodes = rng.sample(range(8), rng.choice((1, 1, 2, 4)))
            placement = tuple((n, 8 // len(nodes)) for n in sorted(nodes))
            share = rng.choice((0.0, 0.3, 1.0))
            credit = (share * 4000.0, dict.fromkeys(range(len(room.hall_w)), share * 4000.0))
            for policy, floor in ((CapToFit(), 3), (AdmitUncapped(), 0)):
                want = _reference(view, room, job, placement, (0.0, {}), floor)
                got = policy.admit(view, room, job, 0, 8, placement)  # no credit: the default
                assert _same(got, want), (view, placement, got, want)
                key = (len(placement), want.code.name if isinstance(want, Reason) else "grant")
                codes[key] = codes.get(key, 0) + 1
                want = _reference(view, room, job, placement, credit, floor)
                got = policy.admit(view, room, job, 0, 8, placement, credit)
                assert _same(got, want), (view, placement, credit, got, want)
    # every outcome on one node and on several
    for n in (1, 2):
        for code in ("grant", "POWER_RAMP", "POWER_CAP"):
            assert codes.get((n, code), 0) > 50, codes


def test_ramp_refuses_reads_every_halls_class_level_at_most_the_floor() -> None:
    job = Job(1, "p1", "a", 8, 100.0)
    job.priority = 100
    said = 0
    for _, view in _states(1490, 3000):
        room = Watts.of(view)
        firsts = {
            min(view.target.get(("generic", 0, 100, h), 0), view.floor)
            for h in range(len(room.hall_w))
        }
        want = _ramp_refuses(view, room, job, 0, 8, firsts, view.floor)
        assert CapToFit().ramp_refuses(view, room, job, 0, 8) is want, view
        said += want
    assert said > 100, said
