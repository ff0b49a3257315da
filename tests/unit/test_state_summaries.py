"""Per-node summaries are kept lazily (brought up to date when read). Within a cycle they must
still describe the fleet as it was before the cycle: a victim search reads them after the cycle's
tentative starts, and after earlier tentative evictions of the same cycle."""

from __future__ import annotations

import pytest

import testkit
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
