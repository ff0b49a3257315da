"""The scheduler loop's in-memory mirror of the store: the cluster state the scheduler reads, the
pending queues, and which job holds which devices, behind one object.

Only the scheduler thread (a tick, or recovery under the tick lock) changes it; the store stays
the source of truth and `recover` rebuilds the mirror from it. Every change goes through a
method here, so the invariants hold in one place:
- a job in `placement` holds capacity in `state`; one in `admitted` also has a placement;
- a job in `stopping` was preempted: it holds no capacity but its devices until it exits;
- `owner` maps each device to the running (or still exiting) job on it;
- a waiting job is in exactly one of `pending` and `backoff`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cortex.fleet.topology import Topology
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.state import ClusterState, Placement
from cortex.workload.job import Job
from cortex.workload.states import PENDING, JobState


class Mirror:
    def __init__(
        self,
        topo: Topology,
        node_devices: list[list[int]],
        queues: QueueConfig,
        ordering_key: Callable[[Job], Any],
    ) -> None:
        self.topo = topo
        self.node_devices = node_devices
        self._key = ordering_key
        self.queues = queues
        self.state = ClusterState(topo, queues)
        self.pending = PendingQueues(len(queues.queues), ordering_key)
        self.jobs: dict[int, Job] = {}  # every job not yet final
        self.placement: dict[int, Placement] = {}  # jobs holding capacity in self.state
        self.admitted: dict[int, Job] = {}  # placed, waiting for their devices to free up
        self.stopping: set[int] = set()  # preempted, process still exiting; not in self.state
        self.attempt: dict[int, int] = {}  # running jobs: current attempt
        self.owner: dict[int, int] = {}  # device -> job id holding it now
        # The same, by job (sorted devices): kept beside `owner` because the loop publishes it
        # twice a tick and a release would otherwise scan every device.
        self.held: dict[int, tuple[int, ...]] = {}
        self.backoff: dict[int, float] = {}  # requeued, waiting out a retry delay until then

    # ---- whole-mirror changes -------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything (recovery rebuilds it from the store)."""
        self.jobs.clear()
        self.placement.clear()
        self.admitted.clear()
        self.stopping.clear()
        self.attempt.clear()
        self.owner.clear()
        self.held.clear()
        self.backoff.clear()

    def rebuild(self, queues: QueueConfig, resolve: Callable[[Job], object]) -> None:
        """New queues (their count sizes the state): a fresh state and pending queues, with
        every placed job started again and every waiting job queued again."""
        self.queues = queues
        self.state = ClusterState(self.topo, queues)
        self.pending = PendingQueues(len(queues.queues), self._key)
        for job in self.jobs.values():
            resolve(job)
        for jid, pl in self.placement.items():
            job = self.jobs[jid]
            self.state.start(job, job.queue_idx, 0, pl)
        for job in self.jobs.values():
            if job.state in PENDING and job.queue_idx >= 0 and job.id not in self.backoff:
                self.pending.add(job)

    # ---- one job --------------------------------------------------------------------------
    def enqueue(self, job: Job, until: float | None = None) -> None:
        """A job new to the mirror (submitted, or recovered waiting) joins its queue, or with
        `until`, waits out a retry delay first."""
        self.jobs[job.id] = job
        self.requeue(job, until)

    def dequeue(self, job: Job) -> None:
        """A plan starts the job: out of its queue (before its run begins: the queue's order
        may read what beginning a run changes)."""
        self.pending.remove(job)

    def admit(self, job: Job, flavor: int, placement: Placement) -> None:
        """Capacity reserved for a dequeued job; devices are claimed when they are free."""
        self.state.start(job, job.queue_idx, flavor, placement)
        self.placement[job.id] = placement
        self.admitted[job.id] = job

    def free_devices(self, job_id: int) -> list[int] | None:
        """The devices an admitted job would get now, or None while a preempted job still
        holds some of them."""
        devices: list[int] = []
        for node, k in self.placement[job_id]:
            free = [d for d in self.node_devices[node] if d not in self.owner]
            if len(free) < k:
                return None
            devices += free[:k]
        return devices

    def claim(self, job: Job, attempt: int, devices: list[int]) -> None:
        """An admitted job launches on these devices."""
        job.state = JobState.RUNNING
        del self.admitted[job.id]
        self.attempt[job.id] = attempt
        self._hold(job.id, devices)

    def was_admitted(self, job_id: int) -> bool:
        """Take an admitted (never launched) job out of `admitted`; whether it was there."""
        return self.admitted.pop(job_id, None) is not None

    def stop(self, job: Job) -> None:
        """A preemption victim gives its capacity back now and its devices when it exits."""
        self.state.stop(job, job.queue_idx)
        del self.placement[job.id]
        self.stopping.add(job.id)

    def release(self, job_id: int) -> None:
        """Capacity and devices back (the run ended, or never started)."""
        job = self.jobs.get(job_id)
        if job_id in self.placement and job is not None:
            self.state.stop(job, job.queue_idx)
            del self.placement[job_id]
        self.stopping.discard(job_id)
        self.attempt.pop(job_id, None)
        for d in self.held.pop(job_id, ()):
            del self.owner[d]

    def _hold(self, job_id: int, devices: list[int]) -> None:
        for d in devices:
            prev = self.owner.get(d)
            if prev is not None and prev != job_id:  # recovery: two runs named one device
                rest = tuple(x for x in self.held[prev] if x != d)
                if rest:
                    self.held[prev] = rest
                else:
                    del self.held[prev]
            self.owner[d] = job_id
        if devices:
            self.held[job_id] = tuple(sorted({*self.held.get(job_id, ()), *devices}))

    def requeue(self, job: Job, until: float | None) -> None:
        """Back to the queue, or, with `until`, waiting out a retry delay first."""
        if until is not None:
            self.backoff[job.id] = until
        else:
            self.pending.add(job)

    def withdraw(self, job_id: int) -> bool:
        """A waiting job leaves its queue (cancelled); True if it held capacity (admitted)."""
        job = self.jobs.get(job_id)
        held = False
        if job_id in self.backoff:
            del self.backoff[job_id]
        elif job is not None and job.state in PENDING:
            self.pending.remove(job)
        elif job is not None and job_id in self.admitted:
            self.release(job_id)
            del self.admitted[job_id]
            held = True
        self.jobs.pop(job_id, None)
        return held

    def forget(self, job_id: int) -> None:
        """A final job leaves the mirror."""
        self.jobs.pop(job_id, None)

    def due(self, now: float) -> bool:
        """Jobs whose retry delay is over join the pending queues; whether any did."""
        moved = False
        for jid in [j for j, at in self.backoff.items() if at <= now]:
            del self.backoff[jid]
            job = self.jobs.get(jid)
            if job is not None and job.state in PENDING and job.queue_idx >= 0:
                self.pending.add(job)
                moved = True
        return moved

    def take_back(
        self, job: Job, attempt: int, gpus: int, devices: list[int], exiting: bool
    ) -> None:
        """Recovery: an adopted run holds its devices, and its capacity unless it is a
        preemption victim still exiting."""
        self.jobs[job.id] = job
        self.attempt[job.id] = attempt
        self._hold(job.id, devices)
        if exiting:
            self.stopping.add(job.id)
        else:
            placement = self._placement_of(devices) or ((0, gpus),)
            self.state.start(job, job.queue_idx, 0, placement)
            self.placement[job.id] = placement

    def _placement_of(self, devices: list[int]) -> tuple[tuple[int, int], ...]:
        """(node, GPUs) of the nodes holding these devices: a multi-node run adopted after a
        restart holds capacity on the nodes it really runs on."""
        if len(self.node_devices) == 1:
            return ()
        held = set(devices)
        return tuple(
            (n, k)
            for n, ds in enumerate(self.node_devices)
            if (k := sum(1 for d in ds if d in held))
        )

    # ---- reads ----------------------------------------------------------------------------
    def devices_by_job(self) -> Mapping[int, tuple[int, ...]]:
        return dict(self.held)

    def usage(self) -> dict[str, tuple[int, int]]:
        """Per queue name: (GPUs held, jobs pending)."""
        return {
            q.name: (sum(self.state.usage[q.index]), len(self.pending.lists[q.index]))
            for q in self.queues.queues
        }
