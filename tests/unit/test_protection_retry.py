"""drive/protection.py: when a failed victim search is worth running again (both drivers), and
the twin's heap of protected runs against the control plane's scan."""

from __future__ import annotations

import dataclasses

import numpy as np

import testkit
from cortex.drive import protection
from cortex.scheduler.preemption import PriorityReclaim
from cortex.scheduler.queues import QueueConfig
from cortex.workload.job import Job
from cortex.workload.states import JobState

MAY = PriorityReclaim().may_evict


def _config(
    min_runtime_s: tuple[float, float] = (600.0, 600.0), budget: int | None = None
) -> QueueConfig:
    st, _, _ = testkit.setup_cycle(teams=("a", "b"))
    qs = tuple(
        dataclasses.replace(q, min_runtime_s=m, preemption_budget=budget)
        for q, m in zip(st.queues.queues, min_runtime_s, strict=True)
    )
    return dataclasses.replace(st.queues, queues=qs)


def _running(jid: int, start: float, gpus: int = 16, prio: int = 10, queue: int = 0) -> Job:
    job = Job(jid, f"r{jid}", "a", gpus, 1e6)
    job.queue_idx, job.priority, job.run_start_s = queue, prio, start
    job.alloc_gpus = job.run_gpus = gpus
    job.run_flavor = 0
    job.state = JobState.RUNNING
    return job


def _gang(gpus: int, prio: int = 100, queue: int = 1) -> Job:
    job = Job(1, "g", "b", gpus, 100.0)
    job.queue_idx, job.priority = queue, prio
    return job


def test_the_retry_comes_when_the_protected_victims_hold_the_gang() -> None:
    qc = _config()
    # Two preemptible jobs of 16 GPUs, protected until 600 and 900; a production job until 700.
    held = protection.protected(
        [_running(2, 0.0), _running(3, 300.0), _running(4, 100.0, prio=1000)], qc, 50.0
    )
    assert [(t, j.id) for t, j in held] == [(600.0, 2), (700.0, 4), (900.0, 3)]
    assert protection.retry_by_s(_gang(16), held, qc, MAY) == 600.0
    # 32 GPUs: the first victim's 16 are not enough; the production job is no victim.
    assert protection.retry_by_s(_gang(32), held, qc, MAY) == 900.0
    # More than they hold: when all of them are free to go.
    assert protection.retry_by_s(_gang(64), held, qc, MAY) == 900.0
    # A preemptible gang of their queue has no victim among them (of another queue it could
    # reclaim its own class).
    assert protection.retry_by_s(_gang(8, prio=10, queue=0), held, qc, MAY) is None
    assert protection.retry_by_s(_gang(8, prio=10), held, qc, MAY) == 600.0


def test_what_never_becomes_a_victim_gives_no_retry_time() -> None:
    qc = _config(budget=1)
    spent = _running(2, 0.0)
    spent.evictions = 1  # its queue's preemption budget shields it for good
    other = _running(3, 0.0)
    other.run_flavor = 1  # a flavor the gang may not use
    gang = _gang(8)
    gang.flavor_ids = (0,)
    held = protection.protected([spent, other], qc, 0.0)
    assert len(held) == 2 and protection.retry_by_s(gang, held, qc, MAY) is None
    # Its own queue's minimum runtime: queue 1 protects for 100 s only.
    qc2 = _config((600.0, 100.0))
    mine = _running(4, 0.0, queue=1, prio=100)
    held = protection.protected([mine, _running(5, 0.0)], qc2, 50.0)
    assert [t for t, _ in held] == [100.0, 600.0]
    assert protection.retry_by_s(gang, held, qc2, MAY) == 600.0  # 4: its own class and queue
    assert protection.protected([mine], qc2, 100.0) == []  # ended at 100


def test_the_twins_heap_lists_what_the_scan_lists() -> None:
    # Runs start, stop and restart at random (a restart at the instant it began included);
    # after each step the heap and the control plane's scan agree.
    qc = _config((600.0, 300.0))
    heap = protection.ProtectionEnds(qc)
    rng = np.random.default_rng(5)
    jobs = [_running(i, 0.0, queue=i % 2) for i in range(12)]
    for j in jobs:
        j.state = JobState.QUEUED
    now = 0.0
    for _ in range(400):
        now += float(rng.choice([0.0, 7.0, 60.0, 250.0]))
        job = jobs[int(rng.integers(len(jobs)))]
        if job.state is JobState.RUNNING and rng.random() < 0.5:
            job.state = JobState.QUEUED  # stopped (preempted, failed, completed)
        else:
            job.state = JobState.RUNNING
            job.run_start_s = now
            heap.started(job, now)
        running = [j for j in jobs if j.state is JobState.RUNNING]
        assert heap.protected(now) == protection.protected(running, qc, now)
    assert len(heap._heap) <= len(jobs) * 4  # ended protections are dropped
