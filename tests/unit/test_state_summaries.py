"""Per-node summaries are kept lazily (brought up to date when read). Within a cycle they must
still describe the fleet as it was before the cycle: a victim search reads them after the cycle's
tentative starts, and after earlier tentative evictions of the same cycle."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import testkit
from cortex.scheduler.capacity import Placement
from cortex.scheduler.state import ClusterState
from cortex.scheduler.statement import Statement
from cortex.scheduler.summaries import EMPTY_PRIO
from cortex.workload.job import Job


def test_summaries_read_after_a_tentative_eviction_show_the_fleet_before_the_cycle() -> None:
    st, _, _ = testkit.setup_cycle()
    a = testkit.running_job(st, 1, ((0, 8),), prio=10, start=5.0)
    stmt = Statement(st)
    stmt.evict(a)  # the cycle frees node 0 tentatively; nothing has read the summaries yet
    assert int(st.np_used[0]) == 8
    assert int(st.np_max_prio[0]) == 10
    assert float(st.np_last_start[0]) == 5.0
    assert st.nodes_by_top_prio[0] == {10: 1}
    stmt.rollback()


def test_a_tentative_start_is_not_counted_until_the_driver_starts_it() -> None:
    st, _, _ = testkit.setup_cycle()
    testkit.running_job(st, 1, ((0, 4),), prio=10)
    pending = Job(2, "p2", "a", 4, 100.0)
    pending.queue_idx, pending.priority = 0, 1000
    stmt = Statement(st)
    stmt.allocate(pending, 0, ((0, 4),))
    # Node 0 holds 4 + 4 GPUs now, but only the running job's 4 at priority 10 are summarized.
    assert int(st.np_used[0]) == 4
    assert int(st.np_max_prio[0]) == 10
    stmt.rollback()


def test_summaries_follow_many_starts_and_stops_between_reads() -> None:
    st, _, _ = testkit.setup_cycle()
    # Gang of 3 nodes at priority 100, a 2-GPU job at 10 sharing nothing, then the gang stops
    # and a 1-GPU job at 1000 takes node 1: only node 1 (1 GPU, 1000) and node 5 (2, 10) stay.
    gang = testkit.running_job(st, 1, ((0, 8), (1, 8), (2, 8)), prio=100)
    testkit.running_job(st, 2, ((5, 2),), prio=10, start=3.0)
    st.stop(gang, 0)
    testkit.running_job(st, 3, ((1, 1),), prio=1000, start=7.0)
    assert st.np_used.tolist()[:6] == [0, 1, 0, 0, 0, 2]
    assert int(st.np_max_prio[0]) == EMPTY_PRIO
    assert int(st.np_max_prio[1]) == 1000 and float(st.np_last_start[1]) == 7.0
    # The gang never was read: its three nodes were never counted, so the histogram holds only
    # what runs now (node 1 at 1000, node 5 at 10).
    assert {p: c for p, c in st.nodes_by_top_prio[0].items() if c} == {1000: 1, 10: 1}


def test_a_restarted_gang_and_a_shared_multi_node_placement_are_summarized_as_they_end() -> None:
    st, _, _ = testkit.setup_cycle()
    # Gang 1 (priority 100) on nodes 0-2 stops and runs again on nodes 1-3; job 2 (priority 10)
    # holds half of node 5 and half of node 6 next to job 3 (priority 1000, 4 GPUs of node 6).
    gang = testkit.running_job(st, 1, ((0, 8), (1, 8), (2, 8)), prio=100, start=1.0)
    st.stop(gang, 0)
    gang.run_start_s = 9.0
    st.start(gang, 0, 0, ((1, 8), (2, 8), (3, 8)))
    testkit.running_job(st, 3, ((6, 4),), prio=1000, start=4.0)
    testkit.running_job(st, 2, ((5, 4), (6, 4)), prio=10, start=2.0)
    assert st.np_used.tolist()[:7] == [0, 8, 8, 8, 0, 4, 8]
    assert st.np_max_prio.tolist()[:7] == [EMPTY_PRIO, 100, 100, 100, EMPTY_PRIO, 10, 1000]
    assert st.np_last_start.tolist()[1:7] == [9.0, 9.0, 9.0, float("-inf"), 2.0, 4.0]
    # Nodes by top priority: 3 at 100 (1-3), 1 at 10 (5), 1 at 1000 (6).
    assert {p: c for p, c in st.nodes_by_top_prio[0].items() if c} == {100: 3, 10: 1, 1000: 1}


def test_a_gang_read_then_stopped_clears_its_nodes_in_every_summary() -> None:
    """The gang path's clearing branch (issue 16: `_summarize_gang`'s last writes survived
    mutation): nodes a read gang held go back to idle in all three arrays and the histogram,
    exactly as a fresh state's are."""
    st, _, _ = testkit.setup_cycle()
    fresh, _, _ = testkit.setup_cycle()
    gang = testkit.running_job(st, 1, ((0, 8), (1, 8), (2, 8)), prio=100, start=4.0)
    assert st.np_used.tolist()[:3] == [8, 8, 8]  # read: summarized through the gang path
    assert st.np_max_prio.tolist()[:3] == [100, 100, 100]
    assert st.np_last_start.tolist()[:3] == [4.0, 4.0, 4.0]
    st.stop(gang, 0)
    assert st.np_used.tolist() == fresh.np_used.tolist()
    assert st.np_max_prio.tolist() == fresh.np_max_prio.tolist() == [EMPTY_PRIO] * 8
    assert st.np_last_start.tolist() == [float("-inf")] * 8
    assert st.np_used.dtype == fresh.np_used.dtype == "int64"  # counts, compared exactly
    assert {p: c for p, c in st.nodes_by_top_prio[0].items() if c} == {}


def test_a_partial_gang_that_stops_leaves_the_jobs_sharing_its_nodes_summarized() -> None:
    """The gang path's clearing branch declines when its nodes are not free (issue 16:
    `_summarize_gang` 27-29 survived): the jobs left on them are summarized node by node."""
    st, _, _ = testkit.setup_cycle()
    testkit.running_job(st, 2, ((0, 4),), prio=10, start=2.0)
    testkit.running_job(st, 3, ((1, 4),), prio=1000, start=3.0)
    assert st.np_used.tolist()[:2] == [4, 4]  # read: job 2 and job 3 summarized
    gang = testkit.running_job(st, 1, ((0, 4), (1, 4)), prio=100, start=5.0)
    # 4 + 4 GPUs on each node; top priorities max(10, 100) = 100 and max(1000, 100) = 1000.
    assert st.np_used.tolist()[:2] == [8, 8]
    assert st.np_max_prio.tolist()[:2] == [100, 1000]
    st.stop(gang, 0)
    # Back to what jobs 2 and 3 hold: 4 GPUs each, priorities 10 and 1000, started at 2 and 3.
    assert st.np_used.tolist()[:2] == [4, 4]
    assert st.np_max_prio.tolist()[:2] == [10, 1000]
    assert st.np_last_start.tolist()[:2] == [2.0, 3.0]
    assert {p: c for p, c in st.nodes_by_top_prio[0].items() if c} == {10: 1, 1000: 1}


def test_a_gang_taken_again_but_not_yet_adopted_is_not_summarized() -> None:
    """A stopped gang whose nodes a committed cycle took again (the driver has not adopted the
    start yet) is not running: its nodes read idle until `adopt` (issue 16: `_summarize_gang` 7,
    `and` -> `or`, survived)."""
    st, _, _ = testkit.setup_cycle()
    gang = testkit.running_job(st, 1, ((0, 8), (1, 8)), prio=100, start=4.0)
    assert st.np_used.tolist()[:2] == [8, 8]
    st.stop(gang, 0)
    st.take(gang.id, 0, ((0, 8), (1, 8)))  # the committed cycle's start, same nodes
    assert st.np_used.tolist()[:2] == [0, 0]  # running jobs only: none on nodes 0 and 1
    assert st.np_max_prio.tolist()[:2] == [EMPTY_PRIO, EMPTY_PRIO]
    st.adopt(gang)
    assert st.np_used.tolist()[:2] == [8, 8]  # 2 whole nodes of 8 GPUs at priority 100
    assert st.np_max_prio.tolist()[:2] == [100, 100]


@pytest.mark.parametrize("small_nodes", [10**9, -1])
def test_a_stopped_gang_with_one_node_still_shared_is_summarized_node_by_node(
    small_nodes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The array flush tests a group of nodes against its gang on every node (RESULTS.md,
    section 69): a stopped gang whose first node still holds another job clears only the two
    free nodes, in the plain-Python and the array flush alike."""
    import cortex.scheduler.summaries as summaries_mod

    monkeypatch.setattr(summaries_mod, "FLUSH_SMALL_NODES", small_nodes)
    st, _, _ = testkit.setup_cycle()
    testkit.running_job(st, 2, ((0, 4),), prio=10, start=2.0)
    assert st.np_used.tolist()[:1] == [4]  # read: job 2 summarized
    gang = testkit.running_job(st, 1, ((0, 4), (1, 8), (2, 8)), prio=100, start=5.0)
    assert st.np_used.tolist()[:3] == [8, 8, 8]
    st.stop(gang, 0)
    assert st.np_used.tolist()[:3] == [4, 0, 0]
    assert st.np_max_prio.tolist()[:3] == [10, EMPTY_PRIO, EMPTY_PRIO]
    assert st.np_last_start.tolist()[:3] == [2.0, float("-inf"), float("-inf")]
    assert {p: c for p, c in st.nodes_by_top_prio[0].items() if c} == {10: 1}


def test_a_gang_restarted_elsewhere_before_a_read_clears_the_nodes_it_left() -> None:
    """Notes are collapsed per placement (RESULTS.md, section 74), not per job: a gang read on
    nodes 0-2, stopped and started on nodes 2-4 before the next read leaves nodes 0 and 1 idle.
    (A note kept per job, the later placement replacing the earlier, leaves them at 100.)"""
    st, _, _ = testkit.setup_cycle()
    gang = testkit.running_job(st, 1, ((0, 8), (1, 8), (2, 8)), prio=100, start=1.0)
    assert st.np_max_prio.tolist()[:3] == [100, 100, 100]  # read
    st.stop(gang, 0)
    gang.run_start_s = 9.0
    st.start(gang, 0, 0, ((2, 8), (3, 8), (4, 8)))
    assert st.np_used.tolist()[:6] == [0, 0, 8, 8, 8, 0]
    assert st.np_max_prio.tolist()[:2] == [EMPTY_PRIO, EMPTY_PRIO]
    assert st.np_last_start.tolist()[:5] == [-math.inf, -math.inf, 9.0, 9.0, 9.0]
    assert {p: c for p, c in st.nodes_by_top_prio[0].items() if c} == {100: 3}


def test_a_job_started_and_stopped_between_reads_leaves_no_note() -> None:
    """A start and its stop between two reads cancel (RESULTS.md, section 74): nothing is left
    to flush, and the nodes read what they held before, a partly shared node included."""
    st, _, _ = testkit.setup_cycle()
    testkit.running_job(st, 2, ((0, 4),), prio=10, start=2.0)
    assert st.np_used.tolist()[:3] == [4, 0, 0]  # read
    gang = testkit.running_job(st, 1, ((0, 4), (1, 8), (2, 8)), prio=100, start=5.0)
    st.stop(gang, 0)
    assert not st._stale
    assert st.np_used.tolist()[:3] == [4, 0, 0]
    assert st.np_max_prio.tolist()[:3] == [10, EMPTY_PRIO, EMPTY_PRIO]
    assert {p: c for p, c in st.nodes_by_top_prio[0].items() if c} == {10: 1}


def test_a_stop_cancels_only_its_own_jobs_start() -> None:
    """Two jobs on one placement object (half of node 0 each): job 3 starts after the read,
    job 2 (read) stops. Job 3's start stays noted, so node 0 reads job 3 alone. (Cancelling
    any first start of the placement leaves node 0 at job 2's priority 10.)"""
    st, _, _ = testkit.setup_cycle()
    half: Placement = ((0, 4),)
    two = testkit.running_job(st, 2, half, prio=10, start=2.0)
    assert st.np_max_prio.tolist()[:1] == [10]  # read
    testkit.running_job(st, 3, half, prio=1000, start=6.0)
    st.stop(two, 0)
    assert st.np_used.tolist()[:1] == [4]
    assert st.np_max_prio.tolist()[:1] == [1000]
    assert st.np_last_start.tolist()[:1] == [6.0]


@pytest.mark.parametrize("adopt", [False, True])
def test_a_job_read_stopped_and_restarted_on_its_placement_then_stopped_clears_its_nodes(
    adopt: bool,
) -> None:
    """A gang running at the last read stops and starts again on the same placement object
    (by start, or by a committed cycle's take and the driver's adopt) and stops again: the
    second stop does not cancel the restart alone, since the first stop's note was moved into
    it. (Cancelling on the job alone, without the first-note flag, leaves nodes 0-1 at 100.)"""
    st, _, _ = testkit.setup_cycle()
    gang = testkit.running_job(st, 1, ((0, 8), (1, 8)), prio=100, start=1.0)
    assert st.np_max_prio.tolist()[:2] == [100, 100]  # read
    placement = st.allocations[gang.id].placement
    st.stop(gang, 0)
    if adopt:
        st.take(gang.id, 0, placement)
        st.adopt(gang)
    else:
        st.start(gang, 0, 0, placement)
    st.stop(gang, 0)
    assert st.np_used.tolist()[:2] == [0, 0]
    assert st.np_max_prio.tolist()[:2] == [EMPTY_PRIO, EMPTY_PRIO]
    assert {p: c for p, c in st.nodes_by_top_prio[0].items() if c} == {}


@pytest.mark.parametrize("small_nodes", [10**9, -1])
def test_a_partial_gang_held_alone_is_summarized_with_the_gpus_it_holds(
    small_nodes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule (`_gang_writes`) says which notes both flushes write as a whole gang: a gang of
    part nodes, held by it alone, is not one of them, and reads 4 GPUs on each node. (The
    rule without its whole-node condition writes 8 in both flushes.)"""
    import cortex.scheduler.summaries as summaries_mod

    monkeypatch.setattr(summaries_mod, "FLUSH_SMALL_NODES", small_nodes)
    st, _, _ = testkit.setup_cycle()
    testkit.running_job(st, 1, ((0, 4), (1, 4)), prio=100, start=5.0)
    assert st.np_used.tolist()[:3] == [4, 4, 0]
    assert st.np_max_prio.tolist()[:2] == [100, 100]
    assert st.np_last_start.tolist()[:2] == [5.0, 5.0]


def _recount(st: ClusterState) -> tuple[list[int], list[int], list[float], list[dict[int, int]]]:
    """The summaries and histograms from the running jobs, as a fresh flush would write them."""
    nn = len(st.node_jobs)
    used, top, last = [0] * nn, [EMPTY_PRIO] * nn, [-math.inf] * nn
    for n, holders in enumerate(st.node_jobs):
        for jid, k in holders.items():
            job = st.running.get(jid)
            if job is not None:
                used[n] += k
                top[n] = max(top[n], job.priority)
                last[n] = max(last[n], job.run_start_s)
    hist: list[dict[int, int]] = [{} for _ in st.gpn]
    for n, p in enumerate(top):
        if p != EMPTY_PRIO:
            h = hist[st.node_flavor[n]]
            h[p] = h.get(p, 0) + 1
    return used, top, last, hist


@settings(max_examples=150, deadline=None)
@given(hs.integers(0, 2**32 - 1), hs.sampled_from([10**9, -1]))
def test_summaries_match_a_recount_after_any_starts_stops_and_restarts_between_reads(
    seed: int, small_nodes: int
) -> None:
    """Random driver starts (fresh placements), stops, restarts of a stopped job on the very
    placement object it left (by start, or by take and adopt) or on a new one, and reads at
    random points, through the plain-Python and the array flush: every read equals a recount
    from the running jobs, the per-priority histograms included. The notes between two reads
    repeat placements, and jobs start and stop between reads, as on cortex-2026."""
    import cortex.scheduler.summaries as summaries_mod

    original = summaries_mod.FLUSH_SMALL_NODES
    summaries_mod.FLUSH_SMALL_NODES = small_nodes
    try:
        _random_ops(random.Random(seed))
    finally:
        summaries_mod.FLUSH_SMALL_NODES = original


def _random_ops(rng: random.Random) -> None:
    st, _, _ = testkit.setup_cycle(testkit.MIXED)
    running: list[Job] = []
    stopped: list[tuple[Job, Placement]] = []  # a stopped job and the placement it left
    jid = 1
    for _ in range(60):
        op = rng.random()
        if op < 0.35:
            placement = _free_placement(st, rng)
            if placement is not None:
                job = testkit.running_job(
                    st, jid, placement, prio=rng.choice((10, 100, 1000)), start=float(jid)
                )
                running.append(job)
                jid += 1
        elif op < 0.6 and running:
            job = running.pop(rng.randrange(len(running)))
            stopped.append((job, st.allocations[job.id].placement))
            st.stop(job, job.queue_idx)
        elif op < 0.8 and stopped:
            job, left = stopped.pop(rng.randrange(len(stopped)))
            fits = all(st.node_free[n] >= k for n, k in left)
            placement = left if fits and rng.random() < 0.7 else _free_placement(st, rng)
            if placement is None or st.node_flavor[placement[0][0]] != job.run_flavor:
                stopped.append((job, left))
                continue
            job.run_start_s = float(1000 + jid)
            jid += 1
            if rng.random() < 0.5:
                st.start(job, job.queue_idx, job.run_flavor, placement)
            else:
                st.take(job.id, job.run_flavor, placement)  # a committed cycle's start
                st.adopt(job)
            running.append(job)
        else:
            used, top, last, hist = _recount(st)
            assert st.np_used.tolist() == used
            assert st.np_max_prio.tolist() == top
            assert st.np_last_start.tolist() == last
            assert [{p: c for p, c in h.items() if c} for h in st.nodes_by_top_prio] == hist
    used, top, last, hist = _recount(st)
    assert (st.np_used.tolist(), st.np_max_prio.tolist(), st.np_last_start.tolist()) == (
        used,
        top,
        last,
    )
    assert [{p: c for p, c in h.items() if c} for h in st.nodes_by_top_prio] == hist


def _free_placement(st: ClusterState, rng: random.Random) -> Placement | None:
    """A gang of whole free nodes of flavor 0, or a part of one node with free GPUs."""
    g = st.gpn[0]
    nodes = st.flavor_node_ids[0]
    if rng.random() < 0.5:
        whole = [n for n in nodes if st.node_free[n] == g]
        if len(whole) >= 2:
            picked = sorted(rng.sample(whole, rng.randint(2, min(4, len(whole)))))
            return tuple((n, g) for n in picked)
    some = [n for n in nodes if st.node_free[n] > 0]
    if not some:
        return None
    n = rng.choice(some)
    return ((n, rng.randint(1, st.node_free[n])),)
