"""Pending jobs, one ordered list per cluster queue. Keys are static while a job waits (set by the
ordering policy when the job is queued), so the lists never need re-sorting."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sortedcontainers import SortedList

from cortex.workload.job import Job

KeyFn = Callable[[Job], tuple]


class PendingQueues:
    """Per-queue sorted lists of (key, job); keys end with the job id, so they are unique.

    A job added while nothing waits is held aside (`_lone`) until a second one comes or the
    lists are read: most jobs of a month arrive to an empty queue and start in the pass that
    follows, and a sorted list's add and remove cost several microseconds each (bench/RESULTS.md
    section 103). Whoever reads `lists` sees every waiting job in them."""

    def __init__(self, n_queues: int, key: KeyFn) -> None:
        self.key = key
        self._lists: list[SortedList] = [SortedList() for _ in range(n_queues)]
        self._n = 0
        self._lone: Job | None = None  # the only waiting job, not yet in its list

    @property
    def lists(self) -> list[SortedList]:
        if self._lone is not None:
            self._settle()
        return self._lists

    def _settle(self) -> None:
        job = self._lone
        assert job is not None
        self._lone = None
        self._lists[job.queue_idx].add((job.key, job))

    def add(self, job: Job) -> None:
        job.key = self.key(job)
        if self._n == 0 and self._lone is None:
            self._lone = job
        else:
            if self._lone is not None:
                self._settle()
            self._lists[job.queue_idx].add((job.key, job))
        self._n += 1

    def remove(self, job: Job) -> None:
        if self._lone is job:
            self._lone = None
        else:
            self._lists[job.queue_idx].remove((job.key, job))
        self._n -= 1

    def __len__(self) -> int:
        return self._n

    def lone(self) -> Job | None:
        """The one pending job when exactly one waits (most passes: an arrival), else None."""
        if self._n != 1:
            return None
        if self._lone is not None:
            return self._lone
        for lst in self._lists:
            if lst:
                job: Job = lst[0][1]
                return job
        return None

    def __iter__(self) -> Iterator[Job]:
        for lst in self.lists:
            for _, job in lst:
                yield job
