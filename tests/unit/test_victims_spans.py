"""The victim search over a flavor's span of node ids (victims._search, `node_filter(nodes=)`)
against the reference search (tests/victims_reference.py, every node), on a fleet whose two
flavors each lie in three spans with the other flavor's nodes between them, under every node
filter the policies have: PriorityReclaim plain and with cross-class reclaim (its filter reads
the span's node flavors), LasDemotion and NoPreemption; with queues that borrow (so reclaim
turns on), cordoned nodes that still run jobs, down nodes, nodes shared by small jobs and pods
whose good nodes are exactly a gang's need."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as hs

import testkit
import victims_reference
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler import victims
from cortex.scheduler.ordering import LeastAttainedService
from cortex.scheduler.preemption import (
    LasDemotion,
    NoPreemption,
    PreemptionPolicy,
    PriorityReclaim,
)
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

NOW = 10_000.0
PRIOS = (10, 100, 100, 1000)


def _group(flavor: str, nodes: int, gpn: int) -> dict:
    return {"flavor": flavor, "nodes": nodes, "gpus_per_node": gpn, "nodes_per_pod": 4}


# H100 (8 GPUs a node) and H200 (4 a node), alternating: each flavor's span of node ids holds
# nodes of the other flavor, so the search's flavor mask inside the span matters.
SPANS = build(
    parse_fleet(
        {
            "name": "spans",
            "halls": [
                {
                    "name": "h1",
                    "groups": [
                        _group("H100-SXM5", 8, 8),
                        _group("H200-SXM", 4, 4),
                        _group("H100-SXM5", 4, 8),
                    ],
                },
                {
                    "name": "h2",
                    "groups": [
                        _group("H200-SXM", 8, 4),
                        _group("H100-SXM5", 4, 8),
                        _group("H200-SXM", 4, 4),
                    ],
                },
            ],
            "queues": {
                "cluster_queues": [
                    {"name": "a", "nominal_share": 0.3},
                    {"name": "b", "nominal_share": 0.3},
                ]
            },
        },
        "test",
    )
)


def _spans(st: ClusterState, f: int) -> int:
    """How many runs of consecutive node ids flavor f's nodes form."""
    ids = st.flavor_node_ids[f]
    return 1 + sum(1 for a, b in itertools.pairwise(ids) if b != a + 1)


def _fill(st: ClusterState, rng: random.Random, jid: int, most: int, lean: float) -> list[Job]:
    """Random running jobs; queue b's with probability `lean` (above its nominal quota when
    high: queue a may then reclaim from it)."""
    jobs = []
    for _ in range(rng.randint(0, most)):
        f = rng.randrange(len(st.gpn))
        g = st.gpn[f]
        open_ = [n for n in st.flavor_node_ids[f] if st.node_up[n]]
        whole = [n for n in open_ if st.node_free[n] == g]
        if rng.random() < 0.4 and len(whole) >= 2:
            # A gang of whole nodes, often one pod's worth (pods with exactly `need` good nodes).
            nodes = rng.sample(whole, rng.randint(2, min(4, len(whole))))
            placement = tuple((n, g) for n in sorted(nodes))
        else:
            some = [n for n in open_ if st.node_free[n] > 0]
            if not some:
                continue
            n = rng.choice(some)
            placement = ((n, rng.randint(1, st.node_free[n])),)
        start = NOW - rng.choice([60.0, 5_000.0, 50_000.0])
        job = testkit.running_job(
            st, jid, placement, team=int(rng.random() < lean), prio=rng.choice(PRIOS), start=start
        )
        job.attained_gpu_s = rng.choice([0.0, 1e3, 1e5])
        jobs.append(job)
        jid += 1
    return jobs


def _search(snap: Snapshot, pol: PreemptionPolicy, gang: int, f: int, job: Job) -> list | None:
    """One search, nothing banned (the reference has no `admits` rounds)."""
    return victims._search(snap, pol, gang, f, job, set())


POLICIES: list[PreemptionPolicy] = [
    PriorityReclaim(),
    PriorityReclaim(reclaim_any=True),
    LasDemotion(LeastAttainedService()),
    NoPreemption(),
]


@settings(max_examples=150, deadline=None)
@given(hs.integers(0, 2**32 - 1))
def test_span_search_chooses_what_the_every_node_search_chose(seed: int) -> None:
    rng = random.Random(seed)
    st, pend, _ = testkit.setup_cycle(SPANS, None, ("a", "b"))
    assert [_spans(st, f) for f in range(len(st.gpn))] == [3, 3]
    _fill(st, rng, 0, 40, rng.choice([0.5, 0.9]))
    for n in rng.sample(range(len(st.node_free)), rng.randint(0, 4)):
        if st.node_jobs[n]:
            st.cordon(n)  # its jobs run on; the search may not free it
        elif rng.random() < 0.5:
            st.set_down(n)
    snap = Snapshot(
        NOW,
        st,
        pend,
        lambda k, f: 1.0,
        lambda j, f, g: 100.0,
        lost_s=(lambda j: float(j.id % 3) * 900.0) if rng.random() < 0.5 else None,
    )
    for _ in range(6):
        f = rng.randrange(len(st.gpn))
        g = st.gpn[f]
        gang = rng.choice([1, g - 1, g, 2 * g, 3 * g, 4 * g, 5 * g, 9 * g])
        job = Job(10_000, "p", "a", max(gang, 1), 100.0)
        job.queue_idx, job.priority = rng.randrange(2), rng.choice(PRIOS)
        job.attained_gpu_s = 0.0
        pol = rng.choice(POLICIES)
        before = testkit.state_contents(st)
        want = victims_reference.find_victims(snap, pol, job.gpus, f, job)
        assert _search(snap, pol, job.gpus, f, job) == want, (job.gpus, f, pol)
        original = victims.JUDGE_ALL_MAX
        try:
            victims.JUDGE_ALL_MAX = 0  # pods judged as the visit reaches them
            assert _search(snap, pol, job.gpus, f, job) == want, ("by pod", job.gpus, f)
        finally:
            victims.JUDGE_ALL_MAX = original
        assert testkit.state_contents(st) == before


def test_the_fleet_borrows_so_cross_class_reclaim_filters_by_flavor() -> None:
    """The generated states reach the reclaim branch of PriorityReclaim's filter (a queue over
    its nominal quota), where the span's node flavors are read, and it finds victims there."""
    reclaim = PriorityReclaim(reclaim_any=True)
    found = higher = 0
    for seed in range(40):
        rng = random.Random(seed)
        st, pend, _ = testkit.setup_cycle(SPANS, None, ("a", "b"))
        _fill(st, rng, 0, 40, 0.9)
        snap = Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 100.0)
        for f in range(len(st.gpn)):
            for team in range(2):
                job = Job(10_000, "p", "ab"[team], 2 * st.gpn[f], 100.0)
                job.queue_idx, job.priority = team, 10
                if not reclaim._reclaims(snap, job, f, job.gpus):
                    continue
                want = victims_reference.find_victims(snap, reclaim, job.gpus, f, job)
                assert _search(snap, reclaim, job.gpus, f, job) == want
                found += want is not None
                higher += any(st.running[j].priority > job.priority for j in want or ())
    # Victims of a higher class than the reclaimer: only the filter's flavor branch lets
    # their nodes through.
    assert found >= 5 and higher >= 3, (found, higher)
