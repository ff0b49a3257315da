"""Pending jobs, one ordered list per cluster queue. Keys are static while a job waits (set by the
ordering policy when the job is queued), so the lists never need re-sorting."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sortedcontainers import SortedList

from cortex.workload.job import Job

KeyFn = Callable[[Job], tuple]


class PendingQueues:
    """Per-queue sorted lists of (key, job); keys end with the job id, so they are unique."""

    def __init__(self, n_queues: int, key: KeyFn) -> None:
        self.key = key
        self.lists: list[SortedList] = [SortedList() for _ in range(n_queues)]
        self._n = 0

    def add(self, job: Job) -> None:
        job.key = self.key(job)
        self.lists[job.queue_idx].add((job.key, job))
        self._n += 1

    def remove(self, job: Job) -> None:
        self.lists[job.queue_idx].remove((job.key, job))
        self._n -= 1

    def __len__(self) -> int:
        return self._n

    def lone(self) -> Job | None:
        """The one pending job when exactly one waits (most passes: an arrival), else None."""
        if self._n != 1:
            return None
        for lst in self.lists:
            if lst:
                job: Job = lst[0][1]
                return job
        return None

    def __iter__(self) -> Iterator[Job]:
        for lst in self.lists:
            for _, job in lst:
                yield job
