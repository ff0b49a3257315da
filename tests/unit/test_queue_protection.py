"""Per-queue preemption protection: a queue's own minimum runtime and a preemption budget per
job, read by every preemption policy (scheduler/preemption.py `protected`), and the node filter
that must not drop a node a queue with a shorter protection leaves open."""

from __future__ import annotations

import pytest

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.ordering import LeastAttainedService, PriorityFairShare
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.preemption import LasDemotion, PriorityReclaim, protected
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job
from cortex.workload.states import JobState

NOW = 10_000.0
# Two 8-GPU nodes. Queue "slow" protects its jobs for 3,600 s and at most 2 preemptions each;
# queue "fast" takes the fleet default (600 s) and no budget.
TOPO = build(
    parse_fleet(
        {
            "name": "protect",
            "halls": [{"name": "h", "groups": [{"flavor": "H100-SXM5", "nodes": 2}]}],
            "queues": {
                "min_runtime_s": 600,
                "cluster_queues": [
                    {
                        "name": "slow",
                        "nominal_share": 0.5,
                        "min_runtime_s": 3600,
                        "preemption_budget": 2,
                    },
                    {"name": "fast", "nominal_share": 0.5},
                ],
            },
        },
        "test",
    )
)


POL = Policies(ordering=PriorityFairShare(), preemption=PriorityReclaim())


def _state() -> ClusterState:
    return ClusterState(TOPO, QueueConfig.build(TOPO.spec.queues, TOPO))


def _running(st: ClusterState, jid: int, queue: int, node: int, start: float, pre: int = 0) -> Job:
    job = Job(jid, f"r{jid}", st.queues.queues[queue].name, 8, 1e6)
    job.queue_idx, job.priority, job.run_start_s = queue, 10, start
    job.run_flavor, job.state, job.preemptions = 0, JobState.RUNNING, pre
    job.alloc_gpus = job.run_gpus = 8
    st.start(job, queue, 0, ((node, 8),))
    return job


def _snap(st: ClusterState, *pending: Job) -> Snapshot:
    pq = PendingQueues(len(st.queues.queues), PriorityFairShare().key)
    for j in pending:
        pq.add(j)
    return Snapshot(NOW, st, pq, lambda k, f: 1.0, lambda j, f, g: 100.0)


def test_the_queues_resolve_their_own_protection() -> None:
    qc = QueueConfig.build(TOPO.spec.queues, TOPO)
    assert [(q.min_runtime_s, q.preemption_budget) for q in qc.queues] == [(3600, 2), (600, None)]
    assert qc.least_min_runtime_s == 600


@pytest.mark.parametrize(
    ("queue", "start", "pre", "shielded"),
    [
        # slow: started 3,600 s ago is just settled (10,000 - 3,600 = 6,400); 1 s later is not.
        (0, 6_400.0, 0, False),
        (0, 6_401.0, 0, True),
        # slow: budget 2, so a job preempted twice is no longer a victim; once, it still is.
        (0, 0.0, 1, False),
        (0, 0.0, 2, True),
        # fast: the fleet's 600 s (settled at 9,400) and no budget.
        (1, 9_400.0, 0, False),
        (1, 9_401.0, 0, True),
        (1, 0.0, 50, False),
    ],
)
def test_protected_reads_the_victims_own_queue(
    queue: int, start: float, pre: int, shielded: bool
) -> None:
    st = _state()
    v = _running(st, 1, queue, 0, start, pre)
    assert protected(_snap(st), v) is shielded
    job = Job(9, "p", "fast", 8, 10.0)
    job.queue_idx, job.priority = 1, 1000
    assert PriorityReclaim().eligible(_snap(st), job, v) is not shielded
    las = LasDemotion(LeastAttainedService(thresholds_gpu_s=(1.0,)))
    v.attained_gpu_s = 1e9
    assert las.eligible(_snap(st), job, v) is not shielded


def test_a_high_priority_job_takes_the_unprotected_node() -> None:
    # Both nodes run priority-10 work: slow's job started 1,000 s ago (protected until 3,600),
    # fast's 1,000 s ago too (settled after 600). The production job evicts fast's job even
    # though slow's has the lower id and the same cost.
    st = _state()
    _running(st, 1, 0, 0, NOW - 1_000)
    _running(st, 2, 1, 1, NOW - 1_000)
    job = Job(9, "p", "fast", 8, 10.0)
    job.queue_idx, job.priority = 1, 1000
    plan = schedule(
        _snap(st, job), Policies(ordering=PriorityFairShare(), preemption=PriorityReclaim())
    )
    assert [p.job.id for p in plan.preemptions] == [2]
    assert [s.job.id for s in plan.starts] == [9]


def test_a_job_out_of_budget_is_not_preempted_and_says_why_it_waits() -> None:
    st = _state()
    _running(st, 1, 0, 0, 0.0, pre=2)
    _running(st, 2, 0, 1, 0.0, pre=2)
    job = Job(9, "p", "fast", 8, 10.0)
    job.queue_idx, job.priority = 1, 1000
    plan = schedule(
        _snap(st, job), Policies(ordering=PriorityFairShare(), preemption=PriorityReclaim())
    )
    assert plan.preemptions == [] and plan.starts == []
    assert plan.preempt_failed == [9]


def test_a_queue_with_a_shorter_protection_than_the_default_is_not_filtered_out() -> None:
    # The default is 600 s but "fast" protects for 0 s: its job started 100 s ago may go. The
    # node filter must use the shortest protection of any queue, not the default.
    spec = TOPO.spec.model_dump()
    spec["queues"]["cluster_queues"][1]["min_runtime_s"] = 0
    topo = build(parse_fleet(spec, "test"))
    st = ClusterState(topo, QueueConfig.build(topo.spec.queues, topo))
    _running(st, 1, 0, 0, 0.0, pre=2)  # slow, out of budget
    _running(st, 2, 1, 1, NOW - 100)
    job = Job(9, "p", "slow", 8, 10.0)
    job.queue_idx, job.priority = 0, 1000
    plan = schedule(_snap(st, job), POL)
    assert [p.job.id for p in plan.preemptions] == [2]
