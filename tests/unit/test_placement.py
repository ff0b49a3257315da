"""TopologyBestFit: all-or-nothing gangs, fullest node, fewest-free pod, least-room hall."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.placement import TopologyBestFit, WholeNodes, alloc_size
from cortex.scheduler.power import PowerView, _shape, hall_shares, placement_shape
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.state import ClusterState

TINY = testkit.TINY
# Hall h1: pods 0-2 (nodes 0-11); hall h2: pods 3-4 (nodes 12-19); 8 GPUs per node.
HALLS = build(
    parse_fleet(
        {
            "name": "halls",
            "halls": [
                {
                    "name": "h1",
                    "groups": [{"flavor": "H100-SXM5", "nodes": 12, "nodes_per_pod": 4}],
                },
                {"name": "h2", "groups": [{"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]},
            ],
        },
        "test",
    )
)
MIXED = testkit.MIXED
POLICY = TopologyBestFit()


def _state(topo: Topology, used: dict[int, int]) -> ClusterState:
    """A state where node n has used[n] GPUs taken (one job per node)."""
    st = ClusterState(topo, QueueConfig.build(None, topo, ["a"]))
    for i, (n, k) in enumerate(sorted(used.items())):
        st.take(1000 + i, topo.node_flavor[n], ((n, k),))
    return st


def _fingerprint(st: ClusterState) -> tuple:
    return (
        list(st.node_free),
        list(st.node_up),
        [dict(d) for d in st.node_jobs],
        [[sorted(d) for d in row] for row in st.part],
        [sorted(d) for d in st.pod_whole],
        [[sorted(d) for d in row] for row in st.pod_bucket],
        [list(r) for r in st.hall_whole],
        list(st.free_gpus),
        dict(st.allocations),
    )


@pytest.mark.parametrize(
    ("gpus", "gpn", "expected"),
    [(1, 8, 1), (7, 8, 7), (8, 8, 8), (9, 8, 16), (12, 8, 16), (16, 8, 16), (17, 8, 24),
     (5, 4, 8), (40, 8, 40), (41, 8, 48)],
)  # fmt: skip
def test_alloc_size(gpus: int, gpn: int, expected: int) -> None:
    assert alloc_size(gpus, gpn) == expected


# Tiny: node 0 has 3 free, node 4 has 5 free, node 5 has 2 free; whole free nodes are 1, 2, 3
# (pod 0: 3 free nodes) and 6, 7 (pod 1: 2 free nodes). 50 GPUs free in all.
TINY_USED = {0: 5, 4: 3, 5: 6}


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        (1, ((5, 1),)),  # fullest node that fits: node 5 (2 free)
        (2, ((5, 2),)),
        (3, ((0, 3),)),  # node 5 is too small, node 0 (3 free) is fuller than node 4 (5 free)
        (4, ((4, 4),)),
        (5, ((4, 5),)),
        (6, ((6, 6),)),  # no partial node fits: a free node of pod 1 (fewest free nodes)
        (8, ((6, 8),)),
        (9, ((6, 8), (7, 8))),  # rounds up to two whole nodes
        (16, ((6, 8), (7, 8))),  # pod 1 has exactly 2 free nodes: the tightest pod
        (17, ((1, 8), (2, 8), (3, 8))),
        (24, ((1, 8), (2, 8), (3, 8))),  # only pod 0 holds 3 nodes
        (32, ((1, 8), (2, 8), (3, 8), (6, 8))),  # no pod holds 4: fullest pod first
        (40, ((1, 8), (2, 8), (3, 8), (6, 8), (7, 8))),
        (41, None),  # 6 whole nodes needed, 5 free (50 GPUs free, but fragmented)
        (48, None),
        (57, None),  # more than the 50 free GPUs
    ],
)
def test_tiny_best_fit_table(gpus: int, expected: tuple | None) -> None:
    st = _state(TINY, TINY_USED)
    before = _fingerprint(st)
    got = POLICY.place(st, 0, gpus)
    assert (tuple(sorted(got)) if got is not None else None) == expected
    assert _fingerprint(st) == before


# Halls A: h1 pods have 4 (pod 0), 2 (pod 1: nodes 6, 7), 1 (pod 2: node 11) free nodes = 7;
# h2: pod 3 has 3 (nodes 13-15), pod 4 none = 3.
HALLS_A = {4: 8, 5: 8, 8: 8, 9: 8, 10: 8, 12: 8, 16: 8, 17: 8, 18: 8, 19: 8}
# Halls B: h1 pods 3 (1-3), 3 (5-7), 2 (10, 11) = 8; h2 pods 3 (13-15), 3 (17-19) = 6.
HALLS_B = {0: 8, 4: 8, 8: 8, 9: 8, 12: 8, 16: 8}


@pytest.mark.parametrize(
    ("used", "gpus", "nodes"),
    [
        (HALLS_A, 8, [11]),  # the pod with a single free node
        (HALLS_A, 16, [6, 7]),  # pod 1: exactly two
        (HALLS_A, 24, [13, 14, 15]),  # pod 3: exactly three
        (HALLS_A, 32, [0, 1, 2, 3]),
        (HALLS_A, 40, [0, 1, 2, 3, 6]),  # no pod holds 5; only h1 does, fullest pods first
        (HALLS_A, 56, [0, 1, 2, 3, 6, 7, 11]),  # all of h1
        (HALLS_A, 64, [0, 1, 2, 3, 6, 7, 11, 13]),  # no hall holds 8: h1, then h2
        (HALLS_A, 80, [0, 1, 2, 3, 6, 7, 11, 13, 14, 15]),
        (HALLS_A, 88, None),
        (HALLS_B, 40, [13, 14, 15, 17, 18]),  # both halls hold 5: h2 has the least room
        (HALLS_B, 56, [1, 2, 3, 5, 6, 7, 10]),  # only h1 holds 7: its two 3-node pods first
        (HALLS_B, 72, [1, 2, 3, 5, 6, 7, 10, 11, 13]),  # across halls, the larger hall first
    ],
)
def test_hall_and_pod_choice_table(used: dict[int, int], gpus: int, nodes: list | None) -> None:
    st = _state(HALLS, used)
    got = POLICY.place(st, 0, gpus)
    if nodes is None:
        assert got is None
        return
    assert got is not None
    assert sorted(n for n, _ in got) == nodes
    assert all(k == (gpus if gpus <= 8 else 8) for _, k in got)


def _random_state(topo: Topology, rng: random.Random) -> ClusterState:
    st = ClusterState(topo, QueueConfig.build(None, topo, ["a"]))
    jid = 0
    for n in range(topo.n_nodes):
        g = st.gpn[topo.node_flavor[n]]
        r = rng.random()
        if r < 0.1:
            st.set_down(n)
        elif r < 0.45:
            jid += 1
            st.take(jid, topo.node_flavor[n], ((n, g),))
        elif r < 0.7:
            jid += 1
            st.take(jid, topo.node_flavor[n], ((n, rng.randint(1, g - 1)),))
    return st


def _check_placement(st: ClusterState, f: int, gpus: int, got: tuple | None) -> None:
    topo = st.topo
    g = st.gpn[f]
    nodes_f = [n for n in st.flavor_node_ids[f] if st.node_up[n]]
    whole = [n for n in nodes_f if st.node_free[n] == g]
    if gpus <= g:
        fits = [n for n in nodes_f if st.node_free[n] >= gpus]
        if not fits:
            assert got is None
            return
        assert got is not None and len(got) == 1
        ((n, k),) = got
        assert k == gpus and n in fits
        partial = [st.node_free[m] for m in fits if st.node_free[m] < g]
        if partial:
            assert st.node_free[n] == min(partial), "not the fullest node that fits"
        else:
            counts = Counter(topo.node_pod[m] for m in whole)
            assert counts[topo.node_pod[n]] == min(counts.values()), "not the tightest pod"
        return
    need = -(-gpus // g)
    if len(whole) < need:
        assert got is None
        return
    assert got is not None
    chosen = [n for n, _ in got]
    assert len(chosen) == need == len(set(chosen))
    assert all(k == g for _, k in got)
    assert set(chosen) <= set(whole)
    pod_counts = Counter(topo.node_pod[n] for n in whole)
    holding = [c for c in pod_counts.values() if c >= need]
    used_pods = {topo.node_pod[n] for n in chosen}
    if holding:
        assert len(used_pods) == 1, "a pod holds the gang but it was split"
        assert pod_counts[used_pods.pop()] == min(holding), "not the tightest pod"
        return
    hall_counts = Counter(topo.node_hall[n] for n in whole)
    halls = {topo.node_hall[n] for n in chosen}
    fitting = [c for c in hall_counts.values() if c >= need]
    if not fitting:
        order = sorted(hall_counts.values(), reverse=True)
        fewest_halls = next(i + 1 for i in range(len(order)) if sum(order[: i + 1]) >= need)
        assert len(halls) == fewest_halls, "more halls than needed"
        return
    assert len(halls) == 1, "a hall holds the gang but it was split"
    hall = halls.pop()
    assert hall_counts[hall] == min(fitting), "not the hall with the least room that suffices"
    sizes = sorted((c for p, c in pod_counts.items() if topo.pod_hall[p] == hall), reverse=True)
    fewest_pods = next(i + 1 for i in range(len(sizes)) if sum(sizes[: i + 1]) >= need)
    assert len(used_pods) == fewest_pods, "more pods than needed"


@pytest.mark.parametrize("topo", [TINY, HALLS, MIXED], ids=["tiny", "halls", "mixed"])
@pytest.mark.parametrize("seed", range(25))
def test_random_states_placement_is_valid_and_best_fit(topo: Topology, seed: int) -> None:
    rng = random.Random(seed)
    st = _random_state(topo, rng)
    before = _fingerprint(st)
    for f in range(len(topo.flavors)):
        g = st.gpn[f]
        for gpus in sorted(
            {1, 2, g - 1, g, g + 1, 2 * g, 3 * g, 4 * g + 1, 5 * g, 7 * g, rng.randint(1, 12 * g)}
        ):
            if gpus < 1:
                continue
            _check_placement(st, f, gpus, POLICY.place(st, f, gpus))
    assert _fingerprint(st) == before


def _first(d: dict[int, None], k: int) -> list[int]:
    out = []
    for n in d:
        out.append(n)
        if len(out) == k:
            break
    return out


def _reference_place(st: ClusterState, f: int, gpus: int) -> tuple | None:
    """TopologyBestFit.place for gangs of whole nodes before its node walks used islice/zip:
    the same nodes in the same order is what a seeded twin run needs."""
    g = st.gpn[f]
    need = -(-gpus // g)
    if need * g > st.free_gpus[f] or need > st.free_whole_nodes(f):
        return None
    buckets = st.pod_bucket[f]
    for c in range(need, len(buckets)):
        if buckets[c]:
            pod = next(iter(buckets[c]))
            return tuple((n, g) for n in _first(st.pod_whole[pod], need))
    halls = [(st.hall_whole[h][f], h) for h in range(len(st.hall_whole))]
    fitting = sorted(x for x in halls if x[0] >= need)
    chosen = [fitting[0][1]] if fitting else [h for _, h in sorted(halls, reverse=True)]
    if sum(st.hall_whole[h][f] for h in chosen) < need:
        return None
    out: list[tuple[int, int]] = []
    for h in chosen:
        for c in range(len(buckets) - 1, 0, -1):
            for p in sorted(p for p in buckets[c] if st.pod_hall[p] == h):
                for n in _first(st.pod_whole[p], need - len(out)):
                    out.append((n, g))
                if len(out) == need:
                    return tuple(out)
    return None


@pytest.mark.parametrize("topo", [TINY, HALLS, MIXED], ids=["tiny", "halls", "mixed"])
@pytest.mark.parametrize("seed", range(20))
def test_multi_node_gangs_take_the_same_nodes_in_the_same_order(topo: Topology, seed: int) -> None:
    rng = random.Random(1000 + seed)
    tried = 0
    for _ in range(4):  # four states a case: on tiny one of them alone may fit no such gang
        st = _scrambled_state(topo, rng)
        for f in range(len(topo.flavors)):
            g = st.gpn[f]
            for need in range(2, topo.n_nodes + 1):
                want = _reference_place(st, f, need * g)
                assert POLICY.place(st, f, need * g) == want
                got = POLICY.place(st, f, need * g - 1)
                assert got == want  # a gang that rounds up
                tried += want is not None
                if got is not None:
                    _check_halls(topo, got)
    assert tried > 0


def _view(topo: Topology, node_cap_w: list[float]) -> PowerView:
    return PowerView(
        1e9, [1e9] * len(topo.hall_names), (1.0,), 0, lambda _k, _f: 500.0, [0.0], [700.0],
        topo.node_hall, node_cap_w, min_node_cap_w=min(node_cap_w),
    )  # fmt: skip


def _check_halls(topo: Topology, got: tuple) -> None:
    """A gang of whole nodes comes with its GPUs per hall, hall_shares' dict (the same items in
    the same order), and power admission's shape of it is placement_shape's, rack caps or not."""
    assert type(got) is WholeNodes
    assert list(got.halls.items()) == list(hall_shares(topo.node_hall, got).items())
    for caps in ([math.inf] * topo.n_nodes, [600.0 + n % 7 for n in range(topo.n_nodes)]):
        view = _view(topo, caps)
        want = placement_shape(topo.node_hall, caps, view.min_node_cap_w, got)
        shape = _shape(view, got)
        assert shape[:2] == want[:2] and list(shape[2].items()) == list(want[2].items())


def _scrambled_state(topo: Topology, rng: random.Random) -> ClusterState:
    """Free nodes in a scrambled order within their pods (a stop re-inserts a node last), so
    that "the pod's first free nodes" is not the sorted order; about half the nodes stay whole
    and free, so that gangs of several nodes fit."""
    st = ClusterState(topo, QueueConfig.build(None, topo, ["a"]))
    order = list(range(topo.n_nodes))
    rng.shuffle(order)
    for jid, n in enumerate(order, start=1):
        f = topo.node_flavor[n]
        g = st.gpn[f]
        r = rng.random()
        if r < 0.05:
            st.set_down(n)
        elif r < 0.5:
            st.take(jid, f, ((n, g if r < 0.3 else rng.randint(1, g - 1)),))
        elif r < 0.8:
            st.take(jid, f, ((n, g),))
            st.give(jid)
    return st


def test_whole_node_pairs_carry_their_own_flavors_gpus() -> None:
    """Gangs of whole nodes are built from ClusterState.whole_pair (one (node, GPUs) pair per
    node, made once): on MIXED's 4-GPU flavor, in one pod and across pods, every pair holds the
    node's 4 GPUs, and on its 8-GPU flavor 8; the same placements as pairs built afresh."""
    topo = testkit.MIXED
    st = ClusterState(topo, QueueConfig.build(topo.spec.queues, topo, ("a",)))
    pol = TopologyBestFit()
    for f in range(len(topo.flavors)):
        g = st.gpn[f]
        pods = [p for p in range(len(topo.pod_nodes)) if topo.pod_flavor[p] == f]
        biggest = max(len(topo.pod_nodes[p]) for p in pods)
        total = sum(len(topo.pod_nodes[p]) for p in pods)
        for need in (2, biggest, biggest + 1, total):
            got = pol.place(st, f, need * g)
            assert got is not None and len(got) == need, (f, need)
            assert all(k == g and topo.node_flavor[n] == f for n, k in got), (f, need)
    assert sorted({st.gpn[f] for f in range(len(topo.flavors))}) == [4, 8]


@pytest.mark.parametrize(
    ("used", "gpus", "halls"),
    [
        (HALLS_A, 24, {1: 24}),  # pod 3, in h2
        (HALLS_A, 40, {0: 40}),  # pods of h1
        (HALLS_A, 64, {0: 56, 1: 8}),  # h1, then h2
        (HALLS_A, 80, {0: 56, 1: 24}),
        (HALLS_B, 72, {0: 64, 1: 8}),  # the larger hall first
        (HALLS_B, 40, {1: 40}),
    ],
)
def test_a_gang_of_whole_nodes_counts_its_gpus_per_hall(
    used: dict[int, int], gpus: int, halls: dict[int, int]
) -> None:
    got = POLICY.place(_state(HALLS, used), 0, gpus)
    assert type(got) is WholeNodes and list(got.halls.items()) == list(halls.items())
    assert got == tuple(got) and hash(got) == hash(tuple(got))  # a placement like any other
    one = POLICY.place(_state(HALLS, used), 0, 8)
    assert type(one) is tuple  # one node: nothing to count
