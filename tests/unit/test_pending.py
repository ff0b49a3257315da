"""PendingQueues: a job added to an empty queue is held aside until a second one comes or the
lists are read; every way of reading them sees the same waiting jobs as plain sorted lists."""

from __future__ import annotations

import random

import pytest

from cortex.scheduler.pending import PendingQueues
from cortex.workload.job import Job


def _key(job: Job) -> tuple:
    return (-job.priority, job.submit_s, job.id)


def _job(i: int, queue: int, prio: int = 0) -> Job:
    job = Job(i, f"j{i}", "t", 8, 100.0, priority=prio, submit_s=float(i % 7))
    job.queue_idx = queue
    return job


def _model_lists(waiting: dict[int, Job], n: int) -> list[list[tuple]]:
    out: list[list[tuple]] = [[] for _ in range(n)]
    for job in waiting.values():
        out[job.queue_idx].append((_key(job), job))
    return [sorted(lst, key=lambda kj: kj[0]) for lst in out]


def test_a_lone_job_is_read_back_in_its_list() -> None:
    pq = PendingQueues(3, _key)
    a = _job(1, 2)
    pq.add(a)
    assert pq.lone() is a and len(pq) == 1
    assert [list(lst) for lst in pq.lists] == [[], [], [(_key(a), a)]]
    pq.remove(a)  # held in its list now, not aside
    assert len(pq) == 0 and pq.lone() is None and not any(pq.lists)


def test_a_second_job_puts_the_lone_one_in_its_list() -> None:
    pq = PendingQueues(2, _key)
    a, b = _job(1, 0), _job(2, 1)
    pq.add(a)
    pq.add(b)
    assert pq.lone() is None
    assert [list(lst) for lst in pq.lists] == [[(_key(a), a)], [(_key(b), b)]]
    pq.remove(a)
    assert pq.lone() is b
    assert list(pq) == [b]


def test_removing_a_job_that_does_not_wait_fails() -> None:
    pq = PendingQueues(1, _key)
    a, b = _job(1, 0), _job(2, 0)
    pq.add(a)
    b.key = _key(b)
    with pytest.raises(ValueError):
        pq.remove(b)


@pytest.mark.parametrize("seed", range(30))
def test_random_use_matches_sorted_lists(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 4)
    pq = PendingQueues(n, _key)
    waiting: dict[int, Job] = {}
    next_id = 0
    for _ in range(200):
        op = rng.random()
        if op < 0.45 or not waiting:
            next_id += 1
            job = _job(next_id, rng.randrange(n), rng.randint(0, 2))
            pq.add(job)
            waiting[job.id] = job
        elif op < 0.85:
            job = waiting.pop(rng.choice(sorted(waiting)))
            pq.remove(job)
        elif op < 0.93:
            assert [list(lst) for lst in pq.lists] == _model_lists(waiting, n)
        else:
            assert sorted(j.id for j in pq) == sorted(waiting)
        assert len(pq) == len(waiting)
        assert pq.lone() is (next(iter(waiting.values())) if len(waiting) == 1 else None)
    assert [list(lst) for lst in pq.lists] == _model_lists(waiting, n)
