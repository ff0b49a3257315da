"""`cortex submit --dry-run`: where and when a job would start, creating nothing (like
`sbatch --test-only`). The job is put into the last scheduling pass's pending lists, under
the key the loop would give it, and the start estimator (`estimate.py`) runs the scheduler
forward from the live state: the same passes, the same answer a submitted job would get from
`cortex why --start`, and the point-estimate run's flavor and nodes as "where"."""

from __future__ import annotations

import logging
from typing import Any

from cortex.control import estimate
from cortex.control.why import WhyRecord
from cortex.drive import intake
from cortex.scheduler.reasons import Reason
from cortex.workload.job import Job
from cortex.workload.spec import JobSpec

log = logging.getLogger("cortex.control")

# The trial job's id: larger than any stored id (int4), so that between jobs of equal
# ordering key it goes last, as a job submitted now would.
DRY_ID = 2**40


def live_record(loop: Any, now: float, job: Job) -> WhyRecord | Reason:
    """The live state as the estimator reads a pass's record, with `job` queued in it, or why
    the job can never be queued. Copied under the loop's lock (the why record is only made when
    jobs wait, so on an idle cluster it is stale); the copy is of lists, not of jobs."""
    with loop.tick_lock:
        mi = loop.mirror
        st = mi.state
        reason = intake.admit(job, mi.queues, loop.topo.flavors, st.gpn, st.total_gpus)
        if reason is not None:
            return reason
        job.key = loop.pol.ordering.key(job)
        lists = [list(lst) for lst in mi.pending.lists]
        running = dict(st.running)
        allocations = tuple(st.allocations.items())
        queues = st.queues
        backoff = dict(mi.backoff)  # they queue again when it ends (control/estimate.py)
        backoff_jobs = {j: mi.jobs[j] for j in backoff if j in mi.jobs}
    lists[job.queue_idx].append((job.key, job))
    lists[job.queue_idx].sort(key=lambda kj: kj[0])
    return WhyRecord(
        at=now,
        queue_names=queues.names,
        queues=tuple(tuple(q) for q in lists),
        queue_config=queues,
        running_jobs=running,
        allocations=allocations,
        backoff=backoff,
        backoff_jobs=backoff_jobs,
    )


def dry_run(loop: Any, spec: JobSpec, now: float) -> dict[str, Any]:
    """The answer of POST /v1/jobs/dry-run for one validated job."""
    # The loop's rule for the job it schedules (loop.mem_job): a declared size writes too.
    job = Job.from_spec(DRY_ID, spec, 0, spec.write_s(loop.topo.spec.storage_write_gbps))
    job.submit_s = now
    rec = live_record(loop, now, job)
    if isinstance(rec, Reason):
        return {"start_s": None, "never": True, "reason": intake.describe(rec)}
    queues = rec.queue_config
    trial = rec
    where: dict[int, tuple[int, int, Any]] = {}
    try:
        got = estimate.estimate(
            trial, loop.topo, queues, loop.pol, loop.estimate_s, loop.speed, {DRY_ID},
            where=where, lost=estimate.lost_work(loop),
        )  # fmt: skip
    except Exception:
        log.exception("dry run failed")
        return {"start_s": None, "never": False, "reason": "the estimate failed; retry"}
    est = got.get(DRY_ID)
    out: dict[str, Any] = {
        "never": False,
        "reason": None,
        "queue": rec.queue_names[job.queue_idx],
        "as_of": rec.at,
        **(estimate.to_dict(est) or {"start_s": None}),
    }
    placed = where.get(DRY_ID)
    if placed is not None:
        flavor, gang, placement = placed
        names = loop.node_names
        out["flavor"] = loop.topo.flavors[flavor]
        out["gpus"] = gang
        out["nodes"] = [
            {"node": names[n] if n < len(names) else str(n), "gpus": g} for n, g in placement
        ]
    return out
