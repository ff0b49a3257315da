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


def test_the_counts_as_flushed_less_the_nodes_noted_since_answer_yes_as_the_exact_count() -> None:
    """The same counts bound the exact one from below (each noted node can have left a class
    the job may take, by one node): `_enough_nodes` says yes from them without flushing when
    even that is enough (a head the ramp window refuses asks only this; RESULTS.md, section
    102), and answers as the exact count, over runs that pile up stops of lower classes (the
    nodes that leave a counted class) as well as starts."""
    rng = random.Random(23)
    st, pend, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, one flavor
    running: list[Job] = []
    jid = 0
    unflushed_yes = 0
    flushed_yes = 0
    for step in range(2000):
        free = [n for n in range(8) if st.node_free[n]]
        if free and (not running or rng.random() < 0.5):
            n = rng.choice(free)
            k = rng.randint(1, st.node_free[n])
            whole = [m for m in free if st.node_free[m] == 8 and m != n]
            placement = ((n, k),) if k < 8 or not whole else ((n, 8), (whole[0], 8))
            jid += 1
            running.append(testkit.running_job(st, jid, placement, prio=rng.choice([10, 100])))
        elif running:
            job = running.pop(rng.randrange(len(running)))
            st.stop(job, job.queue_idx)
        if rng.random() < 0.8:
            continue  # several starts and stops between reads
        snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
        p = rng.choice([100, 1000])
        or_equal = rng.random() < 0.5
        alloc = rng.choice([4, 8, 16, 24, 32, 40])
        head = Job(-1, "h", "a", alloc, 1.0)
        head.priority = p
        noted = bool(st._stale)
        got = _enough_nodes(snap, head, 0, alloc, or_equal)
        kept = noted and bool(st._stale)
        unflushed_yes += kept and got
        flushed_yes += noted and not kept and got
        want = _enough(st, st.nodes_by_top_prio[0], 0, head, 0, alloc, or_equal)
        assert got == want, step
    assert unflushed_yes > 0
    assert flushed_yes > 0  # and the bound alone was not always enough


def test_the_lower_bound_takes_off_every_noted_node() -> None:
    """Four whole nodes of a low class, two shared by a low and a high job, two of the high
    class, flushed; two whole low jobs stop. The counts as flushed still hold four low nodes,
    and the two freed nodes are counted as free too: the exact count is 2 free + 2 low = 4
    nodes. Four are enough without a flush; five are not, which neither upper bound says
    (`prio_nodes` counts the shared nodes as low) and only the exact count (a flush) can."""
    st, pend, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, one flavor
    low = [testkit.running_job(st, n + 1, ((n, 8),), prio=10) for n in range(4)]
    for n in (4, 5):
        testkit.running_job(st, 10 + n, ((n, 4),), prio=10)
        testkit.running_job(st, 20 + n, ((n, 4),), prio=1000)
    for n in (6, 7):
        testkit.running_job(st, 20 + n, ((n, 8),), prio=1000)
    assert st.nodes_by_top_prio[0] == {10: 4, 1000: 4}  # read: flushed
    for job in low[:2]:
        st.stop(job, job.queue_idx)
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
    head = Job(-1, "h", "a", 32, 1.0)
    head.priority = 100
    assert _enough_nodes(snap, head, 0, 32, False)
    assert st._stale  # answered from the bound: nothing flushed
    head = Job(-2, "h", "a", 40, 1.0)
    head.priority = 100
    assert not _enough_nodes(snap, head, 0, 40, False)
    assert not st._stale
    assert st.nodes_by_top_prio[0] == {10: 2, 1000: 4}


def test_what_each_note_is_bounds_the_count_tighter() -> None:
    """Starts of a class above the job's add nothing it may take; starts of a lower class on
    free nodes take nothing from it: `top_prio_moved` says so, and `_enough_nodes` answers
    both unflushed where `moved` alone could not (section 102), as the exact count does."""
    st, pend, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, one flavor
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
    # Nodes 0 and 1 hold two low jobs each (prio_nodes counts them twice), 2-5 one each.
    jid = 0
    for n in range(6):
        for k in (4, 4) if n < 2 else (8,):
            jid += 1
            testkit.running_job(st, jid, ((n, k),), prio=10)
    assert st.nodes_by_top_prio[0] == {10: 6}  # read: flushed
    for n in (6, 7):
        jid += 1
        testkit.running_job(st, jid, ((n, 8),), prio=1000)
    assert st.top_prio_moved(0, 100, False) == (0, 2)
    head = Job(-1, "h", "a", 56, 1.0)
    head.priority = 100
    # Free 0, low 6 as flushed, 2 nodes noted: only the two high starts, which bring none.
    assert not _enough_nodes(snap, head, 0, 56, False)
    assert st._stale
    assert st.nodes_by_top_prio[0] == {10: 6, 1000: 2}

    st, pend, _ = testkit.setup_cycle()
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
    for n in range(4):
        testkit.running_job(st, n + 1, ((n, 8),), prio=10)
    assert st.nodes_by_top_prio[0] == {10: 4}
    for n in (4, 5):
        testkit.running_job(st, n + 1, ((n, 8),), prio=10)
    assert st.top_prio_moved(0, 100, False) == (2, 0)
    head = Job(-1, "h", "a", 48, 1.0)
    head.priority = 100
    # Free 2, low 4 as flushed, 2 noted: low starts on free nodes, which take none away.
    assert _enough_nodes(snap, head, 0, 48, False)
    assert st._stale
    head = Job(-2, "h", "a", 64, 1.0)
    head.priority = 100
    assert _enough_nodes(snap, head, 0, 64, False)  # 2 free + 6 low: only the flush says so
    assert not st._stale


def test_a_stop_brings_a_node_in_and_a_moved_run_is_a_stop() -> None:
    """A high job's stop on a node it shared with a low one brings that node into the low
    class (the only one a one-node head may take); a low job stopped and started again
    elsewhere leaves its old placement's note a stop (its node is free now, and still low as
    flushed), though the job runs again."""
    st, pend, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, one flavor
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
    high = []
    for n in range(8):
        testkit.running_job(st, 10 + n, ((n, 4),), prio=10 if n < 2 else 1000)
        high.append(testkit.running_job(st, 20 + n, ((n, 4),), prio=1000))
    assert st.nodes_by_top_prio[0] == {1000: 8}
    st.stop(high[0], high[0].queue_idx)
    assert st.top_prio_moved(0, 100, False) == (1, 1)
    head = Job(-1, "h", "a", 8, 1.0)
    head.priority = 100
    assert _enough_nodes(snap, head, 0, 8, False)  # node 0 is low now: the flush says so
    assert st.nodes_by_top_prio[0] == {10: 1, 1000: 7}

    st, pend, _ = testkit.setup_cycle()
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: 1.0)
    low = testkit.running_job(st, 1, ((0, 8),), prio=10)
    testkit.running_job(st, 2, ((2, 4),), prio=10)  # prio_nodes counts node 2 as low too
    for n in (2, 3):
        testkit.running_job(st, 10 + n, ((n, 4),), prio=1000)
    for n in range(4, 8):
        testkit.running_job(st, 10 + n, ((n, 8),), prio=1000)
    assert st.nodes_by_top_prio[0] == {10: 1, 1000: 6}
    st.stop(low, low.queue_idx)
    testkit.running_job(st, 1, ((3, 4),), prio=10)  # the same job again, beside a high one
    assert st.top_prio_moved(0, 100, False) == (2, 1)
    head = Job(-1, "h", "a", 24, 1.0)
    head.priority = 100
    # Free 2 (nodes 0, 1) + low 0: node 0 counted free and low as flushed, taken off once.
    assert not _enough_nodes(snap, head, 0, 24, False)
    assert {q: c for q, c in st.nodes_by_top_prio[0].items() if c} == {1000: 6}
