"""PriorityFairShare's order over long queues, with usage changing between picks as tentative
starts change it in a pass, against a brute-force oracle: at every pick, recompute each queue's
weighted dominant share and take the smallest (priority, share, key) over all waiting jobs."""

from __future__ import annotations

import random
from collections.abc import Callable
from operator import truediv

import pytest

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.ordering import MERGE_FIRST, PriorityFairShare
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

THREE = build(
    parse_fleet(
        {
            "name": "three",
            "halls": [
                {
                    "name": "h",
                    "groups": [
                        {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4},
                        {"flavor": "H200-SXM", "nodes": 4, "nodes_per_pod": 4},
                    ],
                }
            ],
            "queues": {
                "cluster_queues": [
                    {"name": "a", "nominal_share": 0.5, "weight": 2.0},
                    {"name": "b", "nominal_share": 0.3},
                    {"name": "c", "nominal_share": 0.2, "weight": 0.5},
                ]
            },
        },
        "test",
    )
)


def _oracle_pick(st: ClusterState, waiting: list[Job]) -> Job:
    totals = [max(t, 1) for t in st.total_gpus]
    weights = [q.weight for q in st.queues.queues]

    def share(i: int) -> float:
        return max(map(truediv, st.usage[i], totals)) / weights[i]

    return min(waiting, key=lambda j: (j.key[0], share(j.queue_idx), j.key))


@pytest.mark.parametrize("seed", range(8))
def test_long_queue_order_matches_the_oracle_while_usage_moves(seed: int) -> None:
    rng = random.Random(seed)
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(THREE, None, ("a", "b", "c"))
    pend = PendingQueues(3, pol.key)
    n_jobs = MERGE_FIRST + rng.randint(5, 120)  # past the head merge, into the sorted rest
    for i in range(n_jobs):
        job = Job(i, f"p{i}", "abc"[i % 3], 8, 100.0, submit_s=rng.uniform(0, 50))
        job.queue_idx = rng.randrange(3)
        job.priority = rng.choice([10, 100, 100, 1000])
        pend.add(job)
    waiting = [job for lst in pend.lists for _, job in lst]
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: job.work_s)
    got = []
    for job in pol.order(snap):
        assert job is _oracle_pick(st, waiting), len(got)
        got.append(job.id)
        waiting.remove(job)
        if rng.random() < 0.2:
            # A tentative start (or a rolled-back one) moves one queue's usage.
            st.add_usage(rng.randrange(3), rng.randrange(2), rng.choice([8, 16, -8]))
    assert sorted(got) == list(range(n_jobs))


@pytest.mark.parametrize("seed", range(6))
def test_order_with_one_or_two_live_queues_matches_the_oracle(seed: int) -> None:
    """A queue left alone (from the start, or once the others run dry, in the head merge or
    in the rest) is walked in its own order: the shortcut must not skip or repeat a job."""
    rng = random.Random(100 + seed)
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(THREE, None, ("a", "b", "c"))
    pend = PendingQueues(3, pol.key)
    used = rng.sample(range(3), 1 + seed % 2)
    n_jobs = rng.choice([1, 3, MERGE_FIRST - 1, MERGE_FIRST, MERGE_FIRST + 1, 60])
    for i in range(n_jobs):
        job = Job(i, f"p{i}", "abc"[i % 3], 8, 100.0, submit_s=rng.uniform(0, 50))
        # The second queue gets few jobs, so it runs dry early and one queue is left.
        job.queue_idx = used[-1] if len(used) == 2 and rng.random() < 0.1 else used[0]
        job.priority = rng.choice([10, 100, 1000])
        pend.add(job)
    waiting = [job for lst in pend.lists for _, job in lst]
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: job.work_s)
    got = []
    for job in pol.order(snap):
        assert job is _oracle_pick(st, waiting), len(got)
        got.append(job.id)
        waiting.remove(job)
        if rng.random() < 0.3:
            st.add_usage(rng.randrange(3), rng.randrange(2), rng.choice([8, 16, -8]))
    assert sorted(got) == list(range(n_jobs))


def _oracle_skip(
    st: ClusterState,
    waiting: list[Job],
    req: list,
    asked: list[int],
    stops: Callable[[int], bool] | None,
) -> Job | None:
    """What a skip request [top, limit, 0, judge?] answers, on the oracle's picks: pass over
    (and count in req[2]) up to `limit` jobs whose smallest gang is wider than `top` or that
    the judge stops (`stops`, asked once of each job that fits, in `asked`), and answer the
    first other one (None: the order ended)."""
    top, left = req[0], req[1]
    while waiting:
        pick = _oracle_pick(st, waiting)
        if left:
            stopped = (pick.elastic_min or pick.gpus) > top
            if not stopped and stops is not None:
                asked.append(pick.id)
                stopped = stops(pick.id)
            if stopped:
                waiting.remove(pick)
                left -= 1
                req[2] += 1
                continue
        return pick
    return None


class _Judge:
    """A skip request's judge that stops the jobs in `stopped` and records whom it was asked."""

    def __init__(self, stopped: set[int]) -> None:
        self.stopped = stopped
        self.asked: list[int] = []

    def __call__(self, job: Job) -> bool:
        self.asked.append(job.id)
        return job.id in self.stopped


@pytest.mark.parametrize("seed", range(40))
def test_skip_requests_anywhere_in_the_order_pass_over_what_the_oracle_does(seed: int) -> None:
    """Skip requests sent at random picks (the first one, within the first MERGE_FIRST picks,
    past them, while one queue is left), with random tops, limits and judges, usage moving
    between requests: each answer, count and judge question is the oracle's (the order's
    picks with the request's passing-over rule), and every job comes once."""
    rng = random.Random(500 + seed)
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(THREE, None, ("a", "b", "c"))
    pend = PendingQueues(3, pol.key)
    n_queues = rng.choice([1, 2, 3, 3])
    n_jobs = rng.choice([2, MERGE_FIRST - 1, MERGE_FIRST + 3, 40, 120])
    for i in range(n_jobs):
        gpus = rng.choice([1, 2, 4, 8, 16, 32])
        emin = rng.choice([None, None, None, 1, gpus // 2 or 1])
        job = Job(i, f"p{i}", "abc"[i % 3], gpus, 100.0, submit_s=rng.uniform(0, 50),
                  elastic_min=emin)  # fmt: skip
        job.queue_idx = rng.randrange(n_queues)
        job.priority = rng.choice([10, 100, 100, 1000])
        pend.add(job)
    waiting = [j for lst in pend.lists for _, j in lst]
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: job.work_s)
    gen = pol.order(snap)
    p_req = rng.choice([0.1, 0.5, 0.9])
    stopped = {j.id for j in waiting if rng.random() < 0.6}
    got: list[int] = []
    passed = 0
    cur: Job | None = next(gen, None)
    while cur is not None:
        assert cur is _oracle_pick(st, waiting), len(got)
        got.append(cur.id)
        waiting.remove(cur)
        if rng.random() < p_req and hasattr(gen, "send"):
            req: list = [rng.choice([0, 2, 4, 8, 16]), rng.choice([0, 1, 3, 50]), 0]
            judge = _Judge(stopped) if rng.random() < 0.7 else None
            want_req = list(req)
            want_asked: list[int] = []
            want = _oracle_skip(
                st, waiting, want_req, want_asked, None if judge is None else stopped.__contains__
            )
            if judge is not None:
                req.append(judge)
            try:
                cur = gen.send(req)
            except StopIteration:
                cur = None
            assert req[2] == want_req[2], len(got)
            assert (judge.asked if judge is not None else []) == want_asked, len(got)
            assert cur is want, len(got)
            passed += req[2]
            continue
        if rng.random() < 0.2:
            # A start of the walked job moves one queue's usage (never during a skip).
            st.add_usage(rng.randrange(3), rng.randrange(2), rng.choice([8, 16, -8]))
        cur = next(gen, None)
    assert not waiting and len(got) + passed == n_jobs
