"""take/give of a gang of whole nodes in one pass per pod (scheduler/capacity.py) and the
Statement's save before a take (scheduler/statement.py) against the node-by-node code they
replaced, kept verbatim in tests/capacity_reference.py: two states in lockstep through random
takes, gives, cordons, downs and statements that roll back, equal after every step down to the
order of every index (placement breaks ties by that order). The whole-node paths find a pod's
runs by comparing each node's pod with the last one's (RESULTS §119); the lockstep kills a run's
count not added to an earlier run of the same pod, the last run not counted, the pod not kept
between nodes, and a run counted from zero, in take and in give. A one-node take or give off
cordon is written out without the loop (RESULTS §119); the lockstep kills its pod bucket and
hall count, its owner note, its cordon check (take and give), its version, busy count and
partial-node write (eleven hand-made mutants). A gang taken whole keeps its runs on its
allocation, and its give walks them (RESULTS §145): the lockstep kills a run sliced one node
long, a pod's count not added to its earlier run's, a run or the last run not kept, the runs
read for a give on a cordoned node, and each run sliced from the placement's start."""

from __future__ import annotations

import random

import pytest

import testkit
from cortex.fleet.topology import Topology
from cortex.scheduler import capacity
from cortex.scheduler.power import hall_shares
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.state import ClusterState
from cortex.scheduler.statement import Statement
from cortex.workload.job import Job

# The reference subclasses ClusterState and Statement, which a compiled build (CORTEX_COMPILED=1)
# does not allow; the build compiles the very sources this compares in pure Python.
COMPILED = not capacity.__file__.endswith(".py")
pytestmark = pytest.mark.skipif(COMPILED, reason="the reference subclasses compiled classes")
if not COMPILED:
    from capacity_reference import ReferenceState, ReferenceStatement

MIXED = testkit.MIXED  # pods of 4+4+2 and 3+2 nodes of 8 GPUs, 4+2 of 4 GPUs, two halls


def _contents(st: ClusterState) -> tuple:
    return (
        testkit.state_contents(st),
        st.version,
        list(st._owner_stale),
        st._owner_all,
        st.np_owner.tolist(),
    )


def _placement(rng: random.Random, st: ClusterState) -> tuple[int, tuple] | None:
    """A valid placement of one flavor: one partial node, whole nodes in any order (so a pod's
    nodes need not be consecutive), or several partial nodes."""
    f = rng.randrange(len(st.gpn))
    g = st.gpn[f]
    up = [n for n in st.flavor_node_ids[f] if st.node_up[n] and st.node_free[n] > 0]
    if not up:
        return None
    mode = rng.random()
    if mode < 0.3:
        n = rng.choice(up)
        return f, ((n, rng.randint(1, st.node_free[n])),)
    whole = [n for n in up if st.node_free[n] == g]
    if mode < 0.8 and whole:
        nodes = rng.sample(whole, rng.randint(1, len(whole)))
        if rng.random() < 0.5:
            nodes.sort()  # as placement lists them: pod by pod
        return f, tuple((n, g) for n in nodes)
    nodes = rng.sample(up, rng.randint(1, min(len(up), 4)))
    return f, tuple((n, rng.randint(1, st.node_free[n])) for n in nodes)


def _job(jid: int, placement: tuple) -> Job:
    job = Job(jid, f"j{jid}", "a", sum(k for _, k in placement), 1.0)
    job.queue_idx = 0
    return job


def _step(rng: random.Random, states: tuple[ClusterState, ClusterState], jid: int) -> int:
    """One random operation on both states (the same one); returns the next job id."""
    new, ref = states
    topo = new.topo
    op = rng.random()
    if op < 0.35:
        got = _placement(rng, new)
        if got is not None:
            f, placement = got
            assert new.take(jid, f, placement) == ref.take(jid, f, placement)
            return jid + 1
    elif op < 0.6 and new.allocations:
        victim = rng.choice(sorted(new.allocations))
        assert new.give(victim) == ref.give(victim)
    elif op < 0.7:
        n = rng.randrange(topo.n_nodes)
        for st in states:
            st.uncordon(n) if n in st.cordoned else st.cordon(n)
    elif op < 0.78:
        n = rng.randrange(topo.n_nodes)
        if not new.node_jobs[n]:
            for st in states:
                st.set_up(n) if not st.node_up[n] else st.set_down(n)
    else:
        jid = _statement(rng, states, jid)
    return jid


def _statement(rng: random.Random, states: tuple[ClusterState, ClusterState], jid: int) -> int:
    """Tentative allocations and evictions, a mark, more, then a rollback to the mark or to the
    start, on both states."""
    new, ref = states
    stmts = (Statement(new), ReferenceStatement(ref))
    jobs = {j: _job(j, a.placement) for j, a in new.allocations.items()}
    mark = None
    for i in range(rng.randint(1, 6)):
        if i == 2:
            marks = [s.mark() for s in stmts]
            assert marks[0] == marks[1]
            mark = marks[0]
        if rng.random() < 0.6 or not jobs:
            got = _placement(rng, new)
            if got is None:
                continue
            f, placement = got
            job = _job(jid, placement)
            jid += 1
            assert stmts[0].allocate(job, f, placement) == stmts[1].allocate(job, f, placement)
        else:
            victim = jobs.pop(rng.choice(sorted(jobs)))
            assert stmts[0].evict(victim) == stmts[1].evict(victim)
        assert _contents(new) == _contents(ref)
    back = mark if mark is not None and rng.random() < 0.5 else 0
    for s in stmts:
        s.rollback(back)
    return jid


@pytest.mark.parametrize("topo", [MIXED, testkit.TINY], ids=["mixed", "tiny"])
@pytest.mark.parametrize("seed", range(6))
def test_whole_gang_paths_match_node_by_node(topo: Topology, seed: int) -> None:
    rng = random.Random(seed)
    qc = QueueConfig.build(None, topo, ["a"])
    states = (ClusterState(topo, qc), ReferenceState(topo, qc))
    jid = 0
    for _ in range(300):
        jid = _step(rng, states, jid)
        assert _contents(states[0]) == _contents(states[1])


def test_whole_gang_path_runs_on_gangs_across_pods_in_any_order() -> None:
    """The lockstep above reaches the new paths: multi-node whole gangs whose pods repeat
    non-consecutively, given back off and on cordoned nodes."""
    qc = QueueConfig.build(None, MIXED, ["a"])
    new, ref = ClusterState(MIXED, qc), ReferenceState(MIXED, qc)
    pod = MIXED.pod_nodes
    gang = ((pod[0][0], 8), (pod[1][0], 8), (pod[0][1], 8), (pod[1][1], 8))
    for st in (new, ref):
        st.take(1, 0, gang)
        st.cordon(pod[0][1])
    assert _contents(new) == _contents(ref)
    for st in (new, ref):
        st.give(1)
        st.uncordon(pod[0][1])
        st.take(2, 0, gang)
    assert _contents(new) == _contents(ref)
    for st in (new, ref):
        st.give(2)
    assert _contents(new) == _contents(ref)


def _hall_gpus_checked(st: ClusterState, whole: set[int]) -> int:
    """Every allocation's `hall_gpus` against `hall_shares` over its placement, the halls'
    order included; None exactly for the placements taken other than whole off cordon
    (`whole`: the ids taken so). Returns how many it compared."""
    seen = 0
    for jid, alloc in st.allocations.items():
        got = st.hall_gpus(jid)
        if jid not in whole:
            assert got is None
            continue
        want = hall_shares(st.topo.node_hall, alloc.placement)
        assert got is not None
        assert list(got.items()) == list(want.items())
        seen += 1
    return seen


@pytest.mark.parametrize("topo", [MIXED, testkit.TINY], ids=["mixed", "tiny"])
@pytest.mark.parametrize("seed", range(4))
def test_hall_gpus_is_hall_shares_of_whole_gangs(topo: Topology, seed: int) -> None:
    """A whole-node gang's GPUs per hall from its pods' counts (RESULTS §145), against the
    per-node count over its placement, after random takes (whole nodes in any order, so halls
    and pods interleave), gives, cordons and downs."""
    rng = random.Random(seed)
    st = ClusterState(topo, QueueConfig.build(None, topo, ["a"]))
    g = st.gpn
    whole: set[int] = set()
    seen = 0
    for jid in range(400):
        op = rng.random()
        if op < 0.5:
            got = _placement(rng, st)
            if got is not None:
                f, placement = got
                if (
                    len(placement) > 1
                    and all(k == g[f] for _, k in placement)
                    and not any(n in st.cordoned for n, _ in placement)
                ):
                    whole.add(jid)
                st.take(jid, f, placement)
        elif op < 0.8 and st.allocations:
            st.give(rng.choice(sorted(st.allocations)))
        else:
            n = rng.randrange(topo.n_nodes)
            st.uncordon(n) if n in st.cordoned else st.cordon(n)
        seen += _hall_gpus_checked(st, whole)
    assert seen > 10
