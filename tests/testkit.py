"""Fleets and helpers shared by the scheduler tests (on the path via pytest's `pythonpath`)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from cortex.fleet.spec import load_fleet_spec, parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.cycle import Policies
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.power import PowerView
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


def books_job(
    rng: random.Random, jid: int, nodes: list[int], kinds: Sequence[str], **choices: list
) -> tuple[Job, tuple[tuple[int, int], ...], int]:
    """A random job on `nodes` for the power books' random-sequence tests (8, 8 or 4 GPUs a
    node, a kind of `kinds`, and each field of `choices` drawn from its list), with its
    placement and gang: the draws in the order those tests always made them, so that one
    seed gives the same sequence as before they shared this."""
    placement = tuple((n, rng.choice([8, 8, 4])) for n in nodes)
    gang = sum(k for _, k in placement)
    kind = rng.choice(kinds)
    fields = {name: rng.choice(values) for name, values in choices.items()}
    return Job(jid, "j", "a", gang, 3600.0, kind=kind, **fields), placement, gang


def toy_power_view(
    levels: tuple[float, ...],
    halls: int,
    caps: list[float],
    capped: bool,
    *,
    site_w: float,
    hall_w: list[float],
    ramp_w: float,
    ramp_limit_w: float,
    target: dict,
) -> PowerView:
    """The random-state admission tests' toy view: one flavor, 8 nodes dealt over `halls`, a
    600 W draw of a 700 W TDP over 100 W idle, floor level 3, rack caps `caps` when `capped`;
    the budgets are the caller's draws (made in the order the tests always made them)."""
    return PowerView(
        site_headroom_w=site_w,
        hall_headroom_w=hall_w,
        levels=levels,
        floor=3,
        draw_w=lambda _kind, _f: 600.0,
        idle_w=[100.0],
        tdp_w=[700.0],
        node_hall=[n % halls for n in range(8)],
        node_max_cap_w=caps if capped else [math.inf] * 8,
        min_node_cap_w=min(caps) if capped else math.inf,
        ramp_headroom_w=ramp_w,
        ramp_limit_w=ramp_limit_w,
        target=target,
    )
