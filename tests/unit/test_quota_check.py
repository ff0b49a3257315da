"""QuotaCheck (scheduler/admission.py): the cohort's quota binds only where it is tighter than
the free capacity; the reason carries the numbers. Usage is set by hand, GPUs counted by hand."""

from __future__ import annotations

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.admission import QuotaCheck
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

# 8 nodes of 8 H100 GPUs (64); queues a and b with half each (32 GPUs), no borrowing limit.
_QUEUES = [{"name": "a", "nominal_share": 0.5}, {"name": "b", "nominal_share": 0.5}]
_GROUPS = [{"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]
FLEET = build(parse_fleet({"name": "q", "halls": [{"name": "h", "groups": _GROUPS}],
                           "queues": {"cluster_queues": _QUEUES}}, "test"))  # fmt: skip


def _check(st: ClusterState, gpus: int) -> Reason | None:
    job = Job(1, "j", "a", gpus, 10.0)
    job.queue_idx = 0
    snap = Snapshot(0.0, st, PendingQueues(2, lambda j: (j.id,)), lambda k, f: 1.0,
                    lambda j, f, g: 1.0)  # fmt: skip
    return QuotaCheck().check(snap, job, 0, gpus)


def test_the_cohort_quota_binds_when_tighter_than_free_capacity() -> None:
    st, _, _ = testkit.setup_cycle(FLEET, None, ("a", "b"))
    # Quota held without nodes (say, jobs admitted whose nodes are not taken yet): a 8, b 48.
    st.add_usage(0, 0, 8)
    st.add_usage(1, 0, 48)
    # The cohort has 64 - (8 + 48) = 8 GPUs of quota left; 64 GPUs are free on the nodes.
    assert st.free_gpus[0] == 64
    r = _check(st, 16)  # 16 > 8 and 8 < 64: the quota is the blocker
    assert r is not None and r.code is Code.QUOTA_EXCEEDED
    assert r.detail == {"need": 16, "flavor": "H100-SXM5", "free_in_quota": 8}
    assert _check(st, 9) is not None  # 9 > 8
    assert _check(st, 8) is None  # exactly the 8 left: admitted


def test_capacity_not_quota_is_the_blocker_when_the_quota_covers_all_free_gpus() -> None:
    st, _, _ = testkit.setup_cycle(FLEET, None, ("a", "b"))
    # Jobs on nodes: a holds 1 node (8 GPUs), b 6 nodes (48): 64 - 56 = 8 GPUs free, and the
    # cohort's quota left is also 64 - 56 = 8.
    testkit.running_job(st, 100, ((0, 8),), team=0)
    testkit.running_job(st, 101, tuple((n, 8) for n in range(1, 7)), team=1)
    assert st.free_gpus[0] == 8
    # 16 > 8 quota left, but 8 is not less than the 8 free: placement names the capacity.
    assert _check(st, 16) is None
