"""A committed pass that preempts (`Statement.hand_over`) must leave exactly the state, and make
exactly the decisions, that rolling it back and letting the driver stop the victims and start
the jobs does: random sequences of passes, stops and arrivals run both ways side by side, and
every plan (starts, placements, victims, codes, failed searches) and every index, in its
iteration order, must match after each pass (bench/RESULTS.md, section 108)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import test_cycle as tc

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Plan
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job, JobState

POLICIES = {
    "priority": Policies(),
    "las": policies("las"),
    "one_try": Policies(max_preemption_tries=1),
}


def _plan_key(plan: Plan) -> tuple:
    return (
        [(s.job.id, s.flavor, s.placement, s.gang_gpus) for s in plan.starts],
        [(p.job.id, p.reason.code, p.reason.detail.get("by")) for p in plan.preemptions],
        list(plan.preempt_failed),
        {j: [r.code for r in rs] for j, rs in plan.blockers.items()},
        plan.examined,
    )


def _state_key(st: ClusterState) -> tuple:
    return (
        tc._contents(st),
        tc._ordered(st),
        [list(d.items()) for d in st.prio_nodes],
        st.np_owner.tolist(),
        dict(st.given),
    )


def _drive(st: ClusterState, pend: PendingQueues, plan: Plan, now: float) -> None:
    """What the twin does with a plan: stop the victims (requeued), then start the jobs."""
    for p in plan.preemptions:
        job = p.job
        st.stop(job, job.queue_idx)
        job.state = JobState.REQUEUED
        pend.add(job)
    for s in plan.starts:
        job = s.job
        pend.remove(job)
        job.state = JobState.RUNNING
        job.run_flavor, job.run_start_s = s.flavor, now
        job.est_end_s = now + 100.0 + (job.id * 7919) % 5000
        if plan.committed:
            st.adopt(job)
        else:
            st.start(job, job.queue_idx, s.flavor, s.placement)


# 24 nodes in pods of 4, two queues: enough partial nodes that a start and an eviction in
# another order put nodes into one free-GPU bucket in another order.
FLEET = build(
    parse_fleet(
        {
            "name": "hand-over",
            "halls": [
                {
                    "name": "h",
                    "groups": [
                        {
                            "flavor": "H100-SXM5",
                            "nodes": 24,
                            "nodes_per_pod": 4,
                            "nodes_per_rack": 2,
                        }
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


def _world(
    seed: int, pol: Policies, fleet: Any = None, border: int = -1, cordons: bool = False
) -> tuple[ClusterState, PendingQueues, dict[int, Job]]:
    """24 nodes of running jobs on partial and whole nodes (no two-node gang starts at node
    `border`: the last node of a flavor) and pending jobs; some nodes cordoned if asked."""
    rng = random.Random(seed)
    st, pend, _ = tc._setup(FLEET if fleet is None else fleet, pol, ("a", "b"))
    jobs: dict[int, Job] = {}
    jid = 100
    n = 0
    while n < 24:
        jid += 1
        kw = {"team": rng.randrange(2), "prio": rng.choice([10, 100, 1000])}
        kw["end"], kw["start"] = rng.uniform(10, 5000), rng.uniform(-2000, 0)
        if rng.random() < 0.2 and n + 2 <= 24 and n != border:
            jobs[jid] = tc._run(st, jid, ((n, 8), (n + 1, 8)), **kw)
            n += 2
            continue
        left = 8
        while left and rng.random() < 0.85:
            k = rng.choice([1, 2, 3, 4, 8])
            if k > left:
                break
            jobs[jid] = tc._run(st, jid, ((n, k),), **kw)
            jid += 1
            left -= k
        n += 1
    for i in range(rng.randint(1, 12)):
        gpus = rng.choice([1, 2, 3, 4, 8, 12, 16, 24, 32])
        team, prio = rng.randrange(2), rng.choice([10, 100, 1000])
        jobs[i] = tc._pend(pend, i, gpus, rng.uniform(10, 8e3), team=team, prio=prio)
    if cordons:
        for n in rng.sample(range(24), k=rng.choice([0, 0, 1, 3])):
            st.cordon(n)  # its jobs run on (victims too); what they free stays out of service
    return st, pend, jobs


def _run(seed: int, pol: Policies, rounds: int = 10) -> tuple[int, int]:
    """Both ways, side by side; returns (preempting passes committed, those rolled back)."""
    a, b = _world(seed, pol), _world(seed, pol)
    rng = random.Random(seed + 1000)
    kept = rolled = 0
    for r in range(rounds):
        now = 1000.0 * (r + 1)
        plans = []
        for (st, pend, _), commit in ((a, False), (b, True)):
            plan = schedule(tc._snap(st, pend, now=now), pol, deep=True, commit=commit)
            plans.append(plan)
            _drive(st, pend, plan, now)
        assert _plan_key(plans[0]) == _plan_key(plans[1])
        assert not plans[0].committed or not plans[0].preemptions
        if plans[1].preemptions:
            kept += plans[1].committed
            rolled += not plans[1].committed
        assert _state_key(b[0]) == _state_key(a[0])
        assert not b[0].given
        # Some runs end, some jobs arrive: the same in both worlds, by id.
        running = sorted(a[0].running)
        for jid in rng.sample(running, k=min(len(running), rng.randint(0, 3))):
            for st, _, jobs in (a, b):
                job = jobs[jid]
                st.stop(job, job.queue_idx)
                job.state = JobState.COMPLETED
        for i in range(rng.randint(0, 4)):
            jid = 1000 * (r + 1) + i
            gpus = rng.choice([1, 2, 3, 4, 8, 12, 16, 24, 32])
            team, prio, work = rng.randrange(2), rng.choice([10, 100, 1000]), rng.uniform(10, 8e3)
            for _, pend, jobs in (a, b):
                jobs[jid] = tc._pend(pend, jid, gpus, work, team=team, prio=prio, submit=now)
    return kept, rolled


@pytest.mark.parametrize("profile", sorted(POLICIES))
def test_a_preempting_pass_kept_is_a_rollback_and_the_drivers_moves(profile: str) -> None:
    kept = rolled = 0
    for seed in range(40):
        k, r = _run(seed, POLICIES[profile])
        kept += k
        rolled += r
    # Both ways of ending a preempting pass are exercised.
    assert kept > 0
    if profile != "one_try":
        assert rolled > 0


def _two_preemptions(low: list[tuple[tuple[int, int], ...]]) -> tuple[Plan, bool]:
    """TINY full of production work but the low-priority jobs on `low`; two production jobs of
    8 GPUs arrive: the log holds eviction, start, eviction, start, the driver stops both
    first. The committed pass's plan and state, against a rollback and the driver's moves:
    (the plan, whether it was kept)."""
    worlds = []
    for commit in (False, True):
        st, pend, pol = tc._setup(tc.TINY, tc.Policies(), ("a",))
        for i, placement in enumerate(low):
            tc._run(st, 100 + i, placement, prio=10)
        held = {n for placement in low for n, _ in placement}
        for n in sorted(set(range(8)) - held):
            tc._run(st, 200 + n, ((n, 8),), prio=1000)
        for i in range(2):
            tc._pend(pend, i, 8, 10.0, prio=1000)
        plan = schedule(tc._snap(st, pend), pol, deep=True, commit=commit)
        _drive(st, pend, plan, 0.0)
        worlds.append((plan, st))
    (plan0, st0), (plan1, st1) = worlds
    assert _plan_key(plan0) == _plan_key(plan1)
    assert _state_key(st1) == _state_key(st0)
    assert [p.job.id for p in plan1.preemptions] == [100, 101]
    return plan1, plan1.committed


def test_two_preemptions_in_one_pass_are_kept_when_they_commute() -> None:
    # Nodes 0 and 1 end taken whole by the starts: no index keeps a key the first start put
    # there, so its place before the second eviction does not show (Statement._commutes).
    assert _two_preemptions([((0, 8),), ((1, 8),)])[1]


def test_two_preemptions_are_not_kept_when_a_start_leaves_its_pod_a_free_node() -> None:
    # The second victim is a two-node gang in the first start's pod, and the second start takes
    # one of its nodes: the other is a free whole node of that pod at the end, its pod's
    # bucket entry put in after the first start (Statement._commutes).
    plan, kept = _two_preemptions([((0, 8),), ((1, 8), (2, 8))])
    assert not kept
    assert len({n for s in plan.starts for n, _ in s.placement}) == 2
