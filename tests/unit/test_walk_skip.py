"""Skip requests (scheduler/ordering.py): a pass that only counts jobs behind reserved heads lets
the order pass over them. It must decide, list and count exactly what the walk that took every
job from the order did (tests/walk_reference.py), with queues long enough for the lean merge of
the rest (past MERGE_FIRST) and for one queue left alone, the examined limit binding or not."""

from __future__ import annotations

import dataclasses
import random

import pytest
import test_cycle as tc
import test_walk_fast as twf

import cortex.scheduler.cycle as cycle_mod
import walk_reference
from cortex.scheduler.cycle import schedule
from cortex.scheduler.ordering import MERGE_FIRST, PriorityFairShare, _merged_rest, _rest_of
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job


def _long_queue_cluster(seed: int, pol: cycle_mod.Policies) -> tuple[ClusterState, PendingQueues]:
    """A cluster whose free GPUs are few and scattered, and 20-150 pending jobs in two queues
    (or one), most of them wider than what is free."""
    rng = random.Random(seed)
    st, pend, _ = tc._setup(tc.QUOTA, pol, ("a", "b"))
    jid = 1000
    for n in range(8):
        team = rng.randrange(2)
        k = rng.choice([4, 6, 7, 8])
        jid += 1
        tc._run(st, jid, ((n, k),), end=rng.uniform(10, 5000), team=team,
                prio=rng.choice([10, 100]), start=rng.uniform(-2000, 0))  # fmt: skip
    teams = 1 if seed % 4 == 0 else 2
    for i in range(rng.randint(20, 150)):
        gpus = rng.choice([1, 2, 3, 4, 8, 16, 24, 32, 48])
        elastic = gpus // 2 if gpus >= 16 and rng.random() < 0.3 else None
        tc._pend(pend, i, gpus, rng.uniform(10, 8000), team=rng.randrange(teams),
                 prio=rng.choice([10, 100, 1000]), submit=rng.uniform(-100, 0),
                 elastic_min=elastic)  # fmt: skip
    return st, pend


@pytest.mark.parametrize("profile", ["priority", "fifo", "nopreempt"])
@pytest.mark.parametrize("deep", [True, False], ids=["deep", "quick"])
@pytest.mark.parametrize("limit", [512, 40, 17], ids=["all", "limit40", "limit17"])
def test_skipping_counted_jobs_decides_and_counts_as_the_reference_walk(
    profile: str, deep: bool, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pol = dataclasses.replace(tc.PROFILES[profile], max_examined=limit)
    counted = 0
    for seed in range(60):
        st_a, pend_a = _long_queue_cluster(seed, pol)
        st_b, pend_b = _long_queue_cluster(seed, pol)
        with monkeypatch.context() as m:
            m.setattr(cycle_mod, "_walk", walk_reference._walk)
            want = schedule(tc._snap(st_a, pend_a), pol, deep=deep, commit=True, explain=False)
        got = schedule(tc._snap(st_b, pend_b), pol, deep=deep, commit=True, explain=False)
        assert twf._everything(got, False) == twf._everything(want, False), seed
        assert tc._ordered(st_b) == tc._ordered(st_a), seed
        counted += got.capacity_blocked
    # The seeds reach the counted branch past the first merge picks (a quick pass stops once
    # every flavor has a blocked head: it counts nothing).
    assert counted > 100 if deep else counted == 0


def _jobs(spec: list[tuple[int, int | None]]) -> list[tuple[tuple, Job]]:
    out = []
    for i, (gpus, emin) in enumerate(spec):
        job = Job(i, f"j{i}", "a", gpus, 10.0, submit_s=float(i), elastic_min=emin)
        out.append(((-100, float(i), i), job))
    return out


def test_a_skip_request_passes_over_wide_jobs_only_up_to_its_limit() -> None:
    """By hand: one queue left, top 4. Jobs 8, 8, elastic 16/2, 8, 8, 2: the request [4, 10]
    passes over the first two and stops at the elastic job (its smallest gang fits); the next
    request [4, 1] passes over one job only, and the one after is yielded though wide."""
    items = _jobs([(8, None), (8, None), (8, None), (16, 2), (8, None), (8, None), (2, None)])
    gen = _rest_of(items[0], iter(items[1:]))
    assert next(gen).id == 0
    req = [4, 10, 0]
    assert gen.send(req).id == 3 and req[2] == 2
    req = [4, 1, 0]
    assert gen.send(req).id == 5 and req[2] == 1
    assert next(gen).id == 6
    with pytest.raises(StopIteration):
        next(gen)


def test_a_skip_under_way_carries_over_when_one_queue_is_left() -> None:
    """Two queues merged; queue 1 runs out while a skip is under way: the rest of queue 0 is
    passed over with what is left of the limit."""
    q0 = _jobs([(8, None)] * 6)
    q1 = [((-100, 0.5, 100), Job(100, "x", "b", 8, 10.0, submit_s=0.5))]
    usage, version, totals, weights = [[0], [0]], [0, 0], [8], [1.0, 1.0]
    rest = [(q0[0], 0, iter(q0[1:])), (q1[0], 1, iter(q1[1:]))]
    gen = _merged_rest(rest, usage, version, totals, weights)
    assert next(gen).id == 0  # (-100, 0.0, 0) < (-100, 0.5, 100)
    req = [4, 3, 0]
    assert gen.send(req).id == 3 and req[2] == 3  # passed over 100, 1, 2
    assert [j.id for j in gen] == [4, 5]


def test_the_first_merge_picks_take_a_skip_request() -> None:
    """Within the first MERGE_FIRST picks the order takes a request too (it hands the rest to
    the lean merge): after the first job, [4, 5] passes over five wide jobs of the two queues
    in the order's own order, and the answer is the one that order has next."""
    st, pend, _ = tc._setup(tc.QUOTA, tc.PROFILES["priority"], ("a", "b"))
    for i in range(MERGE_FIRST + 4):
        tc._pend(pend, i, 48, 10.0, team=i % 2)
    plain = [j.id for j in PriorityFairShare().order(tc._snap(st, pend))]
    gen = PriorityFairShare().order(tc._snap(st, pend))
    assert next(gen).id == plain[0]
    req = [4, 5, 0]
    assert gen.send(req).id == plain[6] and req[2] == 5  # type: ignore[attr-defined]
    assert [j.id for j in gen] == plain[7:]


def test_a_judge_passes_over_jobs_it_stops_and_is_asked_once_each() -> None:
    """By hand, one queue left and two merged: top 4, the judge stops odd ids. Wide jobs are
    passed over without asking it; each fitting job is asked once (also the one yielded), the
    limit counts both kinds, and a job past the limit is not asked."""
    asked: list[int] = []

    def judge(job: Job) -> bool:
        asked.append(job.id)
        return job.id % 2 == 1

    items = _jobs([(2, None), (8, None), (1, None), (2, None), (8, None), (3, None), (2, None)])
    gen = _rest_of(items[0], iter(items[1:]))
    assert next(gen).id == 0
    req: list = [4, 10, 0, judge]
    assert gen.send(req).id == 2 and req[2] == 1 and asked == [2]  # 1 wide, 2 judged: yield
    req = [4, 10, 0, judge]
    assert gen.send(req).id == 6 and req[2] == 3 and asked == [2, 3, 5, 6]  # 3, 4 (wide), 5
    asked.clear()
    q0 = _jobs([(2, None)] * 6)
    q1 = [((-100, 0.5, 101), Job(101, "x", "b", 1, 10.0, submit_s=0.5))]
    rest = [(q0[0], 0, iter(q0[1:])), (q1[0], 1, iter(q1[1:]))]
    gen = _merged_rest(rest, [[0], [0]], [0, 0], [8], [1.0, 1.0])
    assert next(gen).id == 0
    req = [4, 10, 0, judge]
    # 101 (judged, stopped) comes between 0 and 1 by key; 1, 3 stopped; 2 yielded.
    assert gen.send(req).id == 2 and req[2] == 2 and asked == [101, 1, 2]
    req = [4, 1, 0, judge]
    assert gen.send(req).id == 4 and req[2] == 1 and asked == [101, 1, 2, 3]  # 4 not asked


@pytest.mark.parametrize("profile", ["priority", "nopreempt"])
def test_deep_passes_let_the_order_pass_over_what_first_blocked_stops(
    profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seeds of the reference test above reach the judge (shadow.blocked_judge): jobs that
    fit under the top free count but would delay a reserved head are passed over by the order,
    and the pass still decides and counts what the reference walk did."""
    stopped = 0
    made = cycle_mod.blocked_judge

    def spy(*args: object) -> object:
        judge, fresh = made(*args)  # type: ignore[arg-type]

        def counting(job: Job) -> bool:
            nonlocal stopped
            got = judge(job)
            stopped += got
            return got

        return counting, fresh

    monkeypatch.setattr(cycle_mod, "blocked_judge", spy)
    pol = dataclasses.replace(tc.PROFILES[profile], max_examined=512)
    for seed in range(60):
        st_a, pend_a = _long_queue_cluster(seed, pol)
        st_b, pend_b = _long_queue_cluster(seed, pol)
        with monkeypatch.context() as m:
            m.setattr(cycle_mod, "_walk", walk_reference._walk)
            want = schedule(tc._snap(st_a, pend_a), pol, deep=True, commit=True, explain=False)
        got = schedule(tc._snap(st_b, pend_b), pol, deep=True, commit=True, explain=False)
        assert twf._everything(got, False) == twf._everything(want, False), seed
    assert stopped > 20


class _Reversed:
    """A flavor order: the job's flavors (all without a list) last to first."""

    def flavors(self, snap: Snapshot, job: Job) -> tuple[int, ...]:
        return tuple(reversed(job.flavor_ids or range(len(snap.state.gpn))))


def test_the_judge_answers_and_counts_as_first_blocked() -> None:
    """blocked_judge inlines first_blocked: random jobs (gangs that are not whole nodes,
    elastic ones, two flavors) against random free counts, reservations and estimates:
    it passes a job exactly when first_blocked says PASSES, else counts first_blocked's code."""
    from cortex.scheduler.shadow import PASSES, Reservation, blocked_judge, first_blocked

    rng = random.Random(7)
    st, pend, _ = tc._setup(tc.TWO_FLAVORS, tc.PROFILES["priority"], ("a",))
    codes_seen = set()
    for _ in range(3000):
        gpn = st.gpn
        free = st.free_gpus
        n_f = len(gpn)
        reserved = {
            f: Reservation(1, rng.choice([50.0, 100.0, 400.0]), rng.choice([0, 2, 8, 12]))
            for f in range(n_f)
        }
        gpus = rng.choice([1, 3, 4, 8, 12, 16, 20, 40])
        emin = rng.choice([None, 1, 2, 6, gpus])
        job = Job(1, "j", "a", gpus, 10.0, elastic_min=emin)
        sizes = (1, 2, 3, 4, 6, 8, 12, 16, 20, 40)
        # Estimates on both sides of the shadows and equal to them: a job ending at its head's
        # shadow does not delay it (the judge's > against first_blocked's, review13).
        ests = [10.0, 50.0, 60.0, 99.0, 100.0, 300.0, 400.0]
        est = {(f, g): rng.choice(ests) for f in range(n_f) for g in sizes}
        snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g, e=est: e[(f, g)])
        st.free_gpus = [rng.choice([0, 2, 4, 8, 12, 16, 24]) for _ in range(n_f)]
        codes: dict = {}
        judged = [0]
        # Half the jobs under a flavor order (hetero's hook) that reverses the flavors: the
        # first code then comes from the last flavor (review13: a judge that ignored the
        # order passed every test before).
        order = _Reversed() if rng.random() < 0.5 else None
        job.flavor_ids = rng.choice([(), (), (1,), (1, 0)])
        flavors = (job.flavor_ids or tuple(range(n_f)))[:: -1 if order else 1]
        judge, _ = blocked_judge(snap, order, tuple(range(n_f)), reserved, codes, judged)
        gangs = (gpus, emin) if emin is not None and emin < gpus else (gpus,)
        want = first_blocked(job, flavors, gangs, st.free_gpus, gpn, reserved, snap.estimate_s, 0.0)
        assert judge(job) is (want is not PASSES)
        assert codes == ({} if want is PASSES or want is None else {want: 1})
        assert judged[0] == (0 if want is PASSES else 1)
        codes_seen.add(want)
        st.free_gpus = free
    assert len(codes_seen) == 3  # each code and PASSES reached


def test_the_one_flavor_judge_answers_and_counts_as_first_blocked() -> None:
    """On a one-flavor fleet the judge takes a path without loops (shadow.blocked_judge's
    judge_one): random jobs (part-node and multi-node gangs, elastic ones, the flavor named or
    not) against random free counts, reservations and estimates, as first_blocked answers."""
    from cortex.scheduler.shadow import PASSES, Reservation, blocked_judge, first_blocked

    rng = random.Random(11)
    st, pend, _ = tc._setup(tc.TINY, tc.PROFILES["priority"], ("a",))
    assert len(st.gpn) == 1
    g = st.gpn[0]
    codes_seen = set()
    for _ in range(3000):
        res = Reservation(1, rng.choice([50.0, 100.0, 400.0]), rng.choice([0, 2, g, 2 * g]))
        gpus = rng.choice([1, 3, g - 1, g, g + 1, 2 * g, 3 * g])
        emin = rng.choice([None, 1, 2, g, g + 1, gpus])
        job = Job(1, "j", "a", gpus, 10.0, elastic_min=emin)
        job.flavor_ids = rng.choice([(), (0,)])
        ests = [10.0, 50.0, 60.0, 99.0, 100.0, 300.0, 400.0]
        est = {k: rng.choice(ests) for k in range(1, 4 * g)}
        snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, n, e=est: e[n])
        free = st.free_gpus
        st.free_gpus = [rng.choice([0, 1, 2, g, 2 * g, 3 * g])]
        codes: dict = {}
        judged = [0]
        judge, _ = blocked_judge(snap, None, (0,), {0: res}, codes, judged)
        gangs = (gpus, emin) if emin is not None and emin < gpus else (gpus,)
        want = first_blocked(job, (0,), gangs, st.free_gpus, st.gpn, {0: res}, snap.estimate_s, 0.0)
        assert judge(job) is (want is not PASSES)
        assert codes == ({} if want is PASSES else {want: 1})
        assert judged[0] == (0 if want is PASSES else 1)
        codes_seen.add(want)
        st.free_gpus = free
    assert len(codes_seen) == 3  # each code and PASSES reached


def test_the_plain_judge_of_several_flavors_answers_and_counts_as_first_blocked() -> None:
    """Several flavors without a flavor order (cortex-2024): a job naming no flavors with one
    gang takes a path over flavor rows bound once (shadow.blocked_judge's judge_plain); the
    others go to the general judge. Random jobs, free counts, reservations and estimates on
    both sides of the shadows and equal to them, as first_blocked answers; the free counts move
    between calls of one judge (a job it passes may start), as in a pass."""
    from cortex.scheduler.shadow import PASSES, Reservation, blocked_judge, first_blocked

    rng = random.Random(19)
    st, pend, _ = tc._setup(tc.TWO_FLAVORS, tc.PROFILES["priority"], ("a",))
    gpn = st.gpn
    n_f = len(gpn)
    assert n_f == 2
    free0 = st.free_gpus
    codes_seen = set()
    plain = 0
    for _ in range(300):
        reserved = {
            f: Reservation(1, rng.choice([50.0, 100.0, 400.0]), rng.choice([0, 2, 8, 12]))
            for f in range(n_f)
        }
        ests = [10.0, 50.0, 60.0, 99.0, 100.0, 300.0, 400.0]
        est = {(f, g): rng.choice(ests) for f in range(n_f) for g in range(1, 64)}
        snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g, e=est: e[(f, g)])
        free = st.free_gpus = [0] * n_f
        codes: dict = {}
        judged = [0]
        judge, fresh = blocked_judge(snap, None, tuple(range(n_f)), reserved, codes, judged)
        want_codes: dict = {}
        want_judged = 0
        for _ in range(10):
            free[:] = [rng.choice([0, 2, 4, 8, 12, 16, 24]) for _ in range(n_f)]
            for res in reserved.values():
                res.extra_gpus = rng.choice([0, 2, 8, 12])
            if fresh is not None:
                fresh()  # as the walk does at each skip request
            gpus = rng.choice([1, 3, 4, 8, 12, 16, 20, 40])
            emin = rng.choice([None, None, None, gpus, gpus + 1, 1, max(1, gpus // 2)])
            job = Job(1, "j", "a", gpus, 10.0, elastic_min=emin)
            job.flavor_ids = rng.choice([(), (), (), (1,), (1, 0)])
            plain += not job.flavor_ids and (emin is None or emin >= gpus)
            flavors = job.flavor_ids or tuple(range(n_f))
            gangs = (gpus, emin) if emin is not None and emin < gpus else (gpus,)
            want = first_blocked(job, flavors, gangs, free, gpn, reserved, snap.estimate_s, 0.0)
            assert judge(job) is (want is not PASSES)
            if want is not PASSES:
                want_codes[want] = want_codes.get(want, 0) + 1
                want_judged += 1
            # The codes in the order they first appeared (the report keeps that order).
            assert list(codes.items()) == list(want_codes.items())
            assert judged[0] == want_judged
            codes_seen.add(want)
    st.free_gpus = free0
    assert plain > 1000 and len(codes_seen) == 3  # the plain path, each code and PASSES
