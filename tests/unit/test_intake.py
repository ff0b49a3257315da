"""Intake (drive/intake.py), the one check both drivers run on a submitted job: queue, priority
class, flavors and the never-fits rule, with the numbers worked out by hand."""

from __future__ import annotations

from cortex.drive import intake
from cortex.fleet.spec import ClusterQueueSpec, QueuesSpec
from cortex.scheduler.queues import ClusterQueue, QueueConfig
from cortex.scheduler.reasons import Code
from cortex.workload.job import Job
from testkit import MIXED

# MIXED: H100-SXM5 15 nodes x 8 = 120 GPUs (flavor 0), H200-SXM 6 nodes x 4 = 24 (flavor 1).
GPN, TOTAL = (8, 4), (120, 24)


def queue(nominal: tuple[int, int], limit: tuple[int | None, int | None]) -> ClusterQueue:
    return ClusterQueue("a", 0, nominal, limit, 1.0)


def test_a_gang_past_one_node_needs_whole_nodes() -> None:
    # 22 GPUs on 4-GPU nodes take 6 nodes = 24 GPUs: fits H200's 24 exactly; 25 takes 28.
    assert intake.never_fits(22, (1,), GPN, TOTAL, None) is None
    r = intake.never_fits(25, (1,), GPN, TOTAL, None)
    assert r is not None and r.code is Code.NEVER_FITS and r.detail == {"need": 25, "most": 24}


def test_any_acceptable_flavor_that_holds_the_gang_is_enough() -> None:
    # 25 GPUs never fit H200 (24) but fit H100 (120); flavors () means every flavor.
    assert intake.never_fits(25, (), GPN, TOTAL, None) is None
    r = intake.never_fits(121, (), GPN, TOTAL, None)
    assert r is not None and r.detail == {"need": 121, "most": 120}


def test_the_queue_bounds_a_gang_by_nominal_plus_borrowing_limit() -> None:
    # H100: nominal 16 + limit 8 = 24 GPUs; H200: nominal 0 + limit None = the whole 24.
    q = queue((16, 0), (8, None))
    assert intake.never_fits(24, (0,), GPN, TOTAL, q) is None
    r = intake.never_fits(25, (0,), GPN, TOTAL, q)  # 25 -> 32 GPUs (4 nodes) > 24
    assert r is not None and r.detail == {"need": 25, "most": 24}
    # A capped queue never exceeds the flavor's own GPUs: min(24, 0 + 100) = 24 on H200.
    r = intake.never_fits(25, (1,), GPN, TOTAL, queue((16, 0), (8, 100)))
    assert r is not None and r.detail["most"] == 24


def _job(**kw: object) -> Job:
    base: dict = {"id": 1, "name": "j", "team": "a", "gpus": 8, "work_s": 3600.0}
    base.update(kw)
    return Job(**base)


def _queues(limit_share: float | None) -> QueueConfig:
    spec = QueuesSpec(
        cluster_queues=[
            ClusterQueueSpec(name="a", nominal_share=0.1, borrowing_limit_share=limit_share)
        ]
    )
    return QueueConfig.build(spec, MIXED)


def _admit(job: Job, qc: QueueConfig) -> Code | None:
    r = intake.admit(job, qc, MIXED.flavors, GPN, TOTAL)
    return None if r is None else r.code


def test_admit_refuses_in_order_queue_class_flavor_fit() -> None:
    qc = _queues(None)
    assert _admit(_job(team="nope", priority_class="bogus"), qc) is Code.UNKNOWN_QUEUE
    assert _admit(_job(priority_class="bogus", flavors=("TPU",)), qc) is (
        Code.UNKNOWN_PRIORITY_CLASS
    )
    assert _admit(_job(flavors=("TPU",), gpus=10_000), qc) is Code.NO_FLAVOR
    assert _admit(_job(gpus=10_000), qc) is Code.NEVER_FITS


def test_admit_resolves_queue_priority_and_flavors_in_the_jobs_order() -> None:
    job = _job(priority_class="production", flavors=("H200-SXM", "TPU", "H100-SXM5"))
    assert _admit(job, _queues(None)) is None
    assert (job.queue_idx, job.priority) == (0, 1000)
    assert job.flavor_ids == (1, 0)  # the job's order of preference, unknown names dropped


def test_admit_judges_the_smallest_gang_against_the_queue() -> None:
    # Share 0.1 of 120 H100 = 12 nominal, limit share 0.1 = 12: at most 24 H100 GPUs;
    # H200: 2 + 2 = 4. A 32-GPU gang never fits; elastic down to 16 it does (16 <= 24).
    qc = _queues(0.1)
    assert _admit(_job(gpus=32), qc) is Code.NEVER_FITS
    assert _admit(_job(gpus=32, elastic_min=16), qc) is None


def test_describe_is_the_code_then_the_reason() -> None:
    r = intake.never_fits(121, (), GPN, TOTAL, None)
    assert r is not None
    assert intake.describe(r) == (
        "NeverFits: needs 121 GPUs; the most any acceptable flavor could give is 120"
    )


def test_admit_takes_a_class_of_priority_zero_and_names_an_unknown_one() -> None:
    """admit reads the class's priority itself (section 126) and asks priority_of only for a
    refusal: a priority of 0 is a priority, and the refusal is priority_of's own."""
    qc = _queues(None)
    qc.priority_classes["idle"] = 0  # (the default classes' lowest)
    job = _job(priority_class="idle")
    assert _admit(job, qc) is None and job.priority == 0
    r = intake.admit(_job(priority_class="bogus"), qc, MIXED.flavors, GPN, TOTAL)
    assert r is not None and r.code is Code.UNKNOWN_PRIORITY_CLASS
    assert r.detail == {"priority_class": "bogus", "known": sorted(qc.priority_classes)}


def _plain_never_fits(
    gang: int,
    flavors: tuple[int, ...],
    gpn: tuple[int, int],
    total: tuple[int, int],
    q: ClusterQueue | None,
) -> dict[str, int] | None:
    # The rule as written before its fast path (max and alloc_size at every flavor).
    most = 0
    for f in flavors or range(len(gpn)):
        cap = total[f]
        limit = q.borrowing_limit[f] if q is not None else None
        if q is not None and limit is not None:
            cap = min(cap, q.nominal[f] + limit)
        most = max(most, cap)
        if (gang if gang <= gpn[f] else -(-gang // gpn[f]) * gpn[f]) <= cap:
            return None
    return {"need": gang, "most": most}


def test_never_fits_is_the_plain_rule_for_every_gang_flavor_set_and_queue() -> None:
    # Gangs within a node, at a node, past it by one GPU and on node multiples, on both
    # flavors in either order or alone, without a queue and with limits that bind each way:
    # the same verdict and the same numbers as the rule read plainly.
    queues = [None, queue((16, 0), (8, None)), queue((0, 8), (None, 4)), queue((4, 4), (3, 1))]
    seen = 0
    for gang in [*range(1, 30), 31, 32, 33, 63, 64, 65, 119, 120, 121, 200]:
        for flavors in [(), (0,), (1,), (1, 0), (0, 1)]:
            for q in queues:
                got = intake.never_fits(gang, flavors, GPN, TOTAL, q)
                want = _plain_never_fits(gang, flavors, GPN, TOTAL, q)
                assert (None if got is None else got.detail) == want, (gang, flavors, q)
                seen += got is not None
    assert seen > 100  # refusals with their numbers were compared, not only passes
