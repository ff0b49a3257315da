"""`ClusterState.prio_nodes` (nodes of running jobs per priority, kept at every start, adopt and
stop) bounds `nodes_by_top_prio` from above, and so do the counts as last flushed plus the
nodes noted since, so `_enough_nodes` may say no from either without flushing the lazy
summaries and still answer as the exact count does."""

from __future__ import annotations

import random

import testkit
from cortex.scheduler.preemption import _enough, _enough_nodes
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job


def _below(hist: dict[int, int], p: int, or_equal: bool) -> int:
    return sum(c for q, c in hist.items() if q < p or (or_equal and q == p))


def _recount(st: ClusterState) -> list[dict[int, int]]:
    out: list[dict[int, int]] = [{} for _ in st.gpn]
    for jid, job in st.running.items():
        alloc = st.allocations[jid]
        hist = out[alloc.flavor]
        hist[job.priority] = hist.get(job.priority, 0) + len(alloc.placement)
    return out


def test_the_bound_follows_starts_and_stops_and_never_undercounts() -> None:
    rng = random.Random(5)
    st, pend, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, one flavor
    running: list[Job] = []
    jid = 0
    tried = 0
    for step in range(400):
        free = [n for n in range(8) if st.node_free[n]]
        if free and (not running or rng.random() < 0.55):
            n = rng.choice(free)
            k = rng.randint(1, st.node_free[n])
            whole = [m for m in free if st.node_free[m] == 8 and m != n]
            placement = ((n, k),) if k < 8 or not whole else ((n, 8), (whole[0], 8))
            jid += 1
            prio = rng.choice([10, 100, 1000])
            running.append(testkit.running_job(st, jid, placement, prio=prio))
        elif running:
            job = running.pop(rng.randrange(len(running)))
            st.stop(job, job.queue_idx)
        assert st.prio_nodes == [{q: c for q, c in h.items() if c} for h in _recount(st)]
        exact = st.nodes_by_top_prio[0]
        snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
        for p in (10, 100, 1000, 5000):
            for or_equal in (False, True):
                assert _below(st.prio_nodes[0], p, or_equal) >= _below(exact, p, or_equal)
                for alloc in (4, 8, 16, 24, 40):
                    head = Job(-1, "h", "a", alloc, 1.0)
                    head.priority = p
                    # The two-step answer equals the exact count's alone.
                    want = _enough(st, st.nodes_by_top_prio[0], 0, head, 0, alloc, or_equal)
                    assert _enough_nodes(snap, head, 0, alloc, or_equal) == want, step
                    tried += not _enough(st, st.prio_nodes[0], 0, head, 0, alloc, or_equal)
    assert tried > 0  # the bound alone said no at least once


def test_the_counts_as_flushed_plus_the_nodes_noted_since_answer_no_as_the_exact_count() -> None:
    """Starts and stops pile up between reads (no flush): a start on a free node moves it from
    free to a busy class, a stop back, a higher class's stop can leave a lower one on top.
    `_enough_nodes` answers as the exact count, and says no unflushed at least once."""
    rng = random.Random(11)
    st, pend, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, one flavor
    running: list[Job] = []
    jid = 0
    unflushed_no = 0
    for step in range(600):
        free = [n for n in range(8) if st.node_free[n]]
        if free and (not running or rng.random() < 0.55):
            n = rng.choice(free)
            k = rng.randint(1, st.node_free[n])
            whole = [m for m in free if st.node_free[m] == 8 and m != n]
            placement = ((n, k),) if k < 8 or not whole else ((n, 8), (whole[0], 8))
            jid += 1
            running.append(testkit.running_job(st, jid, placement, prio=rng.choice([10, 100])))
        elif running:
            job = running.pop(rng.randrange(len(running)))
            st.stop(job, job.queue_idx)
        if rng.random() < 0.7:
            continue  # more starts and stops before the next read
        snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
        p = rng.choice([10, 100, 1000])
        or_equal = rng.random() < 0.5
        alloc = rng.choice([4, 8, 16, 24, 40, 56])
        head = Job(-1, "h", "a", alloc, 1.0)
        head.priority = p
        noted = bool(st._stale)
        got = _enough_nodes(snap, head, 0, alloc, or_equal)
        unflushed_no += noted and bool(st._stale) and not got
        want = _enough(st, st.nodes_by_top_prio[0], 0, head, 0, alloc, or_equal)
        assert got == want, step
    assert unflushed_no > 0
