"""The plain judge of several flavors (shadow.blocked_judge's judge_plain) reads the driver's
whole-gang estimates by flavor (`Job.est_gang_s`) where they are kept, and asks `estimate_s`
where an entry or the row is missing. Against first_blocked with the estimate function alone:
random jobs, free counts, reservations, estimates that differ by flavor and gang, rows full,
partial or absent (bench/RESULTS.md section 112)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import test_cycle as tc
import test_walk_skip_fuzz as twsf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

import cortex.scheduler.cycle as cycle_mod
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import schedule
from cortex.scheduler.placement import alloc_size
from cortex.scheduler.shadow import PASSES, Reservation, blocked_judge, first_blocked, widest
from cortex.scheduler.snapshot import Snapshot
from cortex.workload.job import Job

_GROUPS = [
    {"flavor": "H200-SXM", "nodes": 4, "nodes_per_pod": 4},
    {"flavor": "H100-SXM5", "nodes": 4, "gpus_per_node": 4},  # whole nodes differ by flavor
    {"flavor": "B200-GB200", "nodes": 4, "gpus_per_node": 4},
]
FLEETS = {
    name: build(parse_fleet({"name": name, "halls": [{"name": "h", "groups": groups}]}, "test"))
    for name, groups in (("two", _GROUPS[:2]), ("three", _GROUPS))
}


# Two flavors take judge_two (the loop unrolled), three judge_plain's loop.
@pytest.mark.parametrize("fleet", ["two", "three"])
def test_the_plain_judge_reads_the_whole_gang_row_as_the_estimate_answers(fleet: str) -> None:
    rng = random.Random(23)
    st, pend, _ = tc._setup(FLEETS[fleet], tc.PROFILES["priority"], ("a",))
    gpn = st.gpn
    n_f = len(gpn)
    assert n_f == (2 if fleet == "two" else 3)
    free0 = st.free_gpus
    codes_seen = set()
    from_row = 0
    ests = [10.0, 50.0, 60.0, 99.0, 100.0, 300.0, 400.0]
    for _ in range(400):
        reserved = {
            f: Reservation(1, rng.choice([50.0, 100.0, 400.0]), rng.choice([0, 2, 8, 12]))
            for f in range(n_f)
        }
        # Flavors' estimates of one gang differ (a row read at the wrong flavor answers wrong).
        est = {(f, g): rng.choice(ests) for f in range(n_f) for g in range(1, 64)}
        asked: list = []

        def estimate_s(j: Job, f: int, g: int, e: dict = est, asked: list = asked) -> float:
            asked.append((f, g))
            return e[(f, g)]

        snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, estimate_s)
        free = st.free_gpus = [0] * n_f
        codes: dict = {}
        judged = [0]
        judge, fresh = blocked_judge(snap, None, tuple(range(n_f)), reserved, codes, judged)
        want_codes: dict = {}
        want_judged = 0
        for _ in range(10):
            free[:] = [rng.choice([0, 2, 3, 4, 7, 8, 12, 16, 24]) for _ in range(n_f)]
            for res in reserved.values():
                # Extras off whole nodes and below zero too (a start behind a head spends them).
                res.extra_gpus = rng.choice([-2, 0, 2, 5, 8, 12])
            if fresh is not None:
                fresh()  # as the walk does at each skip request
            gpus = rng.choice([1, 3, 4, 8, 12, 16, 20, 40])
            emin = rng.choice([None, None, None, gpus, 1])
            job = Job(1, "j", "a", gpus, 10.0, elastic_min=emin)
            job.flavor_ids = rng.choice([(), (), (), (), (1,), (1, 0)])
            flavors = job.flavor_ids or range(n_f)
            shape = rng.choice(["none", "full", "full", "part"])
            if shape != "none":
                job.est_gang_s = [
                    est[(f, gpus)] if shape == "full" or rng.random() < 0.5 else None
                    for f in range(n_f)
                ]
            gangs = (gpus, emin) if emin is not None and emin < gpus else (gpus,)
            want = first_blocked(job, flavors, gangs, free, gpn, reserved, est_of(est), 0.0)
            del asked[:]
            assert judge(job) is (want is not PASSES)
            row = job.est_gang_s
            if row is not None and len(gangs) == 1 and not job.flavor_ids:
                # A kept entry is read, not asked for.
                assert not [a for a in asked if row[a[0]] is not None], (row, asked)
                from_row += any(x is not None for x in row)
            if want is not PASSES:
                want_codes[want] = want_codes.get(want, 0) + 1
                want_judged += 1
            assert list(codes.items()) == list(want_codes.items())
            assert judged[0] == want_judged
            codes_seen.add(want)
    st.free_gpus = free0
    assert from_row > 500 and len(codes_seen) == 3


def est_of(est: dict) -> Callable[[Job, int, int], float]:
    """The estimate function alone (first_blocked's oracle side): no row read."""
    return lambda j, f, g: est[(f, g)]


def test_the_widest_gang_a_count_takes_is_exactly_where_allocations_stop_fitting() -> None:
    """judge_two keeps each free count and extra as `widest(x, gpn)`: for every gang, node size
    and count (below zero too: spent extras), alloc_size(gang) > x exactly when gang > widest."""
    for gpn in range(1, 10):
        for x in range(-3, 50):
            w = widest(x, gpn)
            for gang in range(1, 80):
                assert (alloc_size(gang, gpn) > x) is (gang > w), (gpn, x, gang)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(twsf.CASES, st_.sampled_from(["priority", "nopreempt", "earliest", "power"]))
def test_every_answer_of_the_judge_in_a_pass_is_first_blockeds_on_the_live_state(
    d: dict, profile: str
) -> None:
    """In whole deep passes (two flavors: judge_two, and the general judge for elastic jobs and
    jobs naming flavors) each answer the judge gives is what first_blocked answers on the state
    at that moment: a judge that keeps free counts and extras must read them again at every
    skip request (jobs the walk takes between requests start and spend them)."""
    snap, pol = twsf._snapshot({**d, "fleet": "two", "profile": profile})
    made = cycle_mod.blocked_judge
    answers = 0

    def spy(
        sn: Snapshot, order: object, every: tuple[int, ...], reserved: dict, codes: dict, n: list
    ) -> tuple:
        judge, fresh = made(sn, order, every, reserved, codes, n)  # type: ignore[arg-type]

        def checked(job: Job) -> bool:
            nonlocal answers
            st = sn.state
            emin = job.elastic_min
            gangs = (job.gpus, emin) if emin is not None and emin < job.gpus else (job.gpus,)
            want = first_blocked(
                job, job.flavor_ids or every, gangs, st.free_gpus, st.gpn, reserved,
                sn.estimate_s, sn.now_s,
            )  # fmt: skip
            got = judge(job)
            assert got is (want is not PASSES), (job.id, want)
            answers += 1
            return got

        return checked, fresh

    with pytest.MonkeyPatch.context() as m:
        m.setattr(cycle_mod, "blocked_judge", spy)
        schedule(snap, pol, deep=True, commit=True, explain=False)
