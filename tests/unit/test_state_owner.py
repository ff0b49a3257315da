"""ClusterState's lazily kept facts against their definitions: np_owner (who holds each node)
after any sequence of takes and gives, however many notes pile up between reads; the version
counters that caches key on; a node that is down."""

from __future__ import annotations

import random

import pytest

import testkit
from cortex.fleet.topology import Topology
from cortex.scheduler.capacity import OWNER_STALE_MAX
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.state import ClusterState
from cortex.scheduler.summaries import FREE, SHARED

TINY = testkit.TINY  # 8 nodes of 8 GPUs, pods of 4
MIXED = testkit.MIXED


def _state(topo: Topology = TINY) -> ClusterState:
    return ClusterState(topo, QueueConfig.build(None, topo, ["a", "b"]))


def _owner_by_definition(st: ClusterState, n: int) -> int:
    """np_owner's docstring: the one job's id if exactly one holds the node (SHARED if that
    id is negative), SHARED if several do, FREE if none."""
    holders = list(st.node_jobs[n])
    if not holders:
        return FREE
    if len(holders) == 1 and holders[0] >= 0:
        return holders[0]
    return SHARED


def _placement(rng: random.Random, st: ClusterState) -> tuple[int, tuple] | None:
    """Any valid placement: part of one node, whole nodes, or parts of several nodes (the
    last includes 2 + 2 GPUs on two nodes of 8: as many GPUs as 8 / 2)."""
    f = rng.randrange(len(st.gpn))
    g = st.gpn[f]
    up = [n for n in st.flavor_node_ids[f] if st.node_up[n] and st.node_free[n] > 0]
    if not up:
        return None
    mode = rng.random()
    if mode < 0.3:
        n = rng.choice(up)
        return f, ((n, rng.randint(1, st.node_free[n])),)
    if mode < 0.6:
        whole = [n for n in up if st.node_free[n] == g]
        if not whole:
            return None
        return f, tuple((n, g) for n in rng.sample(whole, rng.randint(1, min(len(whole), 3))))
    nodes = rng.sample(up, min(len(up), rng.randint(2, 3)))
    return f, tuple((n, rng.randint(1, min(2, st.node_free[n]))) for n in nodes)


@pytest.mark.parametrize("topo", [TINY, MIXED], ids=["tiny", "mixed"])
@pytest.mark.parametrize("seed", range(6))
def test_np_owner_matches_its_definition_after_random_takes_and_gives(
    topo: Topology, seed: int
) -> None:
    rng = random.Random(seed)
    st = _state(topo)
    # Ids 0 and negative ones included: 0 is a job like any other, a negative id reads SHARED.
    ids = iter([0, -3, *range(1, 10_000)])
    for _ in range(300):
        if rng.random() < 0.55:
            got = _placement(rng, st)
            if got is not None:
                st.take(next(ids), *got)
        elif st.allocations:
            st.give(rng.choice(sorted(st.allocations)))
        if rng.random() < 0.3:  # reads now and then: several notes pile up between them
            owner = st.np_owner.tolist()
            assert owner == [_owner_by_definition(st, n) for n in range(topo.n_nodes)]
    owner = st.np_owner.tolist()
    assert owner == [_owner_by_definition(st, n) for n in range(topo.n_nodes)]


def test_np_owner_by_hand() -> None:
    st = _state()
    st.take(0, 0, ((0, 8), (1, 8)))  # job 0: nodes 0 and 1 whole
    st.take(5, 0, ((2, 4),))  # job 5: half of node 2
    st.take(6, 0, ((2, 2), (3, 2)))  # job 6: 2 GPUs on node 2 (shared with 5) and on node 3
    st.take(-4, 0, ((4, 8),))  # a negative id alone on node 4
    assert st.np_owner.tolist() == [0, 0, SHARED, 6, SHARED, FREE, FREE, FREE]
    st.give(5)  # node 2 keeps job 6 alone
    st.give(0)
    assert st.np_owner.tolist() == [FREE, FREE, 6, 6, SHARED, FREE, FREE, FREE]


def test_np_owner_is_right_after_more_notes_than_are_kept() -> None:
    st = _state()
    st.take(7, 0, ((1, 8),))  # job 7 on node 1: one note
    # OWNER_STALE_MAX more notes on node 0 (takes and gives in turn), and no read between:
    # 1 + 4096 > 4096, so the notes are dropped and every node is recomputed at the next read.
    for i in range(OWNER_STALE_MAX // 2):
        st.take(100 + i, 0, ((0, 8),))
        st.give(100 + i)
    assert st.np_owner[1] == 7 and st.np_owner[0] == FREE
    assert st.np_owner.tolist() == [_owner_by_definition(st, n) for n in range(8)]


def test_the_capacity_version_changes_on_every_change() -> None:
    st = _state()
    steps = [
        lambda: st.take(1, 0, ((0, 8),)),
        lambda: st.take(2, 0, ((1, 4),)),
        lambda: st.give(1),
        lambda: st.give(2),
        lambda: st.set_down(3),
        lambda: st.set_down(4),
        lambda: st.set_up(3),
        lambda: st.set_up(4),
    ]
    versions = [st.version]
    for step in steps:
        step()
        versions.append(st.version)
    # The start and 8 steps: 9 distinct values. Caches of placement answers are keyed on the
    # version, so a value seen before would serve an answer about another state.
    assert len(set(versions)) == 9


def test_the_usage_version_changes_on_every_usage_change() -> None:
    st = _state()
    versions = [list(st.usage_version)]
    for team, gpus in ((0, 8), (0, 8), (1, 16), (0, -8)):
        st.add_usage(team, 0, gpus)
        versions.append(list(st.usage_version))
    # Queue 0 changed at steps 1, 2 and 4, queue 1 at step 3: each change a new value.
    q0 = [v[0] for v in versions]
    assert q0[0] != q0[1] != q0[2] and q0[2] == q0[3] and q0[3] != q0[4]
    assert len({q0[0], q0[1], q0[2], q0[4]}) == 4
    q1 = [v[1] for v in versions]
    assert q1[0] == q1[1] == q1[2] != q1[3] == q1[4]
    # The usage itself: queue 0 holds 8 + 8 - 8 = 8, queue 1 16; the cohort 24.
    assert st.usage[0][0] == 8 and st.usage[1][0] == 16 and st.cohort_usage == [24]


def test_a_down_node_counts_its_gpus_idle_but_not_free() -> None:
    st = _state()
    st.set_down(5)
    # Its 8 GPUs are idle (node_free) but out of the free count: 64 - 8 = 56.
    assert st.node_free[5] == 8 and st.free_gpus == [56] and not st.np_up[5]
    st.set_up(5)
    assert st.node_free[5] == 8 and st.free_gpus == [64] and st.np_up[5]


def test_a_node_summary_skips_gpus_of_jobs_not_running() -> None:
    st = _state()
    # 4 GPUs of node 3 taken for job 50, which is not running (a committed start the driver
    # has not adopted yet), then a running job 60 of priority 100 on the other 4.
    st.take(50, 0, ((3, 4),))
    testkit.running_job(st, 60, ((3, 4),), prio=100)
    # The summary counts running jobs only: 4 GPUs used, top priority 100.
    assert st.np_used[3] == 4 and st.np_max_prio[3] == 100


def test_summaries_of_multi_node_gangs_that_do_not_fill_their_nodes() -> None:
    st = _state()
    # Job 70 alone on nodes 0 and 1 with 4 GPUs each; job 71 alone on nodes 2 and 3 with 2
    # each (4 in all: as many as 8 / 2). Job 72 on node 4 and 73 on node 5 (4 each), then
    # gang 74 on both with 4 each: it starts last, so its entry decides those nodes.
    testkit.running_job(st, 70, ((0, 4), (1, 4)), prio=10)
    testkit.running_job(st, 71, ((2, 2), (3, 2)), prio=20)
    testkit.running_job(st, 72, ((4, 4),), prio=30)
    testkit.running_job(st, 73, ((5, 4),), prio=40)
    testkit.running_job(st, 74, ((4, 4), (5, 4)), prio=50)
    # GPUs used per node: 4, 4, 2, 2, then 4 + 4 = 8 on nodes 4 and 5; 0 on 6 and 7.
    assert st.np_used.tolist() == [4, 4, 2, 2, 8, 8, 0, 0]
    assert st.np_max_prio[:6].tolist() == [10, 10, 20, 20, 50, 50]


def test_busy_nodes_by_top_priority_are_kept_per_flavor() -> None:
    st = _state(MIXED)
    h100, h200 = (MIXED.flavors.index(f) for f in ("H100-SXM5", "H200-SXM"))
    n200 = st.flavor_node_ids[h200][0]  # an H200 node (4 GPUs)
    testkit.running_job(st, 80, ((n200, 4),), prio=100)
    # One busy H200 node whose top priority is 100; no busy H100 node.
    assert st.nodes_by_top_prio[h200] == {100: 1}
    assert st.nodes_by_top_prio[h100] == {}
    n100 = st.flavor_node_ids[h100][0]
    testkit.running_job(st, 81, ((n100, 8),), prio=10)
    assert st.nodes_by_top_prio[h100] == {10: 1} and st.nodes_by_top_prio[h200] == {100: 1}
