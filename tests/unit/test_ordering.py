"""PriorityFairShare across queues: weighted dominant shares, and arrival order on a tie."""

from __future__ import annotations

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import Policies
from cortex.scheduler.ordering import Fifo, PriorityFairShare
from cortex.scheduler.preemption import NoPreemption, PriorityReclaim
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Snapshot
from cortex.workload.job import Job

# tiny's shape (64 GPUs) with two queues: a of weight 2, b of weight 1.
WEIGHTED = build(parse_fleet({"name": "w", "halls": [{"name": "h", "groups": [
    {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]}], "queues": {"cluster_queues": [
    {"name": "a", "nominal_share": 0.5, "weight": 2.0},
    {"name": "b", "nominal_share": 0.5, "weight": 1.0}]}}, "test"))  # fmt: skip


def _order(running: dict[int, int], pending: list[tuple[int, int, float]]) -> list[int]:
    """Ids in PriorityFairShare order; running: queue -> GPUs held; pending: (id, queue, submit)."""
    pol = Policies(ordering=PriorityFairShare())
    st, pend, _ = testkit.setup_cycle(WEIGHTED, pol, ("a", "b"))
    node = 0
    for q, gpus in running.items():
        testkit.running_job(st, 100 + q, tuple((node + i, 8) for i in range(gpus // 8)), team=q)
        node += gpus // 8
    for jid, q, submit in pending:
        job = Job(jid, f"p{jid}", "ab"[q], 1, 10.0, submit_s=submit)
        job.queue_idx, job.priority = q, 100
        pend.add(job)
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0)
    return [j.id for j in pol.ordering.order(snap)]


def test_weight_divides_the_dominant_share() -> None:
    # a holds 24 of 64 GPUs: 0.375 / weight 2 = 0.1875; b holds 16: 0.25 / 1 = 0.25. a's job
    # goes first although a holds more GPUs.
    assert _order({0: 24, 1: 16}, [(1, 1, 0.0), (2, 0, 1.0)]) == [2, 1]


def test_equal_shares_go_by_arrival_across_queues() -> None:
    # Nothing runs: both shares are 0, so the earlier submission goes first, whatever its queue.
    assert _order({}, [(1, 0, 5.0), (2, 1, 3.0), (3, 0, 4.0)]) == [2, 3, 1]


def test_fifo_profile_never_preempts() -> None:
    p = policies("fifo")
    assert isinstance(p.ordering, Fifo) and isinstance(p.preemption, NoPreemption)


def test_priority_profile_wiring() -> None:
    p = policies("priority")
    assert isinstance(p.ordering, PriorityFairShare) and isinstance(p.preemption, PriorityReclaim)
    assert p.backfill is True and policies("priority", backfill=False).backfill is False


def test_one_pending_job_is_the_order_and_more_go_through_the_merge() -> None:
    """The lone-job path (PendingQueues.lone, taken by PriorityFairShare, Fifo and LAS): one
    job pending in either queue is the whole order; two or more, in one queue or both, are
    all yielded in the merge's order; after a removal that leaves one, that one."""
    from cortex.scheduler.ordering import LeastAttainedService
    from cortex.scheduler.pending import PendingQueues

    for q in (0, 1):
        assert _order({}, [(7, q, 1.0)]) == [7]
    assert _order({}, [(7, 1, 2.0), (8, 1, 1.0)]) == [8, 7]
    assert _order({0: 8}, [(7, 0, 1.0), (8, 1, 2.0)]) == [8, 7]
    for policy in (PriorityFairShare(), Fifo(), LeastAttainedService()):
        pend = PendingQueues(2, policy.key)
        jobs = []
        for jid, q in ((5, 1), (6, 0)):
            job = Job(jid, f"p{jid}", "a", 1, 10.0, submit_s=float(jid))
            job.queue_idx, job.priority = q, 100
            jobs.append(job)
        assert pend.lone() is None
        pend.add(jobs[0])
        assert pend.lone() is jobs[0]
        pend.add(jobs[1])
        assert pend.lone() is None
        st = testkit.setup_cycle(WEIGHTED, Policies(ordering=policy), ("a", "b"))[0]
        snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0)
        assert sorted(j.id for j in policy.order(snap)) == [5, 6]
        pend.remove(jobs[0])
        assert pend.lone() is jobs[1]
        assert [j.id for j in policy.order(snap)] == [6]
