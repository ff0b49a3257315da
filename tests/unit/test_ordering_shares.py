"""PriorityFairShare's shares at their edges: a flavor of a single GPU, and a queue whose usage
moves (a victim evicted) between two picks while its head stays put. Orders derived by hand."""

from __future__ import annotations

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.ordering import PriorityFairShare
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

QUEUES = {"cluster_queues": [{"name": "a", "nominal_share": 0.5},
                             {"name": "b", "nominal_share": 0.5}]}  # fmt: skip
H100_GROUP = {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}  # 64 GPUs


def _fleet(name: str, groups: list[dict]) -> Topology:
    halls = [{"name": "h", "groups": groups}]
    return build(parse_fleet({"name": name, "halls": halls, "queues": QUEUES}, "test"))


# 64 H100 GPUs, and one H200 node of a single GPU: a flavor whose total is 1.
ONE_GPU_FLAVOR = _fleet("one", [H100_GROUP, {"flavor": "H200-SXM", "nodes": 1,
                                             "nodes_per_pod": 1, "gpus_per_node": 1}])  # fmt: skip
PLAIN = _fleet("plain", [H100_GROUP])


def _pending(pol: PriorityFairShare, jobs: list[tuple[int, int, float]]) -> PendingQueues:
    """jobs: (id, queue, submit), all of priority 100."""
    pend = PendingQueues(2, pol.key)
    for jid, q, submit in jobs:
        job = Job(jid, f"p{jid}", "ab"[q], 1, 10.0, submit_s=submit)
        job.queue_idx, job.priority = q, 100
        pend.add(job)
    return pend


def _snap(st: ClusterState, pend: PendingQueues) -> Snapshot:
    return Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0)


def test_a_flavor_of_one_gpu_counts_its_whole_gpu() -> None:
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(ONE_GPU_FLAVOR, None, ("a", "b"))
    h100, h200 = (st.topo.flavors.index(f) for f in ("H100-SXM5", "H200-SXM"))
    assert st.total_gpus[h200] == 1
    st.add_usage(0, h200, 1)  # a: 1 of 1 H200 GPU -> dominant share 1 / 1 = 1.0
    st.add_usage(1, h100, 40)  # b: 40 of 64 H100 GPUs -> 40 / 64 = 0.625
    # b's 0.625 < a's 1.0, so b goes first although a's job arrived earlier. (Counting the
    # H200 total as 2 would make a's share 0.5 and put a first.)
    pend = _pending(pol, [(1, 0, 0.0), (2, 1, 5.0)])
    assert [j.id for j in pol.order(_snap(st, pend))] == [2, 1]


def test_a_share_that_drops_between_picks_is_recomputed() -> None:
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(PLAIN, None, ("a", "b"))
    st.add_usage(0, 0, 16)  # a holds 16 of 64: share 0.25; b holds nothing: 0
    # a: jobs 1 (t=1) and 2 (t=2); b: jobs 3 (t=3) and 4 (t=4).
    pend = _pending(pol, [(1, 0, 1.0), (2, 0, 2.0), (3, 1, 3.0), (4, 1, 4.0)])
    it = pol.order(_snap(st, pend))
    assert next(it).id == 3  # b's 0 < a's 0.25
    # Job 3 does not start, but a's running job is evicted: a's share falls to 0 / 64 = 0
    # while a's head (job 1) has not moved.
    st.add_usage(0, 0, -16)
    # Both shares 0 now: arrival order among the heads, job 1 (t=1) before job 4 (t=4), then
    # job 2 (t=2) before job 4. With a's share still 0.25, job 4 would come next instead.
    assert [j.id for j in it] == [1, 2, 4]
