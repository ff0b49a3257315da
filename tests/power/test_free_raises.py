"""Raises that add no watts (scheduler/cap_solver.py raise_classes, class_steps' `up`): a
ladder's top levels often draw the same (caps above the run's draw), and the greedy loop takes
such raises at once instead of one heap round each. It must decide exactly what the loop that
pops every raise decided (test_solve_caps_loop's numpy reference): ladders with flat tops and
flat steps within, split members, halls over budget (where a raise that adds nothing still may
not be taken), and ladders whose raise frees watts in a hall."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from test_solve_caps_loop import _reference_solve, _same

from cortex.scheduler.cap_solver import (
    CapClass,
    CapJob,
    cap_classes,
    class_steps,
    raise_classes,
    solve_caps,
)

N_LEVELS = 6
N_HALLS = 3


@st.composite
def _flat_jobs(draw: st.DrawFn) -> list[CapJob]:
    n = draw(st.integers(1, 20))
    out = []
    for i in range(n):
        prio = draw(st.sampled_from([10, 100, 1000]))
        hall = draw(st.integers(0, N_HALLS - 1))
        gpus = draw(st.sampled_from([8, 64]))
        # Caps from 700 W down by whole steps of 0-100 W, the draw min(cap, the run's draw):
        # every cap above the draw gives the same level (a flat top), a step of 0 a flat within.
        draw_w = float(draw(st.sampled_from([250, 400, 550, 700, 900])))
        caps = [700.0]
        for _ in range(N_LEVELS - 1):
            caps.append(caps[-1] - draw(st.sampled_from([0.0, 50.0, 100.0])))
        pers = [min(c, draw_w) for c in caps]
        if draw(st.integers(0, 5)) == 0:  # now and then a raise that frees watts
            pers = draw(st.permutations(pers))
        kept = tuple(min(1.0, p / draw_w) ** 0.5 for p in pers)
        shape = draw(st.sampled_from(["whole", "whole", "whole", "split", "other", "none"]))
        if shape == "whole":
            halls: tuple[tuple[int, float], ...] = ((hall, 1.0),)
        elif shape == "split":
            k = draw(st.integers(1, 3))
            halls = ((hall, k / 4), ((hall + 1) % N_HALLS, (4 - k) / 4))
        elif shape == "other":
            halls = (((hall + 2) % N_HALLS, 1.0),)
        else:  # a pending head's: no hall
            halls = ()
        out.append(
            CapJob(
                id=i,
                key=("llm", 0, prio, hall if halls else -1),
                priority=prio,
                start_s=float(draw(st.integers(0, 9))),
                gpus=gpus,
                gain=draw(st.sampled_from([1.0, 1.3])),
                kept=kept,
                inc_w=tuple(gpus * (p - 90.0) for p in pers),
                halls=halls,
            )
        )
    return out


@given(
    _flat_jobs(),
    st.floats(0.0, 1.2),
    st.lists(st.floats(-0.2, 1.0), min_size=N_HALLS, max_size=N_HALLS),
)
@settings(max_examples=800, deadline=None)
def test_raises_that_add_no_watts_decide_what_popping_each_decided(
    jobs: list[CapJob], site_frac: float, hall_fracs: list[float]
) -> None:
    # Negative hall budgets leave a hall over budget after every pause: then no raise is taken,
    # not even one that adds nothing.
    top = sum(j.inc_w[0] for j in jobs)
    site = site_frac * top
    halls = [f * top * 0.5 if f < 0.9 else math.inf for f in hall_fracs]
    got = solve_caps(jobs, site, halls, N_LEVELS)
    want = _reference_solve(jobs, site, halls, N_LEVELS)
    assert _same(got, want)


def _up(q: list[int], halls: list[tuple[int, list[int]]], n: int) -> list[int]:
    """class_steps' `up` by its definition: from l, raise while the raise adds no watts."""
    out = []
    for lv in range(n):
        u = lv
        while u and q[u - 1] == q[u] and all(w[u - 1] == w[u] for _, w in halls):
            u -= 1
        out.append(u)
    return out


@given(
    st.lists(st.sampled_from([0, 0, 0, 1, 5]), min_size=N_LEVELS, max_size=N_LEVELS),
    st.lists(
        st.lists(st.sampled_from([0, 0, 0, 1, 3]), min_size=N_LEVELS, max_size=N_LEVELS),
        min_size=0,
        max_size=3,
    ),
    st.booleans(),
)
@settings(max_examples=500, deadline=None)
def test_up_is_the_level_reached_by_raises_that_add_nothing(
    site_d: list[int], hall_ds: list[list[int]], site_as_hall: bool
) -> None:
    # Ladders built from their steps (level n-1 at the bottom); a one-hall class's hall ladder
    # is its site's first n (the usual case) or a ladder of its own.
    n = N_LEVELS

    def ladder(ds: list[int]) -> list[int]:
        out = [0] * n
        for lv in range(n - 2, -1, -1):
            out[lv] = out[lv + 1] + ds[lv]
        return out

    q = [*ladder(site_d), *range(n, 0, -1)]
    halls = [(h, ladder(ds)) for h, ds in enumerate(hall_ds)]
    if site_as_hall and len(halls) == 1:
        halls = [(0, q[:n])]
    assert class_steps(q, halls, n)[3] == _up(q, halls, n)


def _steps_spelled_out(q: list[int], halls: list[tuple[int, list[int]]], n: int) -> tuple:
    """class_steps by its definition, every level and hall spelled out as (hall, watts) pairs."""
    d_site = [0, *[q[lv - 1] - q[lv] for lv in range(1, n)]]
    neg_ratio = [0.0] + [
        -((q[n + lv - 1] - q[n + lv]) / d_site[lv]) if d_site[lv] > 0 else -math.inf
        for lv in range(1, n)
    ]
    d_halls = [[], *[[(h, w[lv - 1] - w[lv]) for h, w in halls] for lv in range(1, n)]]
    return d_site, neg_ratio, d_halls, _up(q, halls, n)


@given(
    st.lists(st.sampled_from([0, 0, 0, 1, 5, -2, 2**40 + 3]), min_size=N_LEVELS, max_size=N_LEVELS),
    st.lists(st.integers(-(2**70), 2**70), min_size=N_LEVELS, max_size=N_LEVELS),
    st.lists(
        st.lists(st.sampled_from([0, 0, 0, 1, 3, -1]), min_size=N_LEVELS, max_size=N_LEVELS),
        min_size=0,
        max_size=3,
    ),
    st.booleans(),
)
@settings(max_examples=600, deadline=None)
def test_class_steps_equal_their_definition_in_one_hall_and_in_several(
    site_d: list[int], gains: list[int], hall_ds: list[list[int]], site_as_hall: bool
) -> None:
    # A one-hall class keeps its hall's watts per level as plain ints (and its hall), a class in
    # several halls (or none: a pending head's) the (hall, watts) pairs per level: both read
    # here as the pairs. Steps that free watts (negative) and big integers included.
    n = N_LEVELS

    def ladder(ds: list[int]) -> list[int]:
        out = [0] * n
        for lv in range(n - 2, -1, -1):
            out[lv] = out[lv + 1] + ds[lv]
        return out

    q = [*ladder(site_d), *gains]
    halls = [(h + 1, ladder(ds)) for h, ds in enumerate(hall_ds)]
    if site_as_hall and len(halls) == 1:
        halls = [(2, q[:n])]
    d_site, neg_ratio, d_halls, up, h1 = class_steps(q, halls, n)
    if len(halls) == 1:
        assert h1 == halls[0][0]
        d_halls = [[], *[[(h1, d)] for d in d_halls[1:]]]
    else:
        assert h1 == -1
    assert (d_site, neg_ratio, d_halls, up) == _steps_spelled_out(q, halls, n)


def _one(i: int, inc: tuple[float, ...], hall: int = 0, prio: int = 1) -> CapJob:
    kept = tuple(1.0 - 0.1 * lv for lv in range(len(inc)))
    return CapJob(i, ("llm", 0, prio, hall), prio, float(i), 8, 1.0, kept, inc, ((hall, 1.0),))


def test_no_raise_is_taken_over_the_site_budget_even_one_that_adds_nothing() -> None:
    # raise_classes on its own, started over the site budget (its callers pause first): the
    # flat raise from the floor fails like any other, so the class stays there.
    a = _one(1, (500.0, 500.0, 300.0, 300.0))
    classes = _classes([a])
    site = a.q[3]
    c_level, moved = raise_classes(classes, site, [site, 0, 0], site - 1.0, [math.inf] * 3, 4)
    assert c_level == [3] and moved == {}


def test_a_flat_raise_in_a_hall_over_budget_is_not_taken() -> None:
    # Hall 1 over budget from the start: no class may rise, however little it adds.
    a = _one(1, (500.0, 500.0, 300.0), hall=0)
    b = _one(2, (400.0, 400.0, 400.0), hall=1)
    classes = _classes([a, b])
    site = a.q[2] + b.q[2]
    halls = [a.q[2], b.q[2], 0]
    c_level, moved = raise_classes(
        classes, site, halls, math.inf, [math.inf, b.q[2] - 1.0, math.inf], 3
    )
    assert c_level == [2, 2] and moved == {}


def test_a_raise_that_frees_the_hall_over_budget_lets_the_other_halls_rise() -> None:
    # Hall 0 over budget at the floor; class a's raise frees watts there (its ladder draws less
    # a level up) and brings it under, so the hall no longer holds anyone back: b, in hall 1,
    # rises to the top. Its priority is lower, so a's raise is taken first.
    a = _one(1, (300.0, 300.0, 500.0), hall=0, prio=2)
    b = _one(2, (400.0, 300.0, 200.0), hall=1, prio=1)
    classes = _classes([a, b])
    site = a.q[2] + b.q[2]
    halls = [a.q[2], b.q[2], 0]
    c_level, moved = raise_classes(
        classes, site, halls, math.inf, [a.q[2] - 1.0, math.inf, math.inf], 3
    )
    assert c_level == [0, 0] and moved == {}


def _classes(jobs: list[CapJob]) -> list[CapClass]:
    return cap_classes(jobs)[0]
