"""Fleets and helpers of the scheduler scenario tables (test_scheduler_scenarios.py,
test_quota_scenarios.py). `tiny` is 2 pods x 4 nodes x 8 H100 (nodes 0-3 in pod 0, 4-7 in
pod 1)."""

from __future__ import annotations

from typing import Any

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.snapshot import Plan, Snapshot
from cortex.scheduler.state import ClusterState, Placement
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job

TINY = testkit.TINY
_setup = testkit.setup_cycle
_contents = testkit.state_contents


def _run(st: ClusterState, jid: int, placement: Placement, **kw: Any) -> Job:
    return testkit.running_job(st, jid, placement, **kw)


def _fleet(name: str, nodes: int, nodes_per_pod: int, queues: list[dict] | None = None) -> Topology:
    data: dict[str, Any] = {
        "name": name,
        "halls": [
            {
                "name": "h",
                "groups": [{"flavor": "H100-SXM5", "nodes": nodes, "nodes_per_pod": nodes_per_pod}],
            }
        ],
    }
    if queues:
        data["queues"] = {"cluster_queues": queues}
    return build(parse_fleet(data, "test"))


# Tiny's shape with quotas: a 32 nominal + 16 borrowable = 48 at most; b 16 and may not borrow;
# c 16 and may borrow everything.
QUOTA = _fleet(
    "quota",
    8,
    4,
    [
        {"name": "a", "nominal_share": 0.5, "borrowing_limit_share": 0.25},
        {"name": "b", "nominal_share": 0.25, "borrowing_limit_share": 0.0},
        {"name": "c", "nominal_share": 0.25},
    ],
)
# Two pods of 6 nodes: a 40-GPU gang (5 nodes) fits in one pod when it is free enough.
WIDE = _fleet("wide", 12, 6)


# ---- helpers ---------------------------------------------------------------------------------


def _use(st: ClusterState, used: dict[int, int], team: int = 0) -> None:
    """Node n runs a job of used[n] GPUs (ids 900+)."""
    for n, k in sorted(used.items()):
        _run(st, 900 + n, ((n, k),), team=team)


def _pend(
    pend: PendingQueues, jid: int, gpus: int, work: float, *, team: int = 0, prio: int = 100
) -> Job:
    job = Job(jid, f"p{jid}", "abc"[team], gpus, work, submit_s=float(jid))
    job.queue_idx, job.priority = team, prio
    pend.add(job)
    return job


def _cycle(st: ClusterState, pend: PendingQueues, pol: Policies, now: float = 0.0) -> Plan:
    """One cycle; the state must be exactly as before once it returns."""
    before = _contents(st)
    snap = Snapshot(now, st, pend, lambda kind, f: 1.0, lambda job, f, gang: job.work_s)
    plan = schedule(snap, pol)
    assert _contents(st) == before
    return plan


def _nodes(plan: Plan) -> dict[int, list[int]]:
    return {s.job.id: sorted(n for n, _ in s.placement) for s in plan.starts}


def _job(
    jid: int, gpus: int, work: float, submit: float = 0.0, pc: str = "normal", **kw: Any
) -> Job:
    return Job(jid, f"j{jid}", kw.pop("team", "a"), gpus, work, submit_s=submit,
               priority_class=pc, **kw)  # fmt: skip


def _twin(jobs: list[Job], topo: Topology = TINY, days: float = 0.025, **cfg: Any) -> Twin:
    return Twin(topo, jobs, SimConfig(days=days, failures=False, debug=True, **cfg)).run()
