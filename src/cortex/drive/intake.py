"""Intake: may a submitted job wait in a queue at all? Written once for both drivers (the twin's
arrivals, the control plane's API, loop and recovery), with one vocabulary of reason codes
(`cortex.scheduler.reasons.Code`) and one message style (`describe`).

A job is refused, in this order, when its team has no queue (`UnknownQueue`), its priority
class is unknown (`UnknownPriorityClass`), the fleet has none of its flavors
(`NoEligibleFlavor`), or its smallest gang could never be placed, even on an empty fleet with
its queue borrowing all it may (`NeverFits`). Power (`NeverFitsPower`) is the driver's to add:
only a driver with a power budget knows it.
"""

from __future__ import annotations

from collections.abc import Sequence

from cortex.scheduler.placement import alloc_size
from cortex.scheduler.queues import ClusterQueue, QueueConfig
from cortex.scheduler.reasons import Code, Reason
from cortex.workload.job import Job

# The job-spec field each refusal is about (the API names it in its 422).
FIELD: dict[Code, str] = {
    Code.UNKNOWN_QUEUE: "team",
    Code.UNKNOWN_PRIORITY_CLASS: "priority_class",
    Code.NO_FLAVOR: "flavors",
    Code.NEVER_FITS: "gpus",
}


def describe(reason: Reason) -> str:
    """The one message style of a refusal: its code, then why (`NeverFits: needs 64 ...`)."""
    return f"{reason.code.value}: {reason.message}"


def unknown_queue(team: str) -> Reason:
    return Reason(Code.UNKNOWN_QUEUE, team=team)


def priority_of(queues: QueueConfig, priority_class: str) -> int | Reason:
    """The class's priority, or why the class is refused."""
    prio = queues.priority_classes.get(priority_class)
    if prio is None:
        return Reason(
            Code.UNKNOWN_PRIORITY_CLASS,
            priority_class=priority_class,
            known=sorted(queues.priority_classes),
        )
    return prio


def flavor_ids(fleet_flavors: Sequence[str], wanted: Sequence[str]) -> tuple[int, ...] | Reason:
    """The fleet's indices of the flavors a job accepts, in the job's order of preference
    (empty: any flavor), or why none is there."""
    if not wanted:
        return ()
    ids = tuple(fleet_flavors.index(f) for f in wanted if f in fleet_flavors)
    return ids or Reason(Code.NO_FLAVOR, flavors=list(wanted))


def never_fits(
    gang: int,
    flavors: Sequence[int],
    gpus_per_node: Sequence[int],
    total_gpus: Sequence[int],
    queue: ClusterQueue | None,
) -> Reason | None:
    """Why a gang of `gang` GPUs can never be placed on any of `flavors` (all when empty):
    its allocation (whole nodes past one node) is over the flavor's GPUs, or over what its
    queue may hold there (nominal plus borrowing limit). `queue` None: the fleet alone."""
    # Asked at every arrival of both drivers: the common answers (no borrowing limit, a gang
    # within a node) take no call.
    most = 0
    for f in flavors or range(len(gpus_per_node)):
        cap = total_gpus[f]
        if queue is not None:
            limit = queue.borrowing_limit[f]
            if limit is not None:
                cap = min(cap, queue.nominal[f] + limit)
        if cap > most:  # noqa: PLR1730 (max(most, cap) without the call: the same int)
            most = cap
        g = gpus_per_node[f]
        if (gang if gang <= g else alloc_size(gang, g)) <= cap:  # alloc_size's first branch
            return None
    return Reason(Code.NEVER_FITS, need=gang, most=most)


def admit(
    job: Job,
    queues: QueueConfig,
    fleet_flavors: Sequence[str],
    gpus_per_node: Sequence[int],
    total_gpus: Sequence[int],
) -> Reason | None:
    """Resolve a job against the queues and the fleet: set its queue index, priority and
    eligible flavors; return why it can never be queued, or None. Both drivers call this."""
    try:
        job.queue_idx = queues.index(job.team)
    except KeyError:
        return unknown_queue(job.team)
    # A known class read here, priority_of asked only for a refusal (once per arrival)
    prio = queues.priority_classes.get(job.priority_class)
    if prio is None:
        why = priority_of(queues, job.priority_class)
        assert isinstance(why, Reason)
        return why
    job.priority = prio
    if job.flavors:
        ids = flavor_ids(fleet_flavors, job.flavors)
        if isinstance(ids, Reason):
            return ids
        job.flavor_ids = ids
    return never_fits(
        job.elastic_min or job.gpus,
        job.flavor_ids,
        gpus_per_node,
        total_gpus,
        queues.queues[job.queue_idx],
    )
