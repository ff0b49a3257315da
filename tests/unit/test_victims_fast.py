"""The victim search's fast paths (nodes judged per distinct owner, pods that cannot free enough
nodes left out of the visit, the walk across pods laid out as arrays) choose exactly what the
search chose before them (tests/victims_reference.py), also with nodes judged pod by pod as the
visit of pods reaches them (large searches), on random small fleets: partial pods, two
halls, two node sizes, shared nodes, multi-node gangs, nodes down, jobs too young to evict,
equal-priority reclaim, and a cycle's tentative starts and evictions on the statement."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as hs

import testkit
import victims_reference
from cortex.scheduler import evict_place, victims
from cortex.scheduler.cycle import Policies
from cortex.scheduler.ordering import LeastAttainedService
from cortex.scheduler.placement import TopologyBestFit
from cortex.scheduler.preemption import LasDemotion, PreemptionPolicy, PriorityReclaim
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.scheduler.statement import Statement
from cortex.scheduler.summaries import EMPTY_PRIO, FREE, SHARED, queue_bit
from cortex.scheduler.victims import find_victims
from cortex.workload.job import Job

PRIOS = (10, 100, 100, 1000)
NOW = 10_000.0


def _fill(st: ClusterState, rng: random.Random, jid: int, most: int, teams: int = 2) -> list[Job]:
    """Random running jobs from id `jid` on: whole-node gangs over free nodes of one flavor,
    and small jobs sharing nodes."""
    jobs = []
    for _ in range(rng.randint(0, most)):
        f = rng.randrange(len(st.gpn))
        g = st.gpn[f]
        free_whole = [n for n in st.flavor_node_ids[f] if st.node_up[n] and st.node_free[n] == g]
        if rng.random() < 0.4 and len(free_whole) >= 2:
            nodes = rng.sample(free_whole, rng.randint(2, min(6, len(free_whole))))
            placement = tuple((n, g) for n in sorted(nodes))
        else:
            some = [n for n in st.flavor_node_ids[f] if st.node_up[n] and st.node_free[n] > 0]
            if not some:
                continue
            n = rng.choice(some)
            placement = ((n, rng.randint(1, st.node_free[n])),)
        start = NOW - rng.choice([60.0, 5_000.0, 50_000.0])  # 60 s: too young (600 s minimum)
        job = testkit.running_job(
            st, jid, placement, team=rng.randrange(teams), prio=rng.choice(PRIOS), start=start
        )
        job.attained_gpu_s = rng.choice([0.0, 1e3, 1e5])
        jobs.append(job)
        jid += 1
    return jobs


def _searches(st: ClusterState, snap: Snapshot, rng: random.Random, exact: bool = False) -> None:
    """Searches against the reference; `exact`: no job evicted since the summaries' last
    flush, so the search may use the policy's bound (`summaries_exact`)."""
    policies: list[PreemptionPolicy] = [PriorityReclaim(), LasDemotion(LeastAttainedService())]
    for _ in range(4):
        f = rng.randrange(len(st.gpn))
        gang = rng.randint(1, 7 * st.gpn[f])
        job = Job(1000, "p", "a", gang, 100.0)
        job.queue_idx, job.priority = rng.randrange(2), rng.choice(PRIOS)
        pol = rng.choice(policies)
        before = testkit.state_contents(st)
        want = victims_reference.find_victims(snap, pol, gang, f, job)
        assert find_victims(snap, pol, gang, f, job, exact) == want, (gang, f, job.priority)
        original = victims.JUDGE_ALL_MAX
        try:
            victims.JUDGE_ALL_MAX = 0  # every gang search judges pods as the visit reaches them
            assert find_victims(snap, pol, gang, f, job, exact) == want, ("by pod", gang, f)
        finally:
            victims.JUDGE_ALL_MAX = original
        assert testkit.state_contents(st) == before


@settings(max_examples=200, deadline=None)
@given(hs.integers(0, 2**32 - 1))
def test_fast_search_chooses_what_the_reference_search_chose(seed: int) -> None:
    rng = random.Random(seed)
    st, pend, _ = testkit.setup_cycle(testkit.MIXED, None, ("a", "b"))
    for n in rng.sample(range(len(st.node_free)), rng.randint(0, 3)):
        st.set_down(n)
    jobs = _fill(st, rng, 0, 30)
    # Half the seeds cost victims by the work they would lose: a value per job from the seed,
    # with ties (0 s: just checkpointed) and spread, so the lost term reorders GPUs.
    salt = rng.randrange(1 << 16)
    spread = (0.0, 0.0, 60.0, 1800.0, 2700.0, 3599.0)

    def lost_s(j: Job) -> float:
        return spread[(j.id * 2654435761 + salt) % len(spread)]  # fixed per job and seed

    snap = Snapshot(
        NOW,
        st,
        pend,
        lambda k, f: 1.0,
        lambda j, f, g: 100.0,
        lost_s=lost_s if rng.random() < 0.5 else None,
    )
    for cycle in range(3):  # cycles, with the driver stopping and starting jobs between them
        stmt = Statement(st)
        if jobs and rng.random() < 0.5:
            victim = rng.choice(jobs)  # a victim of an earlier search in the same cycle
            held = st.allocations[victim.id]
            stmt.evict(victim)
            if rng.random() < 0.5:
                # Its preemptor starts tentatively on its nodes: nobody's victim yet.
                new = Job(999, "t", "a", held.gpus, 100.0)
                new.queue_idx = 0
                stmt.allocate(new, held.flavor, held.placement)
        if rng.random() < 0.3:
            f = rng.randrange(len(st.gpn))
            placement = TopologyBestFit().place(st, f, rng.choice([1, 4, 2 * st.gpn[f]]))
            if placement is not None:
                new = Job(998, "t", "a", sum(k for _, k in placement), 100.0)
                new.queue_idx = 1
                stmt.allocate(new, f, placement)
        _searches(st, snap, rng, exact=not stmt.evicted)
        stmt.rollback()
        for job in rng.sample(jobs, min(len(jobs), rng.randint(0, 3))):
            st.stop(job, job.queue_idx)
            jobs.remove(job)
        jobs += _fill(st, rng, 100 * (cycle + 1), 3)
        _check_summaries(st)
        _searches(st, snap, rng, exact=True)


def _check_summaries(st: ClusterState) -> None:
    """The lazily kept node summaries and owners, against a recount from the running jobs."""
    used = [0] * len(st.node_jobs)
    top = [EMPTY_PRIO] * len(st.node_jobs)
    owner = [FREE] * len(st.node_jobs)
    queues = [0] * len(st.node_jobs)
    for n, jobs in enumerate(st.node_jobs):
        for jid, k in jobs.items():
            used[n] += k
            top[n] = max(top[n], st.running[jid].priority)
            owner[n] = jid if len(jobs) == 1 else SHARED
        for jid in jobs:
            if st.running[jid].priority == top[n]:
                queues[n] |= 1 << st.running[jid].queue_idx
    assert st.np_used.tolist() == used
    assert st.np_max_prio.tolist() == top
    assert st.np_top_queues.tolist() == queues
    assert st.np_owner.tolist() == owner


def test_a_job_with_a_negative_id_never_reads_as_a_free_node() -> None:
    # Ids -2 and -1 are FREE and SHARED in np_owner; a node held by such a job alone must read
    # SHARED (judged job by job), never FREE (a node the search would take for nothing).
    st, _, _ = testkit.setup_cycle()
    testkit.running_job(st, FREE, ((0, 8),))
    testkit.running_job(st, 5, ((1, 8),))
    assert st.np_owner[:3].tolist() == [SHARED, 5, FREE]


@settings(max_examples=100, deadline=None)
@given(hs.integers(0, 2**32 - 1))
def test_small_flush_writes_what_the_array_flush_writes(seed: int) -> None:
    """flush_summaries in plain Python (few placed nodes) and with arrays (many) leave the same
    summaries and the same per-priority counts, key order and zero counts included."""
    import cortex.scheduler.summaries as state_mod

    rng = random.Random(seed)
    both = []
    for _ in range(2):
        st, _, _ = testkit.setup_cycle(testkit.MIXED, None, ("a", "b"))
        both.append((st, random.Random(seed)))
    jobs: list[list[Job]] = [[], []]
    original = state_mod.FLUSH_SMALL_NODES
    try:
        for cycle in range(6):
            reads = []
            for side, (st, r) in enumerate(both):
                for job in r.sample(jobs[side], min(len(jobs[side]), r.randint(0, 4))):
                    st.stop(job, job.queue_idx)
                    jobs[side].remove(job)
                jobs[side] += _fill(st, r, 100 * cycle, 6)
                state_mod.FLUSH_SMALL_NODES = 10**9 if side == 0 else -1
                reads.append(
                    (
                        st.np_used.tolist(),
                        st.np_max_prio.tolist(),
                        st.np_last_start.tolist(),
                        st.np_top_queues.tolist(),
                        [list(h.items()) for h in st.nodes_by_top_prio],
                    )
                )
            assert reads[0] == reads[1], cycle
            _check_summaries(both[0][0])
            rng.random()
    finally:
        state_mod.FLUSH_SMALL_NODES = original


def test_two_interleaved_gangs_are_each_judged_on_all_their_nodes() -> None:
    """Nodes held by one job are judged by runs of one holder along the candidates: a gang whose
    nodes alternate with another's is good on all of them, the protected one on none. And a
    gang needing every good node finds them, one more node finds nothing."""
    st, pend, _ = testkit.setup_cycle()
    g = st.gpn[0]
    testkit.running_job(st, 7, ((0, g), (2, g), (4, g)), prio=10, start=0.0)
    testkit.running_job(st, 3, ((1, g), (3, g)), prio=10, start=NOW - 60.0)  # too young
    snap = Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, gg: 100.0)
    job = Job(1000, "p", "a", g, 100.0)
    job.queue_idx, job.priority = 0, 100
    judge = victims._Judge(snap, PriorityReclaim(), job)
    nodes = np.arange(6)
    assert victims._good_nodes(st, judge, nodes).tolist() == [True, False, True, False, True, True]
    free = sum(1 for n in st.flavor_node_ids[0] if st.node_jobs[n] == {} and st.node_up[n])
    good = free + 3
    got = find_victims(snap, PriorityReclaim(), good * g, 0, job)
    assert got == [7]
    assert find_victims(snap, PriorityReclaim(), (good + 1) * g, 0, job) is None


def test_pods_chosen_in_are_whole_and_hold_enough_good_nodes() -> None:
    """`_in_one_pod` drops the pods with fewer than `need` good nodes before its sorts (whole
    pods: a kept pod's candidates, order and bounds stay as they were). So every pod it
    chooses in is given all of its candidate nodes, bad ones included, and holds `need` good
    ones; the reference search's choices are kept (the test above). On random MIXED fleets."""
    calls = {"in_one": 0, "choose": 0}
    ctx: dict[str, Any] = {}
    in_one, choose = victims._in_one_pod, victims._choose_in_pod

    def seen_in_one(
        st: ClusterState, judge: victims._Judge, idx: np.ndarray, good: np.ndarray | None, need: int
    ) -> list[int] | None:
        ctx.update(idx=idx.tolist(), good=None if good is None else good.tolist(), need=need)
        calls["in_one"] += 1
        return in_one(st, judge, idx, good, need)

    def seen_choose(
        st: ClusterState, judge: victims._Judge, nodes: list[int], need: int
    ) -> tuple[victims.Cost, list[int]] | None:
        pod = st.node_pod[nodes[0]]
        mine = [k for k, n in enumerate(ctx["idx"]) if st.node_pod[n] == pod]
        assert sorted(nodes) == sorted(ctx["idx"][k] for k in mine)
        if ctx["good"] is not None:
            assert sum(ctx["good"][k] for k in mine) >= need
        calls["choose"] += 1
        return choose(st, judge, nodes, need)

    victims._in_one_pod, victims._choose_in_pod = seen_in_one, seen_choose
    try:
        for seed in range(60):
            rng = random.Random(seed)
            st, pend, _ = testkit.setup_cycle(testkit.MIXED, None, ("a", "b"))
            _fill(st, rng, 0, 30)
            snap = Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
            for _ in range(6):
                f = rng.randrange(len(st.gpn))
                gang = rng.randint(st.gpn[f] + 1, 4 * st.gpn[f])
                job = Job(1000, "p", "a", gang, 100.0)
                job.queue_idx, job.priority = rng.randrange(2), rng.choice(PRIOS)
                want = victims_reference.find_victims(snap, PriorityReclaim(), gang, f, job)
                assert find_victims(snap, PriorityReclaim(), gang, f, job) == want
    finally:
        victims._in_one_pod, victims._choose_in_pod = in_one, choose
    assert calls["in_one"] > 100 and calls["choose"] > 100, calls


@settings(max_examples=100, deadline=None)
@given(hs.integers(0, 2**32 - 1))
def test_good_nodes_are_the_nodes_whose_every_job_the_judge_passes(seed: int) -> None:
    """`_good_nodes` asks each distinct holder of the runs of one-holder nodes once and maps
    every run back to its holder: against a node-by-node judgement, on candidates in any order
    (a pod-by-pod judgement concatenates pods), with gangs whose runs repeat around other
    holders' and shared nodes, free nodes and protected holders; and each job judged once."""
    rng = random.Random(seed)
    st, pend, _ = testkit.setup_cycle(testkit.MIXED, None, ("a", "b"))
    _fill(st, rng, 0, 40)
    snap = Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    nodes = [n for n in range(len(st.node_jobs)) if rng.random() < 0.8]
    rng.shuffle(nodes)
    if rng.random() < 0.5:
        nodes.sort()  # as a search gives them
    idx = np.array(nodes, dtype=np.int64)
    for pol in (PriorityReclaim(), LasDemotion(LeastAttainedService())):
        job = Job(1000, "p", "a", 8, 100.0)
        job.queue_idx, job.priority = rng.randrange(2), rng.choice(PRIOS)
        asked: list[int] = []
        judge = victims._Judge(snap, pol, job)
        rule = judge.ok

        def counted(v: Job, rule: Any = rule, asked: list[int] = asked) -> bool:
            asked.append(v.id)
            return bool(rule(v))

        judge.ok = counted
        got = victims._good_nodes(st, judge, idx).tolist()
        plain = victims._Judge(snap, pol, job)
        want = [all(plain.victim(j) is not None for j in st.node_jobs[n]) for n in nodes]
        assert got == want
        assert len(asked) == len(set(asked))


def _bound_reference(st: ClusterState, job: Job, f: int, nodes: list[int]) -> list[bool]:
    """PriorityReclaim.good_bound node by node from the running jobs: idle, or a top class
    below the job's, or the job's class held only by other queues that borrow in flavor f
    while the job's queue has room there with the job."""
    queues = st.queues.queues
    mine = job.queue_idx
    room = st.usage[mine][f] + job.gpus <= queues[mine].nominal[f]
    out = []
    for n in nodes:
        jobs = [st.running[j] for j in st.node_jobs[n] if j in st.running]
        top = max((j.priority for j in jobs), default=EMPTY_PRIO)
        tops = {j.queue_idx for j in jobs if j.priority == top}
        out.append(
            top < job.priority
            or (
                top == job.priority
                and room
                and all(q != mine and st.usage[q][f] > queues[q].nominal[f] for q in tops)
            )
        )
    return out


@settings(max_examples=100, deadline=None)
@given(hs.integers(0, 2**32 - 1))
def test_the_good_bound_holds_every_good_node_and_refuses_what_the_search_refuses(
    seed: int,
) -> None:
    """`PriorityReclaim.good_bound` is the node-by-node rule (three queues, each borrowing or
    not by a random usage, with the job's queue with room or without, tentative starts that
    the summaries do not show); every node the judge finds good is in it; a search with the
    bound finds what the reference search finds; no bound for cross-class reclaim or LAS."""
    rng = random.Random(seed)
    st, pend, _ = testkit.setup_cycle(testkit.MIXED, None, ("a", "b", "c"))
    _fill(st, rng, 0, 40, teams=3)
    snap = Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    for q in range(3):
        for f in range(len(st.gpn)):
            st.usage[q][f] = rng.choice(
                [0, st.queues.queues[q].nominal[f] + rng.choice([-8, 0, 8])]
            )
    stmt = Statement(st)
    if rng.random() < 0.5:
        f = rng.randrange(len(st.gpn))
        placement = TopologyBestFit().place(st, f, rng.choice([4, 2 * st.gpn[f]]))
        if placement is not None:
            new = Job(998, "t", "a", sum(k for _, k in placement), 100.0)
            new.queue_idx = 1
            stmt.allocate(new, f, placement)
    pol = PriorityReclaim()
    for _ in range(6):
        f = rng.randrange(len(st.gpn))
        job = Job(1000, "p", "a", rng.choice([8, 16, 4 * st.gpn[f]]), 100.0)
        job.queue_idx, job.priority = rng.randrange(3), rng.choice(PRIOS)
        nodes = [n for n in st.flavor_node_ids[f] if rng.random() < 0.8]
        idx = np.array(nodes, dtype=np.int64)
        bound = pol.good_bound(snap, job, f, idx)
        assert bound is not None
        assert bound.tolist() == _bound_reference(st, job, f, nodes)
        good = victims._good_nodes(st, victims._Judge(snap, pol, job), idx)
        assert not (good & ~bound).any()
        want = victims_reference.find_victims(snap, pol, job.gpus, f, job)
        assert find_victims(snap, pol, job.gpus, f, job, summaries_exact=True) == want
        assert PriorityReclaim(reclaim_any=True).good_bound(snap, job, f, idx) is None
        las = LasDemotion(LeastAttainedService())
        assert las.good_bound(snap, job, f, idx) is None
    stmt.rollback()


def test_queues_past_the_last_bit_share_it() -> None:
    assert [queue_bit(q) for q in (0, 1, 61, 62, 63, 500)] == [1, 2, 1 << 61] + [1 << 62] * 3


def test_a_search_the_bound_refuses_judges_no_job() -> None:
    """Seven of eight nodes run the job's class for a queue that does not borrow (another does):
    the one free node is the bound's only node, one short of a two-node gang, so the search
    stops before judging anyone; without the bound it judges them all to find the same."""
    st, pend, _ = testkit.setup_cycle(testkit.TINY, None, ("a", "b", "c"))
    g = st.gpn[0]
    for n in range(7):
        testkit.running_job(st, n, ((n, g),), team=1, prio=100, start=0.0)
    st.usage[1][0] = 0  # queue 1 within its nominal quota, queue 2 borrowing
    st.usage[2][0] = st.queues.queues[2].nominal[0] + 1
    snap = Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    job = Job(1000, "p", "a", 2 * g, 100.0)
    job.queue_idx, job.priority = 0, 100
    judged: list[int] = []
    original = victims._good_nodes

    def spy(st: ClusterState, judge: victims._Judge, idx: np.ndarray) -> np.ndarray:
        judged.append(idx.size)
        return original(st, judge, idx)

    victims._good_nodes = spy
    try:
        assert find_victims(snap, PriorityReclaim(), 2 * g, 0, job, summaries_exact=True) is None
        assert judged == []
        assert find_victims(snap, PriorityReclaim(), 2 * g, 0, job) is None
        assert judged == [8]
        st.usage[1][0] = st.queues.queues[1].nominal[0] + 1  # queue 1 borrows: it may lose them
        found = find_victims(snap, PriorityReclaim(), 2 * g, 0, job, summaries_exact=True)
        assert found is not None and len(found) == 1
    finally:
        victims._good_nodes = original


def test_a_preemption_try_uses_the_bound_only_before_the_statement_evicts() -> None:
    """The summaries still show a job the statement evicted (Statement.evict), so a node it
    left free looks busy to the bound: with it the search would refuse a gang that now fits.
    `evict_place.try_preempt` asks for the bound only while its statement has evicted none."""
    st, pend, _ = testkit.setup_cycle(testkit.TINY, None, ("a", "b", "c"))
    g = st.gpn[0]
    held = [testkit.running_job(st, n, ((n, g),), team=1, prio=100) for n in range(7)]
    st.usage[1][0] = 0
    st.usage[2][0] = st.queues.queues[2].nominal[0] + 1
    snap = Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    job = Job(1000, "p", "a", 2 * g, 100.0)
    job.queue_idx, job.priority = 0, 100
    pol = PriorityReclaim()
    stmt = Statement(st)
    stmt.evict(held[0])  # node 0 is free now, and the free node 7 makes two
    want = victims_reference.find_victims(snap, pol, 2 * g, 0, job)
    assert want == [] and find_victims(snap, pol, 2 * g, 0, job) == want
    assert find_victims(snap, pol, 2 * g, 0, job, summaries_exact=True) is None
    asked: list[bool] = []
    original = evict_place.find_victims

    def spy(
        snap: Snapshot,
        policy: PreemptionPolicy,
        gang: int,
        flavor: int,
        job: Job,
        summaries_exact: bool = False,
    ) -> list[int] | None:
        asked.append(summaries_exact)
        return original(snap, policy, gang, flavor, job, summaries_exact)

    evict_place.find_victims = spy
    try:
        policies = Policies(preemption=pol)
        evict_place.try_preempt(snap, policies, stmt, job, 0, 2 * g)
        stmt.rollback()
        evict_place.try_preempt(snap, policies, stmt, job, 0, 2 * g)
    finally:
        evict_place.find_victims = original
    assert asked == [False, True]


def test_a_search_judges_only_the_nodes_the_bound_keeps() -> None:
    """Four nodes run the job's class for a queue within its quota, three for one that borrows:
    the bound keeps those three and the free node, and only they are judged; the search finds
    what the reference search finds (one borrowing job: the free node and one of its nodes)."""
    st, pend, _ = testkit.setup_cycle(testkit.TINY, None, ("a", "b", "c"))
    g = st.gpn[0]
    for n in range(7):
        testkit.running_job(st, n, ((n, g),), team=1 if n < 4 else 2, prio=100)
    st.usage[1][0] = 0
    st.usage[2][0] = st.queues.queues[2].nominal[0] + 1
    snap = Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
    job = Job(1000, "p", "a", 2 * g, 100.0)
    job.queue_idx, job.priority = 0, 100
    judged: list[list[int]] = []
    original = victims._good_nodes

    def spy(st: ClusterState, judge: victims._Judge, idx: np.ndarray) -> np.ndarray:
        judged.append(idx.tolist())
        return original(st, judge, idx)

    want = victims_reference.find_victims(snap, PriorityReclaim(), 2 * g, 0, job)
    victims._good_nodes = spy
    try:
        got = find_victims(snap, PriorityReclaim(), 2 * g, 0, job, summaries_exact=True)
    finally:
        victims._good_nodes = original
    assert judged == [[4, 5, 6, 7]]
    assert got == want and want is not None and len(want) == 1 and want[0] >= 4
