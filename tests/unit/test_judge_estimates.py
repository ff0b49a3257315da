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

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.shadow import PASSES, Reservation, blocked_judge, first_blocked
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
        judge = blocked_judge(snap, None, tuple(range(n_f)), reserved, codes, judged)
        want_codes: dict = {}
        want_judged = 0
        for _ in range(10):
            free[:] = [rng.choice([0, 2, 4, 8, 12, 16, 24]) for _ in range(n_f)]
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
