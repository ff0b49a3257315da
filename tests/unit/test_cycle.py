"""The scheduling cycle: pure (state unchanged after it returns), plans that apply cleanly,
statement rollback, examined limits, quick passes, elastic gangs, flavors and orderings."""

from __future__ import annotations

import random
from typing import Any

import pytest

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.ordering import Fifo, LeastAttainedService, PriorityFairShare
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.preemption import NoPreemption, PriorityReclaim
from cortex.scheduler.reasons import Code
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Plan, Snapshot
from cortex.scheduler.state import ClusterState, Placement
from cortex.scheduler.statement import Statement
from cortex.workload.job import Job

TINY = testkit.TINY
_setup = testkit.setup_cycle
_contents = testkit.state_contents


def _run(st: ClusterState, jid: int, placement: Placement, **kw: Any) -> Job:
    return testkit.running_job(st, jid, placement, **{"start": -1e6, "work": 1000.0, **kw})


# Tiny's shape with two cluster queues: a (32 nominal, may borrow 16), b (32, unlimited).
QUOTA = build(
    parse_fleet(
        {
            "name": "quota",
            "halls": [
                {
                    "name": "h",
                    "groups": [
                        {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4, "nodes_per_rack": 2}
                    ],
                }
            ],
            "queues": {
                "cluster_queues": [
                    {"name": "a", "nominal_share": 0.5, "borrowing_limit_share": 0.25},
                    {"name": "b", "nominal_share": 0.5},
                ]
            },
        },
        "test",
    )
)
TWO_FLAVORS = testkit.TWO_FLAVORS


def _pend(
    pend: PendingQueues,
    jid: int,
    gpus: int,
    work: float,
    *,
    team: int = 0,
    prio: int = 100,
    submit: float | None = None,
    **kw: Any,
) -> Job:
    submit_s = float(jid) if submit is None else submit
    job = Job(jid, f"p{jid}", "ab"[team], gpus, work, submit_s=submit_s, **kw)
    job.queue_idx, job.priority = team, prio
    pend.add(job)
    return job


def _snap(st: ClusterState, pend: PendingQueues, now: float = 0.0) -> Snapshot:
    return Snapshot(now, st, pend, lambda kind, f: 1.0, lambda job, f, gang: job.work_s)


def _ordered(st: ClusterState) -> tuple:
    """The iteration order of the indices, which placement's tie-breaks read."""
    return (
        [list(d.items()) for d in st.node_jobs],
        [[list(d) for d in row] for row in st.part],
        [list(d) for d in st.pod_whole],
        [[list(d) for d in row] for row in st.pod_bucket],
    )


def _apply(st: ClusterState, plan: Plan) -> None:
    """Apply a plan like a driver, checking that every start fits what is then free."""
    for p in plan.preemptions:
        st.stop(p.job, p.job.queue_idx)
    for s in plan.starts:
        for n, k in s.placement:
            assert st.node_up[n] and st.node_free[n] >= k, (s.job.id, n, k)
            assert st.topo.node_flavor[n] == s.flavor
        assert s.alloc_gpus == sum(k for _, k in s.placement) >= s.gang_gpus
        job = s.job
        job.run_flavor, job.run_start_s, job.est_end_s = s.flavor, 1e9, 2e9
        st.start(job, job.queue_idx, s.flavor, s.placement)
        q = st.queues.queues[job.queue_idx]
        limit = q.borrowing_limit[s.flavor]
        if limit is not None:
            assert st.usage[job.queue_idx][s.flavor] <= q.nominal[s.flavor] + limit
    for f in range(len(st.gpn)):
        assert (
            0
            <= st.free_gpus[f]
            == sum(st.node_free[n] for n in st.flavor_node_ids[f] if st.node_up[n])
        )


def _random_cluster(seed: int, pol: Policies) -> tuple[ClusterState, PendingQueues, dict[int, Job]]:
    rng = random.Random(seed)
    st, pend, _ = _setup(QUOTA, pol, ("a", "b"))
    jid = 100
    for n in range(8):
        r = rng.random()
        if r < 0.08:
            st.set_down(n)
            continue
        if r < 0.3:
            continue
        team = rng.randrange(2)
        q = st.queues.queues[team]
        left = 8
        while left and rng.random() < 0.8:
            k = rng.choice([1, 2, 4, 8])
            if k > left or st.usage[team][0] + k > q.nominal[0] + (q.borrowing_limit[0] or 64):
                break
            jid += 1
            _run(
                st,
                jid,
                ((n, k),),
                end=rng.uniform(10, 5000),
                team=team,
                prio=rng.choice([10, 100, 1000]),
                start=rng.uniform(-2000, 0),
            )
            left -= k
    pending: dict[int, Job] = {}
    for i in range(rng.randint(1, 12)):
        gpus = rng.choice([1, 2, 4, 8, 12, 16, 24, 32, 40, 48])
        elastic = gpus // 2 if gpus >= 16 and rng.random() < 0.3 else None
        job = _pend(
            pend,
            i,
            gpus,
            rng.uniform(10, 8000),
            team=rng.randrange(2),
            prio=rng.choice([10, 100, 1000]),
            submit=rng.uniform(-100, 0),
            elastic_min=elastic,
        )
        pending[i] = job
    return st, pend, pending


PROFILES = {
    "fifo": Policies(ordering=Fifo()),
    "priority": Policies(),
    "las": policies("las"),
    "nobackfill": Policies(ordering=Fifo(), backfill=False),
    "nopreempt": Policies(preemption=NoPreemption()),
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("deep", [True, False], ids=["deep", "quick"])
@pytest.mark.parametrize("seed", range(12))
def test_schedule_leaves_state_unchanged_and_its_plan_applies(
    profile: str, deep: bool, seed: int
) -> None:
    pol = PROFILES[profile]
    st, pend, pending = _random_cluster(seed, pol)
    before = _contents(st)
    plan = schedule(_snap(st, pend, now=0.0), pol, deep=deep)
    assert _contents(st) == before
    started = [s.job.id for s in plan.starts]
    assert len(started) == len(set(started))
    assert not set(started) & set(plan.blockers)
    assert set(plan.blockers) | set(started) <= set(pending)
    assert plan.examined == len(plan.blockers) + len(started)
    for p in plan.preemptions:
        assert p.reason.code is Code.PREEMPTED
        assert p.reason.detail["by"] in started
        assert p.job.run_start_s <= 0.0 - st.queues.min_runtime_s
    if not deep:
        assert not plan.preemptions
    _apply(st, plan)


def test_schedule_twice_on_one_snapshot_gives_one_plan() -> None:
    st, pend, pol = _setup()
    _run(st, 100, ((0, 8), (1, 8), (2, 8)))
    _run(st, 101, ((4, 3),))
    _pend(pend, 1, 1, 10.0)
    _pend(pend, 2, 8, 10.0)
    _pend(pend, 3, 16, 10.0)
    before = _ordered(st)
    first = schedule(_snap(st, pend), pol)
    second = schedule(_snap(st, pend), pol)
    assert [(s.job.id, s.placement) for s in first.starts] == [
        (s.job.id, s.placement) for s in second.starts
    ]
    assert _ordered(st) == before


def test_statement_rollback_restores_allocations_evictions_and_usage() -> None:
    st, _, _ = _setup(QUOTA, teams=("a", "b"))
    victim = _run(st, 50, ((0, 8), (1, 8)), team=1)
    other = _run(st, 51, ((4, 3),), team=0)
    before = _contents(st)
    stmt = Statement(st)
    a = Job(1, "a", "a", 8, 1.0)
    a.queue_idx = 0
    assert stmt.allocate(a, 0, ((6, 8),)) == 8
    mark = stmt.mark()
    mid = _contents(st)
    assert stmt.evict(victim).gpus == 16
    assert victim.id in stmt.evicted
    assert st.usage[1][0] == 0 and st.usage[0][0] == 11
    b = Job(2, "b", "a", 16, 1.0)
    b.queue_idx = 0
    stmt.allocate(b, 0, ((0, 8), (1, 8)))
    assert st.usage[0][0] == 27 and st.free_gpus == [64 - 8 - 3 - 16]
    stmt.rollback(mark)
    assert _contents(st) == mid
    assert not stmt.evicted
    stmt.evict(other)
    stmt.rollback()
    assert _contents(st) == before
    assert stmt.mark() == 0


def test_max_examined_leaves_the_rest_not_examined() -> None:
    st, pend, _ = _setup()
    pol = Policies(ordering=Fifo(), max_examined=2)
    for i in range(4):
        _pend(pend, i, 1, 10.0)
    plan = schedule(_snap(st, pend), pol)
    assert [s.job.id for s in plan.starts] == [0, 1]
    assert plan.examined == 2
    assert plan.rest_reason is not None and plan.rest_reason.code is Code.NOT_EXAMINED
    assert plan.reasons_for(3)[0].detail["why"] == "examined limit reached"
    assert plan.reasons_for(0) == []


def test_quick_pass_stops_behind_the_blocked_head() -> None:
    st, pend, pol = _setup()
    _run(st, 100, tuple((n, 8) for n in range(7)), end=1000.0)
    _pend(pend, 1, 16, 10.0)  # blocked: 8 free
    _pend(pend, 2, 1, 10.0)  # would fit, and would end long before the head could start
    quick = schedule(_snap(st, pend), pol, deep=False)
    assert quick.starts == []
    assert quick.examined == 1
    assert quick.blockers[1][0].code is Code.INSUFFICIENT_CAPACITY
    assert quick.reasons_for(2)[0].detail["why"] == "behind blocked heads"
    deep = schedule(_snap(st, pend), pol, deep=True)
    assert [s.job.id for s in deep.starts] == [2]  # backfilled: 0 + 10 <= shadow 1000


def test_no_free_gpus_stops_a_quick_pass() -> None:
    st, pend, pol = _setup()
    _run(st, 100, tuple((n, 8) for n in range(8)))
    _pend(pend, 1, 1, 10.0)
    plan = schedule(_snap(st, pend), pol, deep=False)
    assert plan.examined == 0 and plan.reasons_for(1)[0].detail["why"] == "no free GPUs left"


def test_elastic_job_falls_back_to_its_minimum_gang() -> None:
    st, pend, pol = _setup()
    _run(st, 100, ((0, 8), (1, 8), (4, 8), (5, 8), (6, 8)))  # 3 nodes free: 2, 3 and 7
    _pend(pend, 1, 32, 10.0, elastic_min=16)
    plan = schedule(_snap(st, pend), pol)
    (s,) = plan.starts
    assert (s.gang_gpus, s.alloc_gpus) == (16, 16)
    assert sorted(n for n, _ in s.placement) == [2, 3]  # pod 0 holds both
    st2, pend2, _ = _setup()
    _run(st2, 100, tuple((n, 8) for n in range(7)))
    _pend(pend2, 1, 32, 10.0, elastic_min=16)
    plan2 = schedule(_snap(st2, pend2), pol)
    reasons = plan2.blockers[1]
    assert [(r.code, r.detail["need"]) for r in reasons] == [
        (Code.INSUFFICIENT_CAPACITY, 32),
        (Code.INSUFFICIENT_CAPACITY, 16),
    ]


@pytest.mark.parametrize(
    ("h200_used", "expected_flavor", "expected_nodes"),
    [
        ((), "H200-SXM", [0, 1]),  # first listed flavor when it has room
        ((0, 1, 2), "H100-SXM5", [4, 5]),  # falls back to the second
    ],
)
def test_job_takes_its_first_listed_flavor_with_room(
    h200_used: tuple[int, ...], expected_flavor: str, expected_nodes: list[int]
) -> None:
    st, pend, pol = _setup(TWO_FLAVORS)
    if h200_used:
        _run(st, 100, tuple((n, 8) for n in h200_used))
    job = _pend(pend, 1, 16, 10.0)
    job.flavor_ids = (TWO_FLAVORS.flavors.index("H200-SXM"), TWO_FLAVORS.flavors.index("H100-SXM5"))
    (s,) = schedule(_snap(st, pend), pol).starts
    assert TWO_FLAVORS.flavors[s.flavor] == expected_flavor
    assert sorted(n for n, _ in s.placement) == expected_nodes


def test_priority_fair_share_orders_by_class_then_lowest_share() -> None:
    pol = Policies()
    st, pend, _ = _setup(QUOTA, pol, ("a", "b"))
    _run(st, 100, ((0, 8), (1, 8)), team=0)  # a holds 16, b holds 8
    _run(st, 101, ((4, 8),), team=1)
    _pend(pend, 1, 1, 10.0, team=0, submit=0.0)
    _pend(pend, 2, 1, 10.0, team=0, submit=1.0)
    _pend(pend, 3, 1, 10.0, team=1, submit=5.0)
    _pend(pend, 4, 1, 10.0, team=0, prio=1000, submit=9.0)
    order = [j.id for j in pol.ordering.order(_snap(st, pend))]
    # production first; then b (8/64) before a (16/64) despite later submission.
    assert order == [4, 3, 1, 2]


def test_fifo_ignores_priority_and_queues() -> None:
    pol = Policies(ordering=Fifo())
    st, pend, _ = _setup(QUOTA, pol, ("a", "b"))
    _pend(pend, 1, 1, 10.0, team=1, submit=3.0)
    _pend(pend, 2, 1, 10.0, team=0, prio=1000, submit=4.0)
    _pend(pend, 3, 1, 10.0, team=0, submit=1.0)
    assert [j.id for j in pol.ordering.order(_snap(st, pend))] == [3, 1, 2]


def test_las_orders_by_attained_level_then_arrival() -> None:
    las = LeastAttainedService(thresholds_gpu_s=(100.0, 1000.0))
    assert [las.level(x) for x in (0.0, 99.9, 100.0, 999.0, 1000.0, 1e9)] == [0, 0, 1, 1, 2, 2]
    pend = PendingQueues(1, las.key)
    jobs = []
    for i, (attained, submit) in enumerate([(5000.0, 0.0), (0.0, 3.0), (500.0, 1.0), (50.0, 4.0)]):
        job = Job(i, "j", "a", 1, 1.0, submit_s=submit)
        job.queue_idx = 0
        job.attained_gpu_s = attained
        pend.add(job)
        jobs.append(job)
    st, _, _ = _setup()
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0)
    assert [j.id for j in las.order(snap)] == [1, 3, 2, 0]


def test_registry_builds_profiles_and_rejects_unknown_names() -> None:
    assert isinstance(policies("fifo").ordering, Fifo)
    assert isinstance(policies("priority").ordering, PriorityFairShare)
    assert isinstance(policies("priority").preemption, PriorityReclaim)
    assert policies("las", backfill=False).backfill is False
    with pytest.raises(KeyError, match="known: fifo, priority, las"):
        policies("nope")


def test_job_that_would_outrun_the_reserved_head_waits_and_preempts_nothing() -> None:
    st, pend, pol = _setup()  # FIFO, backfill on, PriorityReclaim
    _run(st, 101, ((0, 8), (1, 8), (2, 8), (3, 8)), end=1000.0)
    _run(st, 102, ((4, 8),), end=5000.0, prio=10)  # preemptible, may be evicted
    _run(st, 103, ((5, 8), (6, 8)), end=5000.0)
    _pend(pend, 1, 40, 1000.0)  # head: needs 40, 8 free (node 7)
    _pend(pend, 2, 8, 5000.0, prio=1000)  # production, but runs past the head's start
    plan = schedule(_snap(st, pend, now=700.0), pol)
    # Head: 40 > 8 free. It may not preempt: nodes below its priority (only node 4) plus free
    # nodes (node 7) are 2 < 5. It reserves the flavor: at 1000, 101's end frees 32, and
    # 8 + 32 = 40 is exactly its need, so the shadow is 1000 with 0 GPUs left over.
    (r1,) = plan.blockers[1]
    assert (r1.code, r1.detail["need"], r1.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 40, 8)
    # Job 2 would end at 700 + 5000 = 5700 > 1000 and needs 8 > 0 left over: it waits for the
    # head, and a job held by the reservation is not short of GPUs, so it evicts nobody.
    (r2,) = plan.blockers[2]
    assert r2.code is Code.RESERVED_FOR_HEAD
    assert (r2.detail["head"], r2.detail["shadow_s"]) == (1, 1000.0)
    assert plan.starts == [] and plan.preemptions == [] and plan.preempt_failed == []


def test_preemption_places_the_job_on_the_capacity_it_freed() -> None:
    st, pend, pol = _setup()
    _run(st, 101, ((0, 8), (1, 8), (2, 8), (3, 8)), end=1000.0)
    _run(st, 102, ((4, 8),), end=5000.0, prio=10)  # preemptible
    _run(st, 103, ((5, 8), (6, 8), (7, 8)), end=5000.0)
    _pend(pend, 2, 8, 5000.0, prio=1000)  # production; nothing is free
    plan = schedule(_snap(st, pend, now=700.0), pol)
    # Victims by (top priority, GPUs of the whole allocation): 102 costs (10, 8), 101
    # (100, 32), 103 (100, 24). Evicting 102 frees node 4, the only whole free node.
    assert [(p.job.id, p.reason.code, p.reason.detail["by"]) for p in plan.preemptions] == [
        (102, Code.PREEMPTED, 2)
    ]
    assert [(s.job.id, s.placement) for s in plan.starts] == [(2, ((4, 8),))]


def test_job_behind_a_reserved_head_does_not_preempt() -> None:
    # Only heads preempt: a job short on a flavor that a job ahead of it reserved must not
    # evict anyone, even when it may (production over preemptible) and would end in time.
    st, pend, pol = _setup()
    _run(st, 101, ((0, 8), (1, 8), (2, 8), (3, 8)), end=1000.0)
    _run(st, 102, ((4, 8),), end=5000.0, prio=10)  # preemptible
    _run(st, 103, ((5, 8),), end=5000.0)
    _run(st, 104, ((6, 4),), end=5000.0)
    _run(st, 105, ((7, 4),), end=5000.0)
    _pend(pend, 1, 40, 1000.0)  # head: 40 > 8 free (4 on node 6, 4 on node 7)
    _pend(pend, 2, 8, 100.0, prio=1000)
    plan = schedule(_snap(st, pend, now=700.0), pol)
    # The head reserves the flavor with shadow 1000 (8 free + 32 from 101 = 40). Job 2 ends at
    # 700 + 100 = 800 <= 1000, so the reservation lets it pass, and 8 <= 8 free; but no node
    # has 8 free, so placement fails and the flavor is short for it, behind the head.
    assert plan.blockers[1][0].code is Code.INSUFFICIENT_CAPACITY
    (r2,) = plan.blockers[2]
    assert r2.code is Code.TOPOLOGY_UNAVAILABLE
    assert (r2.detail["need"], r2.detail["free"], r2.detail["largest_block"]) == (8, 8, 4)
    assert plan.starts == [] and plan.preemptions == [] and plan.preempt_failed == []


def test_jobs_behind_a_reserved_head_get_their_own_sizes_in_the_reason() -> None:
    # 7 nodes busy until 1000: 8 GPUs free. Head 1 needs 40 and reserves the flavor; jobs 2
    # (16) and 3 (24) also need more than 8 and take the fast path behind it. The shared reason
    # is cached per size: each must still name its own need.
    st, pend, pol = _setup()
    _run(st, 100, tuple((n, 8) for n in range(7)), end=1000.0)
    _pend(pend, 1, 40, 10.0)
    _pend(pend, 2, 16, 10.0)
    _pend(pend, 3, 24, 10.0)
    _pend(pend, 4, 16, 10.0)
    plan = schedule(_snap(st, pend), pol)
    got = {
        j: (plan.blockers[j][0].detail["need"], plan.blockers[j][0].detail["free"])
        for j in (1, 2, 3, 4)
    }
    assert got == {1: (40, 8), 2: (16, 8), 3: (24, 8), 4: (16, 8)}
    assert all(plan.blockers[j][0].code is Code.INSUFFICIENT_CAPACITY for j in (1, 2, 3, 4))
