"""The preemption policies' rules one by one (who may be a victim, when a search may run), the
LAS profile's wiring, and the cycle's undo of an eviction that did not make room.

LAS thresholds here are 100 and 1,000 GPU-seconds: levels 0 (< 100), 1 (< 1,000), 2 (more).
min_runtime_s is 600 s (the fleet default) and `now` is 1,000 s, so a victim must have started
at 400 s or earlier.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import Policies
from cortex.scheduler.evict_place import evict_and_place as _evict_and_place
from cortex.scheduler.ordering import LeastAttainedService
from cortex.scheduler.preemption import (
    LasDemotion,
    NoPreemption,
    PreemptionPolicy,
    PriorityReclaim,
)
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.scheduler.statement import Statement
from cortex.workload.job import Job

NOW = 1000.0
LAS = LeastAttainedService(thresholds_gpu_s=(100.0, 1000.0))


def _snap(st: ClusterState) -> Snapshot:
    _, pend, _ = testkit.setup_cycle()
    return Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0)


def _pending(prio: int = 100, attained: float = 0.0, gpus: int = 8) -> Job:
    job = Job(1, "p", "a", gpus, 10.0)
    job.queue_idx, job.priority, job.attained_gpu_s = 0, prio, attained
    return job


def _victim(st: ClusterState, *, prio: int = 100, start: float = 0.0, attained: float = 0.0,
            node: int = 0, gpus: int = 1) -> Job:  # fmt: skip
    v = testkit.running_job(st, 50 + node, ((node, gpus),), prio=prio, start=start)
    v.attained_gpu_s = attained
    return v


# ---- LasDemotion.eligible --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("victim", "job", "ok"),
    [
        # Victim ran 1 GPU from 0 to 1000: 0 + 1 x 1000 = 1000 GPU-s, level 2 > the job's 0.
        ({}, {}, True),
        # Equal priority classes are fair game for LAS; a higher class never is.
        ({"prio": 100}, {"prio": 100}, True),
        ({"prio": 1000}, {"prio": 100}, False),
        # Started at 400 = now - min_runtime: just settled. At 401: not yet.
        ({"start": 400.0}, {}, True),
        ({"start": 401.0}, {}, False),
        # Started at 400: 600 GPU-s, level 1; a job at level 1 (500 GPU-s) is not below it.
        # (Mistaking 1000 - 400 for 1000 + 400 would make it 1,400, level 2.)
        ({"start": 400.0}, {"attained": 500.0}, False),
        # Same run, job at level 0: 1 > 0.
        ({"start": 400.0}, {"attained": 50.0}, True),
        # Attained before this run counts: 950 + 1 x 600 = 1,550, level 2 > 1.
        ({"start": 400.0, "attained": 950.0}, {"attained": 500.0}, True),
    ],
)
def test_las_eligible(victim: dict, job: dict, ok: bool) -> None:
    st, _, _ = testkit.setup_cycle()
    v = _victim(st, **victim)
    assert LasDemotion(LAS).eligible(_snap(st), _pending(**job), v) is ok


def test_las_victim_service_grows_with_its_gpus_and_run_time() -> None:
    # 4 GPUs from 0 to 1000: 4 x 1000 = 4,000 GPU-s, level 2 > the job's level 1.
    st, _, _ = testkit.setup_cycle()
    v = _victim(st, gpus=4)
    assert LasDemotion(LAS).eligible(_snap(st), _pending(attained=500.0), v)
    # 1 GPU from 600 to 1000 is 400 GPU-s (level 1): not above a level-1 job. min_runtime_s
    # is set to 0 so that only the service decides.
    st2, _, _ = testkit.setup_cycle()
    v2 = _victim(st2, start=600.0)
    st2.queues = dataclasses.replace(st2.queues, min_runtime_s=0.0)
    assert not LasDemotion(LAS).eligible(_snap(st2), _pending(attained=500.0), v2)


# ---- LasDemotion.may_preempt and node_filter -------------------------------------------------
def test_las_may_preempt_only_below_the_top_level_and_counts_equal_priority_nodes() -> None:
    # Every node runs a normal (100) job: only or_equal=True counts them for a normal job.
    st, _, _ = testkit.setup_cycle()
    for n in range(8):
        _victim(st, node=n, gpus=8)
    pol = LasDemotion(LAS)
    snap = _snap(st)
    assert pol.may_preempt(snap, _pending(attained=50.0), 0, 8)
    assert pol.may_preempt(snap, _pending(attained=999.0), 0, 8)  # level 1 < 2 levels
    # At the top level (1,000 GPU-s or more) a job demotes nobody, whatever the nodes.
    assert not pol.may_preempt(snap, _pending(attained=1000.0), 0, 8)


def test_las_node_filter_wants_settled_nodes_at_or_below_the_jobs_priority() -> None:
    st, _, _ = testkit.setup_cycle()
    _victim(st, node=0, prio=100)  # settled, equal priority: a candidate
    _victim(st, node=1, prio=10, start=900.0)  # lower priority but started 100 s ago
    _victim(st, node=2, prio=1000)  # higher priority
    _victim(st, node=3, prio=10)  # settled, lower priority
    got = LasDemotion(LAS).node_filter(_snap(st), _pending(prio=100))
    # Idle nodes 4-7 pass too (nothing runs there, never started): the search adds "busy".
    assert got.tolist() == [True, False, False, True, True, True, True, True]


def test_no_preemption_never_finds_victims() -> None:
    st, _, _ = testkit.setup_cycle()
    v = _victim(st, prio=10)
    pol = NoPreemption()
    snap = _snap(st)
    assert not pol.may_preempt(snap, _pending(prio=1000), 0, 8)
    assert not pol.eligible(snap, _pending(prio=1000), v)
    f = pol.node_filter(snap, _pending(prio=1000))
    assert f.dtype == np.bool_ and f.shape == (8,) and not f.any()


def test_las_profile_wires_one_ordering_into_its_preemption() -> None:
    p = policies("las")
    assert isinstance(p.ordering, LeastAttainedService)
    assert isinstance(p.preemption, LasDemotion)
    assert p.preemption.ordering is p.ordering  # demotion reads the same levels it orders by
    assert p.backfill is True


# ---- the cycle's undo of a failed eviction ---------------------------------------------------
def test_evicting_victims_that_make_no_room_rolls_the_statement_back() -> None:
    # Every node is full; evicting a 1-GPU job frees 1 GPU, not the 8 the job needs.
    st, _, _ = testkit.setup_cycle()
    small = testkit.running_job(st, 10, ((0, 1),))
    testkit.running_job(st, 11, ((0, 7),))
    for n in range(1, 8):
        testkit.running_job(st, 20 + n, ((n, 8),))
    stmt = Statement(st)
    before = testkit.state_contents(st)
    got = _evict_and_place(_snap(st), Policies(), stmt, _pending(), 0, 8, 8, [small])
    assert got is None
    assert testkit.state_contents(st) == before and stmt.evicted == set()


# ---- PriorityReclaim -------------------------------------------------------------------------
# Three queues on tiny's shape: a (nominal 32, may borrow 16), b (16, no borrowing), c (16).
QUOTA = build(parse_fleet({"name": "quota", "halls": [{"name": "h", "groups": [
    {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]}], "queues": {"cluster_queues": [
    {"name": "a", "nominal_share": 0.5, "borrowing_limit_share": 0.25},
    {"name": "b", "nominal_share": 0.25, "borrowing_limit_share": 0.0},
    {"name": "c", "nominal_share": 0.25}]}}, "test"))  # fmt: skip


def _quota(a_nodes: int, b_nodes: int = 0) -> tuple[ClusterState, list[Job]]:
    """a runs 8-GPU jobs on nodes 0..a_nodes-1, b on the next b_nodes; all normal, settled."""
    st, _, _ = testkit.setup_cycle(QUOTA, teams=("a", "b", "c"))
    jobs = [testkit.running_job(st, 60 + n, ((n, 8),), team=0) for n in range(a_nodes)]
    for n in range(a_nodes, a_nodes + b_nodes):
        jobs.append(testkit.running_job(st, 60 + n, ((n, 8),), team=1))
    return st, jobs


def _b_job(prio: int = 100, gpus: int = 8) -> Job:
    job = Job(1, "p", "b", gpus, 10.0)
    job.queue_idx, job.priority = 1, prio
    return job


@pytest.mark.parametrize(
    ("a_nodes", "b_nodes", "victim", "prio", "start", "ok"),
    [
        # A higher class evicts a settled lower one; not one started at 401 (> 1000 - 600).
        # (a's 32 + 8 = 40 > 32 here, which only matters for equal classes.)
        (4, 0, {"prio": 10}, 100, 0.0, True),
        (4, 0, {"prio": 10}, 100, 401.0, False),
        # Equal class: only reclaim. a holds 40 + 8 > 32 nominal and b would hold 0 + 8 <= 16.
        (5, 0, {}, 100, 0.0, True),
        # ... but not when b would pass its own nominal: 16 + 8 > 16.
        (5, 2, {}, 100, 0.0, False),
        # a within its nominal (24 + the victim's 8 = 32): nothing to reclaim.
        (3, 0, {}, 100, 0.0, False),
        # A higher class is never a victim, borrowed quota or not.
        (5, 0, {"prio": 1000}, 100, 0.0, False),
    ],
)
def test_priority_reclaim_eligible(
    a_nodes: int, b_nodes: int, victim: dict, prio: int, start: float, ok: bool
) -> None:
    st, _ = _quota(a_nodes, b_nodes)
    v = testkit.running_job(st, 99, ((7, 8),), team=0, start=start, **victim)
    assert PriorityReclaim().eligible(_snap(st), _b_job(prio), v) is ok


def test_priority_reclaim_victim_of_the_same_queue_is_never_reclaimed() -> None:
    # b's own job, same class: not a victim even while a borrows (5 nodes = 40 > 32).
    st, _ = _quota(5)
    v = testkit.running_job(st, 99, ((7, 8),), team=1)
    assert not PriorityReclaim().eligible(_snap(st), _b_job(), v)


def test_priority_reclaim_may_preempt_counts_lower_nodes_and_reclaim_nodes() -> None:
    pol = PriorityReclaim()
    # All 8 nodes normal in a, within nothing: a holds 64 > 32, so reclaim; b + 8 <= 16.
    st, _ = _quota(8)
    assert pol.may_preempt(_snap(st), _b_job(), 0, 8)
    assert pol.may_preempt(_snap(st), _b_job(gpus=16), 0, 16)  # 2 nodes of 8 candidates
    # a at exactly its nominal (32 on nodes 0-3), nodes 4-7 free: nobody borrows, and no
    # node runs below normal: no search for a one-node gang.
    st2, _ = _quota(4)
    assert not pol.may_preempt(_snap(st2), _b_job(), 0, 8)
    # One preemptible node among production ones is enough for a one-node gang, and two
    # for two nodes (0 free + 2 lower >= 2), not for three.
    st3, _, _ = testkit.setup_cycle(QUOTA, teams=("a", "b", "c"))
    for n in range(8):
        testkit.running_job(st3, 80 + n, ((n, 8),), team=2, prio=10 if n < 2 else 1000)
    assert pol.may_preempt(_snap(st3), _b_job(prio=100), 0, 8)
    assert pol.may_preempt(_snap(st3), _b_job(prio=100, gpus=16), 0, 16)
    assert not pol.may_preempt(_snap(st3), _b_job(prio=100, gpus=24), 0, 24)
    # A single lower node is enough for a one-node gang.
    st5, _, _ = testkit.setup_cycle(QUOTA, teams=("a", "b", "c"))
    for n in range(8):
        testkit.running_job(st5, 80 + n, ((n, 8),), team=2, prio=10 if n == 0 else 1000)
    assert pol.may_preempt(_snap(st5), _b_job(prio=100), 0, 8)
    # b itself near its nominal (16 held, + 8 > 16) does not reclaim a's borrowed nodes.
    st4, _ = _quota(5, 2)
    testkit.running_job(st4, 99, ((7, 8),), team=2, prio=1000)
    assert not pol.may_preempt(_snap(st4), _b_job(), 0, 8)


# ---- may_evict: who could ever be a victim (the drivers' retry time after a failed search) ----
@pytest.mark.parametrize(
    ("pol", "victim", "job", "ok"),
    [
        # (victim class, victim queue), (job class, job queue)
        (PriorityReclaim(), (10, 1), (100, 1), True),  # a lower class, any queue
        (PriorityReclaim(), (100, 0), (100, 1), True),  # reclaim: the same class elsewhere
        (PriorityReclaim(), (100, 1), (100, 1), False),  # the same class of its own queue
        (PriorityReclaim(), (1000, 0), (100, 1), False),  # a higher class: only reclaim_any
        (PriorityReclaim(reclaim_any=True), (1000, 0), (100, 1), True),
        (PriorityReclaim(reclaim_any=True), (1000, 1), (100, 1), False),
        (LasDemotion(LAS), (100, 1), (100, 1), True),  # LAS: the job's class or below
        (LasDemotion(LAS), (1000, 0), (100, 1), False),
        (NoPreemption(), (10, 0), (1000, 1), False),
    ],
)
def test_may_evict_by_class_and_queue(
    pol: PreemptionPolicy, victim: tuple[int, int], job: tuple[int, int], ok: bool
) -> None:
    v, j = Job(2, "v", "a", 8, 1.0), Job(1, "p", "b", 8, 1.0)
    v.priority, v.queue_idx = victim
    j.priority, j.queue_idx = job
    assert pol.may_evict(j, v) is ok


@pytest.mark.parametrize(
    "pol", [PriorityReclaim(), PriorityReclaim(reclaim_any=True), LasDemotion(LAS)]
)
def test_every_eligible_victim_is_one_that_may_be_evicted(pol: PreemptionPolicy) -> None:
    # may_evict is a necessary condition of eligible: a driver that skips the jobs it refuses
    # never skips a victim. Every class of both queues, a borrowing (5 nodes) or not (3).
    for a_nodes in (3, 5):
        for team in (0, 1):
            for vprio in (10, 100, 1000):
                for prio in (10, 100, 1000):
                    st, _ = _quota(a_nodes)
                    v = testkit.running_job(st, 99, ((7, 8),), team=team, prio=vprio)
                    job = _b_job(prio)
                    if pol.eligible(_snap(st), job, v):
                        assert pol.may_evict(job, v), (a_nodes, team, vprio, prio)
