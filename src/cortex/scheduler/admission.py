"""Admission checks: the list a job must pass, per flavor, before placement. Quota now; a power
check joins the list later without touching the cycle."""

from __future__ import annotations

from typing import Protocol

from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Snapshot
from cortex.workload.job import Job


class AdmissionCheck(Protocol):
    """Returns None to admit, or the Reason the job may not start on this flavor now."""

    name: str

    def check(self, snap: Snapshot, job: Job, flavor: int, alloc_gpus: int) -> Reason | None: ...


class QuotaCheck:
    """Kueue quota: a queue may use its nominal quota plus what it may borrow from the cohort,
    up to its borrowing limit; the cohort as a whole never exceeds its nominal total."""

    name = "quota"

    def check(self, snap: Snapshot, job: Job, flavor: int, alloc_gpus: int) -> Reason | None:
        st = snap.state
        cq = st.queues.queues[job.queue_idx]
        used = st.usage[job.queue_idx][flavor]
        limit = cq.borrowing_limit[flavor]
        if limit is not None and used + alloc_gpus > cq.nominal[flavor] + limit:
            return Reason(
                Code.BORROWING_LIMIT,
                need=alloc_gpus,
                flavor=st.topo.flavors[flavor],
                queue=cq.name,
                usage=used,
                nominal=cq.nominal[flavor],
                limit=limit,
            )
        cohort_free = st.queues.cohort_nominal[flavor] - st.cohort_usage[flavor]
        # Where the cohort's quota covers all free capacity, capacity is the real blocker and
        # placement names it; quota is the reason only when it binds first.
        if alloc_gpus > cohort_free and cohort_free < st.free_gpus[flavor]:
            return Reason(
                Code.QUOTA_EXCEEDED,
                need=alloc_gpus,
                flavor=st.topo.flavors[flavor],
                free_in_quota=cohort_free,
            )
        return None


ADMISSION_CHECKS = {"quota": QuotaCheck}
