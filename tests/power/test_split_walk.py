"""The split class's walk (scheduler/cap_solver.py raise_classes): the first class that does not
fit as a whole moves its oldest members up one level, one by one, while each fits. The walk
stops once the site's room is below every member's step, and tests a member in one hall without
the per-hall list; it must move exactly the members that trying every member would move. Watts
here are whole numbers, so a room equal to a step (the boundary of the stop) comes up often."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from test_solve_caps_loop import _reference_solve, _same

from cortex.scheduler.cap_solver import CapJob, solve_caps

N_LEVELS = 3
N_HALLS = 2
STEPS_W = (0.0, 100.0, 200.0, 300.0, 500.0)


def _job(
    i: int, steps: tuple[float, float], start_s: float, halls: tuple, prio: int = 1, hall: int = 0
) -> CapJob:
    floor_w = 1000.0
    inc = (floor_w + steps[0] + steps[1], floor_w + steps[1], floor_w)
    return CapJob(
        id=i,
        key=("llm", 0, prio, hall),
        priority=prio,
        start_s=start_s,
        gpus=8,
        gain=1.0,
        kept=(1.0, 0.9, 0.7),
        inc_w=inc,
        halls=halls,
    )


@st.composite
def _split_case(draw: st.DrawFn) -> tuple[list[CapJob], float, list[float]]:
    n = draw(st.integers(1, 12))
    jobs = []
    for i in range(n):
        steps = (draw(st.sampled_from(STEPS_W)), draw(st.sampled_from(STEPS_W)))
        prio = draw(st.sampled_from([1, 2]))
        hall = draw(st.integers(0, N_HALLS - 1))
        shape = draw(st.sampled_from(["whole", "whole", "split", "none"]))
        if shape == "whole":
            halls: tuple[tuple[int, float], ...] = ((hall, 1.0),)
        elif shape == "split":
            halls = ((hall, 0.5), (1 - hall, 0.5))
        else:
            halls = ()
        start = float(draw(st.integers(0, 5)))  # ties: the sort keeps start order
        jobs.append(_job(i, steps, start, halls, prio, hall))
    floor = sum(j.inc_w[-1] for j in jobs)
    top = sum(j.inc_w[0] for j in jobs)
    site = floor + draw(st.integers(0, int(top - floor) // 100 + 1)) * 100.0
    halls_w = [
        math.inf if draw(st.booleans()) else floor + draw(st.integers(-2, 30)) * 100.0
        for _ in range(N_HALLS)
    ]
    return jobs, site, halls_w


@given(_split_case())
@settings(max_examples=600, deadline=None)
def test_the_walk_moves_what_trying_every_member_moves(
    case: tuple[list[CapJob], float, list[float]],
) -> None:
    jobs, site, halls = case
    assert _same(
        solve_caps(jobs, site, halls, N_LEVELS), _reference_solve(jobs, site, halls, N_LEVELS)
    )


def test_a_room_equal_to_the_least_step_still_takes_that_member() -> None:
    # One class whose raise as a whole does not fit: the oldest member (step 300 W) fits, then
    # the room left is exactly the next member's 100 W step (which fits, at equality), and
    # after it a third member's 100 W step no longer does.
    a = _job(1, (0.0, 300.0), 0.0, ((0, 1.0),))
    b = _job(2, (0.0, 500.0), 1.0, ((0, 1.0),))  # too big once a is up
    c = _job(3, (0.0, 100.0), 2.0, ((0, 1.0),))
    d = _job(4, (0.0, 100.0), 3.0, ((0, 1.0),))
    jobs = [a, b, c, d]
    site = 4000.0 + 400.0
    plan = solve_caps(jobs, site, [math.inf, math.inf], N_LEVELS)
    assert plan.levels == {1: 1, 2: 2, 3: 1, 4: 2}
    assert _same(plan, _reference_solve(jobs, site, [math.inf, math.inf], N_LEVELS))


def test_a_room_equal_to_the_least_step_from_the_start() -> None:
    # No member has moved yet and the room is exactly the least step: that member moves.
    a = _job(1, (0.0, 500.0), 0.0, ((0, 1.0),))
    b = _job(2, (0.0, 200.0), 1.0, ((0, 1.0),))
    plan = solve_caps([a, b], 2000.0 + 200.0, [math.inf, math.inf], N_LEVELS)
    assert plan.levels == {1: 2, 2: 1}


def test_a_later_member_with_a_smaller_step_fits_after_a_bigger_one_did_not() -> None:
    # The walk goes on past a member that does not fit: the least step, not the failed one,
    # bounds what the rest could take. A member in one hall is held by its hall's budget too.
    a = _job(1, (0.0, 500.0), 0.0, ((0, 1.0),))
    b = _job(2, (0.0, 300.0), 1.0, ((0, 1.0),))
    e = _job(4, (0.0, 100.0), 1.5, ((1, 1.0),), hall=0)  # its GPUs in hall 1, held there
    c = _job(3, (0.0, 100.0), 2.0, ((0, 1.0),))
    jobs = [a, b, c, e]
    plan = solve_caps(jobs, 4000.0 + 400.0, [math.inf, 1000.0 + 50.0], N_LEVELS)
    assert plan.levels == {1: 2, 2: 1, 3: 1, 4: 2}
    assert _same(plan, _reference_solve(jobs, 4400.0, [math.inf, 1050.0], N_LEVELS))


def test_a_hall_budget_taken_by_one_member_holds_the_next() -> None:
    # The site has room for both; hall 0 for one step: the second member stays down.
    a = _job(1, (0.0, 100.0), 0.0, ((0, 1.0),))
    b = _job(2, (0.0, 100.0), 1.0, ((0, 1.0),))
    plan = solve_caps([a, b], 1e6, [2000.0 + 100.0, math.inf], N_LEVELS)
    assert plan.levels == {1: 1, 2: 2}
