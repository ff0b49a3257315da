"""Skip requests and their judge (scheduler/ordering.py, shadow.blocked_judge) against the
reference walk that takes every job from the order (tests/walk_reference.py), on generated
snapshots: nearly full fleets of one or two flavors (4- and 8-GPU nodes), three cluster queues
(one that may not borrow), long queues past MERGE_FIRST, elastic jobs and jobs limited to some
flavors, and the policy variants the judge reads or that change reservations: a flavor order
(hetero's), reserve_earliest, backfill off, a power policy, orders that ignore skip requests
(FIFO, LAS, hetero's EqFairShare), examined limits reached mid-skip. Deep and quick passes,
explain on and off. (review13: old and new schedule() agreed on these inputs as well.)"""

from __future__ import annotations

import dataclasses
import math

import pytest
import test_walk_fast as twf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st_

import cortex.scheduler.cycle as cycle_mod
import walk_reference
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.hetero import TargetFlavorOrder
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.power import CapToFit, PowerView
from cortex.scheduler.preemption import NoPreemption
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job
from cortex.workload.states import JobState

_QUEUES = {
    "cluster_queues": [
        {"name": "a", "nominal_share": 0.5, "borrowing_limit_share": 0.25},
        {"name": "b", "nominal_share": 0.3},
        {"name": "c", "nominal_share": 0.2, "borrowing_limit_share": 0.0},
    ]
}
_ONE = {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4, "nodes_per_rack": 2}
_TWO = [
    {"flavor": "H200-SXM", "nodes": 4, "nodes_per_pod": 4},
    {"flavor": "H100-SXM5", "nodes": 6, "gpus_per_node": 4, "nodes_per_pod": 3},
]
FLEETS = {
    name: build(
        parse_fleet(
            {"name": name, "halls": [{"name": "h", "groups": groups}], "queues": _QUEUES}, "test"
        )
    )
    for name, groups in (("one", [_ONE]), ("two", _TWO))
}
TEAMS = ("a", "b", "c")
PROFILES = {
    "priority": Policies(),
    "nopreempt": Policies(preemption=NoPreemption()),
    "flavor_order": Policies(flavor_order=TargetFlavorOrder()),
    "earliest": Policies(reserve_earliest=True),
    "nobackfill": Policies(backfill=False),
    "power": Policies(power=CapToFit()),
    "fifo": Policies(ordering=Fifo()),
    "las": policies("las"),
    "hetero": policies("hetero"),
}
SPEEDS = (1.0, 1.7)


@st_.composite
def _pending(draw: st_.DrawFn) -> tuple:
    gpus = draw(st_.sampled_from([1, 2, 3, 4, 6, 8, 12, 16, 24, 32]))
    emin = draw(st_.sampled_from([None, None, None, 1, 2, 4, gpus]))
    return (
        gpus,
        None if emin is None else min(emin, gpus),
        draw(st_.sampled_from([(), (), (0,), (1,), (1, 0)])),
        draw(st_.integers(0, 2)),
        draw(st_.sampled_from([10, 100, 1000])),
        float(draw(st_.integers(-50, 0))),
        draw(st_.sampled_from([10.0, 50.0, 100.0, 300.0, 1000.0, 9000.0])),
    )


_RUNNING = st_.tuples(
    st_.integers(0, 30),
    st_.integers(3, 8),
    st_.sampled_from([5.0, 50.0, 300.0, 2000.0]),
    st_.integers(0, 2),
    st_.sampled_from([10, 100]),
)
CASES = st_.fixed_dictionaries(
    {
        "fleet": st_.sampled_from(sorted(FLEETS)),
        "running": st_.lists(_RUNNING, min_size=16, max_size=40),
        "pending": st_.lists(_pending(), min_size=30, max_size=120),
        "profile": st_.sampled_from(sorted(PROFILES)),
        "limit": st_.sampled_from([512, 60, 25, 18, 5]),
        "site_w": st_.sampled_from([3000.0, 8000.0, 20000.0]),
        "budget_w": st_.sampled_from([5000.0, 30000.0]),
    }
)


def _snapshot(d: dict) -> tuple[Snapshot, Policies]:
    """The case's fleet with its running jobs (each on one node, clipped to what is free there)
    and its pending jobs; estimates of work x 8 / (gang x speed), so some tie a shadow."""
    topo = FLEETS[d["fleet"]]
    pol = dataclasses.replace(PROFILES[d["profile"]], max_examined=d["limit"])
    qc = QueueConfig.build(topo.spec.queues, topo, TEAMS)
    st = ClusterState(topo, qc)
    pend = PendingQueues(len(qc.queues), pol.ordering.key)
    used: dict[int, int] = {}
    for jid, (node, gpus, end, team, prio) in enumerate(d["running"], start=10_000):
        node %= topo.n_nodes
        k = min(gpus, st.gpn[topo.node_flavor[node]] - used.get(node, 0))
        if k <= 0:
            continue
        used[node] = used.get(node, 0) + k
        job = Job(jid, f"r{jid}", TEAMS[team], k, 1e6)
        job.queue_idx, job.priority, job.run_start_s, job.est_end_s = team, prio, -100.0, end
        job.run_flavor = topo.node_flavor[node]
        job.state = JobState.RUNNING
        job.alloc_gpus = job.run_gpus = k
        st.start(job, team, job.run_flavor, ((node, k),))
    n_f = len(st.gpn)
    for i, (gpus, emin, flavors, team, prio, submit, work) in enumerate(d["pending"]):
        job = Job(i, f"p{i}", TEAMS[team], gpus, work, submit_s=submit, elastic_min=emin)
        job.queue_idx, job.priority = team, prio
        job.flavor_ids = tuple(f for f in flavors if f < n_f)
        pend.add(job)
    view = None
    if d["profile"] == "power":
        view = PowerView(
            site_headroom_w=d["site_w"],
            hall_headroom_w=[1e9],
            levels=(1.0, 0.8, 0.6),
            floor=2,
            draw_w=lambda _k, _f: 600.0,
            idle_w=[100.0] * n_f,
            tdp_w=[700.0] * n_f,
            node_hall=[0] * topo.n_nodes,
            node_max_cap_w=[math.inf] * topo.n_nodes,
            site_budget_w=d["budget_w"],
        )
    snap = Snapshot(
        0.0,
        st,
        pend,
        lambda _k, f: SPEEDS[f],
        lambda job, f, gang: job.work_s * 8 / (gang * SPEEDS[f]),
        view,
    )
    return snap, pol


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(CASES, st_.booleans(), st_.booleans())
def test_generated_passes_decide_and_count_as_the_reference_walk(
    d: dict, deep: bool, explain: bool
) -> None:
    snap_a, pol = _snapshot(d)
    snap_b, _ = _snapshot(d)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cycle_mod, "_walk", walk_reference._walk)
        want = schedule(snap_a, pol, deep=deep, commit=True, explain=explain)
    got = schedule(snap_b, pol, deep=deep, commit=True, explain=explain)
    assert twf._everything(got, explain) == twf._everything(want, explain)
    assert sorted(snap_b.state.allocations.items()) == sorted(snap_a.state.allocations.items())
