"""When a victim search that found none is worth running again, one rule for both drivers.

A running job's queue protects it from preemption for `min_runtime_s` after it starts (the
preemption floor, scheduler/preemption.py). A search that failed because its victims were still
protected can succeed once enough of them are not: `retry_by_s` is that moment, and
`runs.preempt_backoff` brings the next search forward to it. The control plane (tens of jobs)
lists the protected jobs with a scan (`protected`); the twin (100k GPUs) keeps them in a heap as
runs start (`ProtectionEnds`), so that it never scans its running jobs for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from heapq import heappop, heappush

from cortex.scheduler.queues import QueueConfig
from cortex.workload.job import Job
from cortex.workload.states import JobState

#: (protection end, running job), soonest end first: the jobs still protected.
Protected = list[tuple[float, Job]]


def end_s(job: Job, queues: QueueConfig) -> float:
    """When a running job's queue stops shielding it for its minimum runtime."""
    return job.run_start_s + queues.queues[job.queue_idx].min_runtime_s


def protected(running: Iterable[Job], queues: QueueConfig, now: float) -> Protected:
    """The running jobs whose protection ends after `now`, soonest first (a scan)."""
    ends = ((end_s(job, queues), job.id, job) for job in running)
    return [(t, job) for t, _, job in sorted(e for e in ends if e[0] > now)]


def retry_by_s(
    gang: Job,
    protected: Protected,
    queues: QueueConfig,
    may_evict: Callable[[Job, Job], bool],
) -> float | None:
    """The moment by which the protected jobs that could be victims of `gang` (the policy's
    `may_evict`, on a flavor the gang may use, in a queue whose preemption budget leaves them
    evictable) have freed the gang's GPUs, or all of them have if they hold fewer; None when
    none could be a victim. Any one protection end would come sooner, but at 100k GPUs some job
    leaves its protection every minute, and each search scans every running job: a search that
    failed is tried again when the protected victims alone could hold the gang, at the latest
    (the driver's doubling backoff may come sooner)."""
    flavors = gang.flavor_ids
    got = 0
    last = None
    for t, victim in protected:
        if flavors and victim.run_flavor not in flavors:
            continue
        budget = queues.queues[victim.queue_idx].preemption_budget
        if budget is not None and victim.evictions >= budget:
            continue  # shielded for good: its protection's end frees nothing
        if not may_evict(gang, victim):
            continue
        got += victim.alloc_gpus
        last = t
        if got >= gang.gpus:
            break
    return last


class ProtectionEnds:
    """The protected running jobs, kept as runs start: a heap of (end, order, job, run start),
    pruned of ended protections at each start and read (`protected`) only after a failed
    search. An entry of a run that stopped early is skipped when read (the job no longer runs
    with that start) and dropped once its end has passed."""

    def __init__(self, queues: QueueConfig) -> None:
        self._min_runtime_s = [q.min_runtime_s for q in queues.queues]
        self._heap: list[tuple[float, int, Job, float]] = []
        self._seq = 0

    def _prune(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            heappop(heap)

    def started(self, job: Job, now: float) -> None:
        """A run of `job` began at `now` (its `run_start_s`). Once per start in the twin: the
        pruning is written out here rather than called."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            heappop(heap)
        end = job.run_start_s + self._min_runtime_s[job.queue_idx]
        if end > now:
            self._seq += 1
            heappush(heap, (end, self._seq, job, job.run_start_s))

    def protected(self, now: float) -> Protected:
        """As `protected(running, queues, now)` would list them."""
        self._prune(now)
        # By job: a run restarted at the instant it began (a hot-spare swap) has two entries.
        live = {
            job.id: (t, job.id, job)
            for t, _, job, start in self._heap
            if job.state is JobState.RUNNING and job.run_start_s == start
        }
        return [(t, job) for t, _, job in sorted(live.values())]
