"""Fleets and helpers shared by the scheduler tests (on the path via pytest's `pythonpath`)."""

from __future__ import annotations

from cortex.fleet.spec import load_fleet_spec, parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.cycle import Policies
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.state import ClusterState, Placement
from cortex.workload.job import Job
from cortex.workload.states import JobState

TINY = build(load_fleet_spec("tiny"))
# Two flavors with different node sizes, two halls, partial last pods (4+4+2, 3+2 and 4+2).
MIXED = build(
    parse_fleet(
        {
            "name": "mixed",
            "halls": [
                {
                    "name": "h1",
                    "groups": [
                        {"flavor": "H100-SXM5", "nodes": 10, "nodes_per_pod": 4},
                        {"flavor": "H200-SXM", "nodes": 6, "gpus_per_node": 4, "nodes_per_pod": 4},
                    ],
                },
                {
                    "name": "h2",
                    "groups": [{"flavor": "H100-SXM5", "nodes": 5, "nodes_per_pod": 3}],
                },
            ],
        },
        "test",
    )
)


# Two flavors: 4 H200 nodes (pod 0, nodes 0-3) and 4 H100 nodes (pod 1, nodes 4-7).
TWO_FLAVORS = build(
    parse_fleet(
        {
            "name": "two",
            "halls": [
                {
                    "name": "h",
                    "groups": [
                        {"flavor": "H200-SXM", "nodes": 4, "nodes_per_pod": 4},
                        {"flavor": "H100-SXM5", "nodes": 4, "nodes_per_pod": 4},
                    ],
                }
            ],
        },
        "test",
    )
)


def setup_cycle(
    topo: Topology = TINY, pol: Policies | None = None, teams: tuple[str, ...] = ("a",)
) -> tuple[ClusterState, PendingQueues, Policies]:
    """An empty state, its pending queues and FIFO policies (unless given)."""
    pol = pol or Policies(ordering=Fifo())
    qc = QueueConfig.build(topo.spec.queues, topo, teams)
    return ClusterState(topo, qc), PendingQueues(len(qc.queues), pol.ordering.key), pol


def running_job(
    st: ClusterState,
    jid: int,
    placement: Placement,
    *,
    end: float = 1e9,
    team: int = 0,
    prio: int = 100,
    start: float = 0.0,
    work: float = 1e6,
) -> Job:
    """A job running on `placement`, started the way a driver starts one."""
    gpus = sum(k for _, k in placement)
    job = Job(jid, f"r{jid}", st.queues.queues[team].name, gpus, work)
    job.queue_idx, job.priority, job.run_start_s, job.est_end_s = team, prio, start, end
    job.run_flavor = st.topo.node_flavor[placement[0][0]]
    job.state = JobState.RUNNING
    job.alloc_gpus = job.run_gpus = gpus
    st.start(job, team, job.run_flavor, placement)
    return job


def state_contents(st: ClusterState) -> tuple:
    """Everything the state holds, in iteration order: placement breaks ties by the order of
    the indices, so a state with the same sets in another order is not the same state."""
    return (
        list(st.node_free),
        list(st.node_up),
        [list(d.items()) for d in st.node_jobs],
        [[list(d) for d in row] for row in st.part],
        [list(d) for d in st.pod_whole],
        [[list(d) for d in row] for row in st.pod_bucket],
        [list(r) for r in st.hall_whole],
        list(st.free_gpus),
        list(st.busy_gpus),
        list(st.allocations.items()),
        [list(u) for u in st.usage],
        list(st.cohort_usage),
        list(st.running),
        [list(e) for e in st.ends],
        [list(d.items()) for d in st.nodes_by_top_prio],
        st.np_used.tolist(),
        st.np_max_prio.tolist(),
        st.np_last_start.tolist(),
        st.np_up.tolist(),
        list(st.cordoned.items()),
    )


def stress_power_fleet(queues: bool = False) -> Topology:
    """The power stress fleet: two halls of 16 nodes (one cooling-bound, one under an IT cap)
    under a 0.3 MW site cap that binds; with `queues`, three teams with nominal shares."""
    spec: dict = {
        "name": "stress",
        "site": {"power_cap_mw": 0.3, "pue": 1.25},
        "halls": [
            {"name": "a", "cooling_mw": 0.12,
             "groups": [{"flavor": "H100-SXM5", "nodes": 16, "nodes_per_pod": 8}]},
            {"name": "b", "power_cap_mw": 0.1,
             "groups": [{"flavor": "H200-SXM", "nodes": 16, "nodes_per_pod": 8}]},
        ],
    }  # fmt: skip
    if queues:
        spec["queues"] = {"cluster_queues": [
            {"name": "fsd", "nominal_share": 0.5}, {"name": "optimus", "nominal_share": 0.3},
            {"name": "research", "nominal_share": 0.2},
        ]}  # fmt: skip
    return build(parse_fleet(spec, "stress"))


def two_hall_power_fleet(name: str) -> Topology:
    """Two halls of two 4-node H100 pods each under a 0.2 MW site cap that binds (the power
    books' tests: with rack budgets under the racks' TDP, node caps are finite and ladders
    differ within a class; gangs may span the halls)."""
    return build(
        parse_fleet(
            {
                "name": name,
                "site": {"name": "lab", "power_cap_mw": 0.2, "pue": 1.2},
                "halls": [
                    {"name": h, "groups": [{"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]}
                    for h in ("h1", "h2")
                ],
            },
            "test",
        )
    )
