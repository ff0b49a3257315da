"""ClusterState: the bucketed free-capacity indices always agree with a brute-force recount."""

from __future__ import annotations

import random

import pytest

import testkit
from cortex.fleet.topology import Topology
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

TINY = testkit.TINY
# Two flavors with different node sizes, two halls, partial last pods (4+4+2, 3+2 and 4+2).
MIXED = testkit.MIXED


def _state(topo: Topology = TINY) -> ClusterState:
    return ClusterState(topo, QueueConfig.build(None, topo, ["a", "b"]))


def _brute_check(st: ClusterState) -> None:
    """Recompute every index from node_free/node_up/node_jobs and compare."""
    topo = st.topo
    nf = len(topo.flavors)
    for n in range(topo.n_nodes):
        g = st.gpn[topo.node_flavor[n]]
        used = sum(st.node_jobs[n].values())
        if st.node_up[n]:
            assert st.node_free[n] + used == g, n
        else:
            assert not st.node_jobs[n]
    for f in range(nf):
        g = st.gpn[f]
        for k in range(g):
            want = {
                n
                for n in range(topo.n_nodes)
                if topo.node_flavor[n] == f and st.node_up[n] and st.node_free[n] == k and k > 0
            }
            assert set(st.part[f][k]) == want, (f, k)
        whole_by_pod = {
            p: sum(1 for n in ns if st.node_up[n] and st.node_free[n] == g)
            for p, ns in enumerate(topo.pod_nodes)
            if topo.pod_flavor[p] == f
        }
        assert not st.pod_bucket[f][0]
        for c in range(1, len(st.pod_bucket[f])):
            want_pods = {p for p, cnt in whole_by_pod.items() if cnt == c}
            assert set(st.pod_bucket[f][c]) == want_pods, (f, c)
        up = [n for n in range(topo.n_nodes) if topo.node_flavor[n] == f and st.node_up[n]]
        assert st.up_nodes[f] == len(up)
        assert st.up_gpus[f] == len(up) * g
        assert st.free_gpus[f] == sum(st.node_free[n] for n in up)
        held = sum(a.gpus for a in st.allocations.values() if a.flavor == f)
        assert st.busy_gpus[f] == held
        assert st.free_gpus[f] + st.busy_gpus[f] == st.up_gpus[f]
        largest_pod = max(whole_by_pod.values(), default=0) * g
        assert st.largest_free_pod_gpus(f) == largest_pod
        largest_node = max((st.node_free[n] for n in up), default=0)
        assert st.largest_free_node_gpus(f) == largest_node
        for h in range(len(topo.hall_names)):
            want_h = sum(1 for n in up if topo.node_hall[n] == h and st.node_free[n] == g)
            assert st.hall_whole[h][f] == want_h, (h, f)
    for p, ns in enumerate(topo.pod_nodes):
        g = st.gpn[topo.pod_flavor[p]]
        assert set(st.pod_whole[p]) == {n for n in ns if st.node_up[n] and st.node_free[n] == g}
    for jid, alloc in st.allocations.items():
        assert sum(k for _, k in alloc.placement) == alloc.gpus
        for n, k in alloc.placement:
            assert st.node_jobs[n][jid] == k


def _random_placement(
    rng: random.Random, st: ClusterState, *, gang_shapes: bool = False
) -> tuple[int, tuple] | None:
    """A random valid placement on the free GPUs of one flavor (not necessarily best-fit).
    With `gang_shapes`, only what placement policies produce: one node, or whole nodes."""
    f = rng.randrange(len(st.gpn))
    g = st.gpn[f]
    up = [n for n in st.flavor_node_ids[f] if st.node_up[n] and st.node_free[n] > 0]
    if not up:
        return None
    mode = rng.random()
    if mode < 0.4:
        n = rng.choice(up)
        return f, ((n, rng.randint(1, st.node_free[n])),)
    if mode < 0.8 or gang_shapes:
        whole = [n for n in up if st.node_free[n] == g]
        if not whole:
            return None
        nodes = rng.sample(whole, rng.randint(1, min(len(whole), 5)))
        return f, tuple((n, g) for n in nodes)
    nodes = rng.sample(up, rng.randint(1, min(len(up), 4)))
    return f, tuple((n, rng.randint(1, st.node_free[n])) for n in nodes)


@pytest.mark.parametrize("topo", [TINY, MIXED], ids=["tiny", "mixed"])
@pytest.mark.parametrize("seed", range(4))
def test_indices_match_brute_force_after_random_operations(topo: Topology, seed: int) -> None:
    rng = random.Random(seed)
    st = _state(topo)
    _brute_check(st)
    next_id = 0
    for _ in range(400):
        op = rng.random()
        if op < 0.45:
            got = _random_placement(rng, st)
            if got is None:
                continue
            f, placement = got
            took = st.take(next_id, f, placement)
            assert took == sum(k for _, k in placement)
            next_id += 1
        elif op < 0.8 and st.allocations:
            jid = rng.choice(sorted(st.allocations))
            before = st.allocations[jid]
            assert st.give(jid) == before
        elif op < 0.9:
            n = rng.randrange(topo.n_nodes)
            if st.node_jobs[n]:
                with pytest.raises(RuntimeError):
                    st.set_down(n)
            else:
                st.set_down(n)
                assert not st.node_up[n]
        else:
            down = [n for n in range(topo.n_nodes) if not st.node_up[n]]
            if down:
                st.set_up(rng.choice(down))
        _brute_check(st)
    # Everything given back and every node up: the state equals a fresh one.
    for jid in sorted(st.allocations):
        st.give(jid)
    for n in range(topo.n_nodes):
        st.set_up(n)
    _brute_check(st)
    fresh = _state(topo)
    assert st.node_free == fresh.node_free
    assert st.free_gpus == fresh.free_gpus == st.total_gpus
    assert st.busy_gpus == [0] * len(topo.flavors)
    assert st.hall_whole == fresh.hall_whole


def test_fresh_tiny_indices_by_hand() -> None:
    st = _state()
    assert st.gpn == [8]
    assert st.free_gpus == [64]
    assert set(st.pod_bucket[0][4]) == {0, 1}
    assert not any(st.pod_bucket[0][c] for c in range(4))
    assert st.hall_whole == [[8]]
    assert st.largest_free_pod_gpus(0) == 32
    assert st.largest_free_node_gpus(0) == 8


def test_take_and_give_by_hand() -> None:
    st = _state()
    st.take(1, 0, ((0, 3),))  # node 0: 5 free
    assert set(st.part[0][5]) == {0}
    assert set(st.pod_bucket[0][3]) == {0}
    assert set(st.pod_bucket[0][4]) == {1}
    assert st.hall_whole[0][0] == 7
    assert st.free_gpus == [61]
    st.take(2, 0, ((4, 8), (5, 8)))  # pod 1 loses two whole nodes
    assert set(st.pod_bucket[0][2]) == {1}
    assert set(st.pod_bucket[0][3]) == {0}
    assert st.largest_free_pod_gpus(0) == 24
    st.take(3, 0, ((1, 8), (2, 8), (3, 8)))  # pod 0: no whole node left
    assert 0 not in st.pod_whole[0] and not st.pod_whole[0]
    assert set(st.pod_bucket[0][2]) == {1}
    assert st.largest_free_pod_gpus(0) == 16
    assert st.hall_whole[0][0] == 2
    st.take(4, 0, ((6, 8), (7, 2)))
    assert st.largest_free_pod_gpus(0) == 0
    assert st.largest_free_node_gpus(0) == 6  # node 7
    assert set(st.part[0][6]) == {7}
    assert st.free_gpus == [11]
    st.give(3)
    assert set(st.pod_bucket[0][3]) == {0}
    assert st.largest_free_pod_gpus(0) == 24
    assert st.node_jobs[0] == {1: 3}
    assert st.free_gpus == [35]
    _brute_check(st)


def test_set_down_and_up_by_hand() -> None:
    st = _state()
    st.set_down(0)
    st.set_down(0)  # idempotent
    assert st.free_gpus == [56] and st.up_gpus == [56] and st.up_nodes == [7]
    assert set(st.pod_bucket[0][3]) == {0}
    assert st.hall_whole[0][0] == 7
    st.set_up(0)
    st.set_up(0)  # idempotent
    assert st.free_gpus == [64] and st.up_gpus == [64] and st.up_nodes == [8]
    assert set(st.pod_bucket[0][4]) == {0, 1}
    st.take(9, 0, ((2, 1),))
    with pytest.raises(RuntimeError, match="still runs jobs"):
        st.set_down(2)
    assert st.node_up[2]
    _brute_check(st)


def _running(jid: int, prio: int, end: float, team: int) -> Job:
    job = Job(jid, f"j{jid}", "ab"[team], 8, 100.0)
    job.priority = prio
    job.est_end_s = end
    job.queue_idx = team
    return job


def test_start_and_stop_keep_running_set_ends_and_usage() -> None:
    st = _state()
    a = _running(1, 100, 500.0, 0)
    b = _running(2, 10, 200.0, 1)
    assert st.start(a, 0, 0, ((0, 8), (1, 8))) == 16
    assert st.start(b, 1, 0, ((4, 3),)) == 3
    assert list(st.ends[0]) == [(200.0, 2, 3), (500.0, 1, 16)]
    assert st.usage == [[16], [3]] and st.cohort_usage == [19]
    assert st.nodes_by_top_prio[0] == {100: 2, 10: 1}
    assert set(st.running) == {1, 2}
    alloc = st.stop(a, 0)
    assert alloc.gpus == 16 and alloc.placement == ((0, 8), (1, 8))
    assert list(st.ends[0]) == [(200.0, 2, 3)]
    assert st.usage == [[0], [3]] and st.cohort_usage == [3]
    assert st.nodes_by_top_prio[0] == {100: 0, 10: 1}
    assert set(st.running) == {2}
    assert st.jobs_on(4) == [2] and st.jobs_on(0) == []
    _brute_check(st)


def _check_node_summaries(st: ClusterState) -> None:
    """The per-node arrays that victim searches filter on agree with the running jobs."""
    for n in range(st.topo.n_nodes):
        jobs = st.node_jobs[n]
        assert bool(st.np_up[n]) == st.node_up[n]
        assert st.np_used[n] == sum(jobs.values())
        assert st.np_node_pod[n] == st.topo.node_pod[n]
        assert st.np_node_flavor[n] == st.topo.node_flavor[n]
        if jobs:
            assert st.np_max_prio[n] == max(st.running[j].priority for j in jobs)
            assert st.np_last_start[n] == max(st.running[j].run_start_s for j in jobs)
        else:
            assert st.np_max_prio[n] < min([-1_000_000, *(j.priority for j in st.running.values())])
            assert st.np_last_start[n] == -float("inf")


@pytest.mark.parametrize("seed", range(3))
def test_node_summaries_follow_start_stop_and_repairs(seed: int) -> None:
    rng = random.Random(seed)
    st = _state(MIXED)
    jid = 0
    for step in range(300):
        op = rng.random()
        if op < 0.5:
            got = _random_placement(rng, st, gang_shapes=True)
            if got is None:
                continue
            f, placement = got
            jid += 1
            team = rng.randrange(2)
            job = _running(jid, rng.choice([10, 100, 1000]), float(step), team)
            job.run_start_s = rng.uniform(-1000.0, 1000.0)
            job.run_flavor = f
            st.start(job, team, f, placement)
        elif op < 0.85 and st.running:
            job = st.running[rng.choice(sorted(st.running))]
            st.stop(job, job.queue_idx)
        else:
            n = rng.randrange(MIXED.n_nodes)
            if st.node_up[n] and not st.node_jobs[n]:
                st.set_down(n)
            elif not st.node_up[n]:
                st.set_up(n)
        _check_node_summaries(st)
        _brute_check(st)


@pytest.mark.parametrize("seed", range(20))
def test_ends_read_at_any_point_match_the_running_jobs(seed: int) -> None:
    """`ends` applies the starts and stops noted since it was last read (a run that starts and
    stops between two reads is never applied): every read shows the running jobs' ends sorted,
    whatever the mix of starts, adopted starts, stops, restarts with the same end, and reads."""
    rng = random.Random(seed)
    st = _state(MIXED)
    live: dict[int, tuple[Job, int]] = {}
    next_id = 0
    for _ in range(300):
        op = rng.random()
        if op < 0.4:
            f = rng.randrange(len(st.gpn))
            nodes = [n for n in st.flavor_node_ids[f] if st.node_free[n] == st.gpn[f]]
            if not nodes:
                continue
            next_id += 1
            job = _running(next_id, rng.randint(0, 3), float(rng.randint(0, 9)), rng.randrange(2))
            if rng.random() < 0.5:
                st.start(job, job.queue_idx, f, ((rng.choice(nodes), st.gpn[f]),))
            else:  # a committed pass's take, then the driver's adopt
                st.take(job.id, f, ((rng.choice(nodes), st.gpn[f]),))
                st.add_usage(job.queue_idx, f, st.gpn[f])
                st.adopt(job)
            live[job.id] = (job, f)
        elif op < 0.75 and live:
            job, f = live.pop(rng.choice(sorted(live)))
            alloc = st.stop(job, job.queue_idx)
            if rng.random() < 0.3:  # restarted at once on the same nodes, with the same end
                st.start(job, job.queue_idx, alloc.flavor, alloc.placement)
                live[job.id] = (job, f)
        elif op < 0.9:
            for f in range(len(st.gpn)):
                want = sorted((j.est_end_s, j.id, st.gpn[f]) for j, g in live.values() if g == f)
                assert list(st.ends[f]) == want
    for f in range(len(st.gpn)):
        want = sorted((j.est_end_s, j.id, st.gpn[f]) for j, g in live.values() if g == f)
        assert list(st.ends[f]) == want


def test_usage_versions_move_with_every_usage_change_and_only_then() -> None:
    """start, stop and a Statement's allocate write the usage themselves (section 126): each
    bumps its team's usage version (the shares' memo key) with the usage; an adoption of GPUs
    a committed cycle took, and the stop of a victim the cycle handed over, change no usage."""
    from cortex.scheduler.statement import Statement

    st = _state()
    a = _running(1, 100, 500.0, 0)
    b = _running(2, 10, 200.0, 1)
    st.start(a, 0, 0, ((0, 8), (1, 8)))
    assert st.usage_version == [1, 0]
    st.start(b, 1, 0, ((4, 3),))
    assert st.usage_version == [1, 1]
    st.stop(a, 0)
    assert st.usage_version == [2, 1] and st.usage == [[0], [3]] and st.cohort_usage == [3]
    c = _running(3, 50, 300.0, 1)
    stmt = Statement(st)
    assert stmt.allocate(c, 0, ((2, 8),)) == 8
    assert st.usage_version == [2, 2] and st.usage == [[0], [11]] and st.cohort_usage == [11]
    st.adopt(c)
    assert st.usage_version == [2, 2] and st.usage == [[0], [11]]
    st.given[b.id] = st.give(b.id)  # as Statement.hand_over leaves an evicted victim's GPUs
    st.stop(b, 1)
    assert st.usage_version == [2, 2] and st.usage == [[0], [11]] and st.cohort_usage == [11]
    assert set(st.running) == {3}
    _brute_check(st)


def test_a_placement_noted_again_moves_to_the_end_of_the_notes() -> None:
    """A placement object noted by a start after another note of it (a stop, then a restart on
    the same placement) is one note, last in order and not a first start (section 74)."""
    st = _state()
    a = _running(1, 100, 500.0, 0)
    b = _running(2, 10, 200.0, 1)
    p = ((0, 8), (1, 8))
    st.start(a, 0, 0, p)
    assert st.np_used.sum() == 16  # read: the notes flushed
    st.stop(a, 0)
    st.start(b, 1, 0, ((4, 3),))
    st.start(a, 0, 0, p)
    notes = list(st._stale.values())
    assert [(jid, first) for jid, _, first in notes] == [(2, True), (1, False)]
    assert notes[1][1] is p


def _ends_want(st: ClusterState, live: dict[int, tuple[Job, int]], f: int) -> list:
    return sorted((j.est_end_s, j.id, 1) for j, g in live.values() if g == f)


@pytest.mark.parametrize("seed", range(16))
def test_moved_ends_read_at_any_point_match_the_running_jobs(seed: int) -> None:
    """`move_ends` notes a cap solve's re-timed ends as a stop's and a start's are, and `ends`
    applies them when read: one by one, or a flavor rebuilt when many are noted (a solve moves
    ~80 runs at once). Every read shows the running jobs' ends sorted, whatever the mix of
    starts, stops, batches of moves (to the same end, back to an earlier one, again before a
    read, or of a run that then stops) and reads."""
    rng = random.Random(seed)
    st = _state(MIXED)
    live: dict[int, tuple[Job, int]] = {}
    next_id = 0
    for _ in range(500):
        op = rng.random()
        if op < 0.4:
            f = rng.randrange(len(st.gpn))
            nodes = [n for n in st.flavor_node_ids[f] if st.node_free[n] > 0]
            if not nodes:
                continue
            next_id += 1
            job = _running(next_id, 1, float(rng.randint(0, 60)), rng.randrange(2))
            st.start(job, job.queue_idx, f, ((rng.choice(nodes), 1),))
            live[job.id] = (job, f)
        elif op < 0.5 and live:
            job, f = live.pop(rng.choice(sorted(live)))
            st.stop(job, job.queue_idx)
        elif op < 0.85 and live:
            k = min(len(live), rng.choice([1, 3, 8, 17, 40, 200]))
            moved = []
            for jid in rng.sample(sorted(live), k):
                job, f = live[jid]
                was = (job.est_end_s, jid, 1)
                end = rng.choice([job.est_end_s, float(rng.randint(0, 60)), rng.uniform(0, 60)])
                job.est_end_s = end
                moved.append((f, was, (end, jid, 1)))
            st.move_ends(moved)
        else:
            for f in range(len(st.gpn)):
                assert list(st.ends[f]) == _ends_want(st, live, f)
    for f in range(len(st.gpn)):
        assert list(st.ends[f]) == _ends_want(st, live, f)


@pytest.mark.parametrize(("n_moved", "others"), [(1, 0), (3, 28), (40, 0)])
def test_a_moved_end_that_is_not_there_is_refused_when_read(n_moved: int, others: int) -> None:
    # As SortedList.remove refuses it, whether the flavor is rebuilt (80 notes among 40 ends),
    # read one by one among many notes (6 here, 28 starts of the other flavor) or alone (2).
    st = _state(MIXED)
    jobs = []
    for i in range(40):
        job = _running(i + 1, 1, float(i), 0)
        st.start(job, 0, 0, ((st.flavor_node_ids[0][i % 8], 1),))
        jobs.append(job)
    assert len(st.ends[0]) == 40
    for i in range(others):
        job = _running(100 + i, 1, float(i), 0)
        ids = st.flavor_node_ids[1]
        st.start(job, 0, 1, ((ids[i % len(ids)], 1),))
    moved = [(0, (j.est_end_s, j.id, 1), (j.est_end_s + 0.5, j.id, 1)) for j in jobs[: n_moved - 1]]
    moved.append((0, (99.0, 99, 1), (1.0, 99, 1)))
    st.move_ends(moved)
    with pytest.raises(ValueError):
        _ = st.ends


def _ended_job(jid: int, end: float) -> Job:
    job = Job(jid, f"j{jid}", "a", 1, 100.0)
    job.est_end_s = end
    job.queue_idx = 0
    return job


@pytest.mark.parametrize("applied", [40, 4])  # one by one within the many-note read; rebuilt
def test_a_refused_read_of_the_ends_drops_no_running_job(applied: int) -> None:
    """A read refused on one flavor (an end noted gone that it does not hold, as SortedList's
    remove refuses) keeps every note: each later read refuses too, or shows every running job;
    it never answers without another flavor's noted starts (reviewer rev42)."""
    topo = testkit.MIXED
    st = ClusterState(topo, QueueConfig.build(None, topo, ["a", "b"]))
    for i in range(applied):
        st.start(_ended_job(i + 1, float(i)), 0, 0, ((st.flavor_node_ids[0][i % 8], 1),))
    _ = st.ends
    ids = st.flavor_node_ids[1]
    for i in range(28):  # flavor 1's starts, noted, not read yet (a many-note read)
        st.start(_ended_job(100 + i, float(i)), 0, 1, ((ids[i % len(ids)], 1),))
    st._ends_gone.append((0, (5.5, 999, 1)))  # a driver's wrong entry
    with pytest.raises(ValueError):
        _ = st.ends
    try:
        ends = st.ends
    except ValueError:
        return
    running_1 = sorted((j.est_end_s, jid, 1) for jid, j in st.running.items() if jid >= 100)
    assert list(ends[1]) == running_1
