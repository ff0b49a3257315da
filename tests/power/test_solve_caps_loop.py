"""The cap solver (scheduler/cap_solver.py solve_caps) sums each class once, steps per class and
level, and sums a class's watts per hall only in the halls it has members in. It must decide
exactly what a plain per-job, per-hall version decides (its first numpy version, kept here as the
reference, with its sums made the same exact integers): the same levels in the same order, the
same pauses and the same class targets, for any running set and budgets."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex.scheduler.cap_solver import (
    W_UNIT,
    CapJob,
    CapPlan,
    ClassKey,
    _pause_to_fit,
    hall_ladder,
    quantize,
    solve_caps,
)

N_LEVELS = 5
N_HALLS = 3


def _reference_solve(
    jobs: Sequence[CapJob], site_budget_w: float, hall_budget_w: Sequence[float], n_levels: int
) -> CapPlan:
    """solve_caps's first numpy version, with its float sums made exact integers in the
    solver's units (cap_solver.quantize; object arrays of Python ints) as solve_caps now adds
    them: per job, per level, per hall, no class sums kept, no short cuts."""
    floor = n_levels - 1
    levels, paused, _, _ = _pause_to_fit(jobs, site_budget_w, hall_budget_w, floor)
    gone = set(paused)
    alive = [j for j in jobs if j.id not in gone]
    if not alive:
        return CapPlan(levels, paused, {})
    keys: dict[ClassKey, int] = {}
    cls = [keys.setdefault(j.key, len(keys)) for j in alive]
    n_cls, n_halls = len(keys), len(hall_budget_w)
    c_inc = np.zeros((n_cls, n_levels), dtype=object)
    c_gk = np.zeros((n_cls, n_levels), dtype=object)
    c_hall = np.zeros((n_cls, n_halls, n_levels), dtype=object)
    for j, c in zip(alive, cls, strict=True):
        q = quantize(j.inc_w, j.kept, float(j.gpus * j.gain))
        c_inc[c] += np.array(q[:n_levels], dtype=object)
        c_gk[c] += np.array(q[n_levels:], dtype=object)
        for h, sh in j.halls:
            c_hall[c, h] += np.array(hall_ladder(j.inc_w, sh), dtype=object)
    prio = dict.fromkeys(keys, 0)
    for j in alive:
        prio[j.key] = j.priority
    key_of = list(keys)
    site_b = site_budget_w * W_UNIT
    budget_h = [b * W_UNIT for b in hall_budget_w]
    site = sum(c_inc[:, floor])
    halls_a = [sum(c_hall[:, h, floor]) for h in range(n_halls)]
    c_level = [floor] * n_cls
    heap: list[tuple[int, float, int, int]] = []

    def push(c: int, level: int) -> None:
        if level == 0:
            return
        watts = c_inc[c, level - 1] - c_inc[c, level]
        gain = c_gk[c, level - 1] - c_gk[c, level]
        ratio = gain / watts if watts > 0 else math.inf
        heapq.heappush(heap, (-prio[key_of[c]], -ratio, c, level))

    for c in range(n_cls):
        push(c, floor)
    split: tuple[int, int] | None = None
    while heap:
        _, _, c, level = heapq.heappop(heap)
        d_site = c_inc[c, level - 1] - c_inc[c, level]
        d_halls = [c_hall[c, h, level - 1] - c_hall[c, h, level] for h in range(n_halls)]
        if site + d_site <= site_b and all(
            halls_a[h] + d_halls[h] <= budget_h[h] for h in range(n_halls)
        ):
            site += d_site
            for h in range(n_halls):
                halls_a[h] += d_halls[h]
            c_level[c] = level - 1
            push(c, level - 1)
        elif split is None:
            split = (c, level)  # the first class that does not fit as a whole; it stops here
    levels = {j.id: c_level[ci] for j, ci in zip(alive, cls, strict=True)}
    if split is not None:
        # Move the split class's oldest members up one by one while they fit.
        c, level = split
        members = sorted(
            (j for j, ci in zip(alive, cls, strict=True) if ci == c),
            key=lambda m: m.start_s,
        )
        for m in members:
            q = quantize(m.inc_w, m.kept, 1.0)
            d = q[level - 1] - q[level]
            dh = [
                (h, hall_ladder(m.inc_w, sh)[level - 1] - hall_ladder(m.inc_w, sh)[level])
                for h, sh in m.halls
            ]
            if site + d <= site_b and all(halls_a[h] + x <= budget_h[h] for h, x in dh):
                site += d
                for h, x in dh:
                    halls_a[h] += x
                levels[m.id] = level - 1
    target = {key_of[c]: c_level[c] for c in range(n_cls)}
    return CapPlan(levels, paused, target)


@st.composite
def _jobs(draw: st.DrawFn) -> list[CapJob]:
    n = draw(st.integers(1, 30))
    out = []
    for i in range(n):
        kind = draw(st.sampled_from(["llm", "vision"]))
        prio = draw(st.sampled_from([10, 100, 1000]))
        hall = draw(st.integers(0, N_HALLS - 1))
        gpus = draw(st.sampled_from([8, 16, 64, 512]))
        per = draw(st.floats(300.0, 700.0))
        # A concave-ish ladder: each lower level saves watts and keeps less.
        steps = draw(st.lists(st.floats(0.0, 60.0), min_size=N_LEVELS - 1, max_size=N_LEVELS - 1))
        pers = [per]
        for s in steps:
            pers.append(max(pers[-1] - s, 100.0))
        kept = tuple(1.0 - 0.04 * lv * lv / N_LEVELS for lv in range(N_LEVELS))
        split = draw(st.booleans())
        halls = ((hall, 0.5), ((hall + 1) % N_HALLS, 0.5)) if split else ((hall, 1.0),)
        out.append(
            CapJob(
                id=i,
                key=(kind, 0, prio, hall),
                priority=prio,
                start_s=draw(st.floats(0.0, 1e5)),
                gpus=gpus,
                gain=draw(st.sampled_from([1.0, 1.3])),
                kept=kept,
                inc_w=tuple(gpus * (p - 90.0) for p in pers),
                halls=halls,
            )
        )
    return out


def _same(a: CapPlan, b: CapPlan) -> bool:
    return (
        list(a.levels.items()) == list(b.levels.items())
        and a.paused == b.paused
        and list(a.target.items()) == list(b.target.items())
    )


@given(
    _jobs(), st.floats(0.0, 1.0), st.lists(st.floats(0.0, 1.0), min_size=N_HALLS, max_size=N_HALLS)
)
@settings(max_examples=300, deadline=None)
def test_the_solver_decides_what_the_numpy_loop_decided(
    jobs: list[CapJob], site_frac: float, hall_fracs: list[float]
) -> None:
    top = sum(j.inc_w[0] for j in jobs)
    site = site_frac * top * 1.1
    halls = [f * top * 0.6 if f < 0.9 else math.inf for f in hall_fracs]
    got = solve_caps(jobs, site, halls, N_LEVELS)
    want = _reference_solve(jobs, site, halls, N_LEVELS)
    assert _same(got, want)


@st.composite
def _mixed_jobs(draw: st.DrawFn) -> list[CapJob]:
    """Classes whose members lie in several halls (uneven splits, a split member among whole
    ones, members of one class in different halls) and a pending head with no hall, as
    make_room adds it: the solver's hall sums take a short cut only for classes wholly in
    one hall."""
    n = draw(st.integers(1, 24))
    out = []
    for i in range(n):
        prio = draw(st.sampled_from([10, 100]))
        key_hall = draw(st.integers(0, N_HALLS - 1))
        gpus = draw(st.sampled_from([8, 64]))
        pers = draw(st.lists(st.floats(100.0, 700.0), min_size=N_LEVELS, max_size=N_LEVELS))
        if draw(st.booleans()):  # else a ladder where a raise may free watts in a hall
            pers.sort(reverse=True)
        shape = draw(st.sampled_from(["whole", "other", "split", "none"]))
        if shape == "whole":
            halls: tuple[tuple[int, float], ...] = ((key_hall, 1.0),)
        elif shape == "other":  # wholly in a hall that is not the class's
            halls = (((key_hall + 1) % N_HALLS, 1.0),)
        elif shape == "split":
            k = draw(st.integers(1, 7))
            halls = ((key_hall, k / 8), ((key_hall + 2) % N_HALLS, (8 - k) / 8))
        else:
            halls = ()
        out.append(
            CapJob(
                id=i,
                key=("llm", 0, prio, key_hall if halls else -1),
                priority=prio,
                start_s=float(draw(st.integers(0, 50))),
                gpus=gpus,
                gain=1.0,
                kept=tuple(1.0 - 0.05 * lv for lv in range(N_LEVELS)),
                inc_w=tuple(gpus * (p - 90.0) for p in pers),
                halls=halls,
            )
        )
    return out


@given(
    _mixed_jobs(),
    st.floats(0.0, 1.2),
    st.lists(st.floats(-0.2, 1.0), min_size=N_HALLS, max_size=N_HALLS),
)
@settings(max_examples=400, deadline=None)
def test_hall_sums_per_class_decide_what_every_hall_decided(
    jobs: list[CapJob], site_frac: float, hall_fracs: list[float]
) -> None:
    # Negative hall budgets leave a hall over budget after every pause: then no raise fits.
    top = sum(j.inc_w[0] for j in jobs)
    site = site_frac * top
    halls = [f * top * 0.5 if f < 0.9 else math.inf for f in hall_fracs]
    got = solve_caps(jobs, site, halls, N_LEVELS)
    want = _reference_solve(jobs, site, halls, N_LEVELS)
    assert _same(got, want)


def test_a_hall_over_budget_stops_every_class_raise() -> None:
    # Hall 1's budget is below zero, so it stays over even with its one job paused; the class in
    # hall 0 alone may not rise as a whole either (a class's raise checks every hall), so its
    # target stays at the floor; its members then rise one by one on their own halls.
    a = CapJob(1, ("llm", 0, 1, 0), 1, 0.0, 8, 1.0, (1.0, 0.9), (800.0, 600.0), ((0, 1.0),))
    b = CapJob(2, ("llm", 0, 0, 1), 0, 0.0, 8, 1.0, (1.0, 0.9), (800.0, 600.0), ((1, 1.0),))
    plan = solve_caps([a, b], 1e6, [1e6, -1.0, 1e6], 2)
    assert plan.paused == [2]
    assert plan.target == {("llm", 0, 1, 0): 1}
    assert plan.levels == {1: 0}
    assert plan == _reference_solve([a, b], 1e6, [1e6, -1.0, 1e6], 2)
