"""Statement: tentative allocations and evictions within one cycle, rolled back at its end
(KAI-Scheduler's Statement). Policies try placements on the live indices without copying the
fleet, and the state is exactly as before once the cycle returns."""

from __future__ import annotations

from cortex.scheduler.state import Allocation, ClusterState, Placement
from cortex.workload.job import Job


class Statement:
    """An undo log over a ClusterState."""

    __slots__ = ("_log", "evicted", "state")

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._log: list[tuple[int, int, int, Allocation]] = []
        self.evicted: set[int] = set()

    def allocate(self, job: Job, flavor: int, placement: Placement) -> int:
        """Tentatively start job on placement; returns GPUs held."""
        st = self.state
        gpus = st.take(job.id, flavor, placement)
        st.add_usage(job.queue_idx, flavor, gpus)
        self._log.append((0, job.id, job.queue_idx, st.allocations[job.id]))
        return gpus

    def evict(self, job: Job) -> Allocation:
        """Tentatively free a running job's GPUs."""
        st = self.state
        st.flush_summaries()  # summaries describe the fleet before the cycle, not its evictions
        alloc = st.give(job.id)
        st.add_usage(job.queue_idx, alloc.flavor, -alloc.gpus)
        self.evicted.add(job.id)
        self._log.append((1, job.id, job.queue_idx, alloc))
        return alloc

    def mark(self) -> int:
        return len(self._log)

    def rollback(self, mark: int = 0) -> None:
        """Undo everything after `mark`, newest first."""
        st = self.state
        log = self._log
        while len(log) > mark:
            kind, job_id, team, alloc = log.pop()
            if kind == 0:
                st.give(job_id)
                st.add_usage(team, alloc.flavor, -alloc.gpus)
            else:
                st.take(job_id, alloc.flavor, alloc.placement)
                st.add_usage(team, alloc.flavor, alloc.gpus)
                self.evicted.discard(job_id)
