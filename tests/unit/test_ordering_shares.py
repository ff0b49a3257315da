"""PriorityFairShare's shares at their edges: a flavor of a single GPU, and a queue whose usage
moves (a victim evicted) between two picks while its head stays put. Orders derived by hand."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis.strategies import DataObject, data, integers, lists, sampled_from
from sortedcontainers import SortedList

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.ordering import PriorityFairShare
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

QUEUES = {"cluster_queues": [{"name": "a", "nominal_share": 0.5},
                             {"name": "b", "nominal_share": 0.5}]}  # fmt: skip
H100_GROUP = {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}  # 64 GPUs


def _fleet(name: str, groups: list[dict]) -> Topology:
    halls = [{"name": "h", "groups": groups}]
    return build(parse_fleet({"name": name, "halls": halls, "queues": QUEUES}, "test"))


# 64 H100 GPUs, and one H200 node of a single GPU: a flavor whose total is 1.
ONE_GPU_FLAVOR = _fleet("one", [H100_GROUP, {"flavor": "H200-SXM", "nodes": 1,
                                             "nodes_per_pod": 1, "gpus_per_node": 1}])  # fmt: skip
PLAIN = _fleet("plain", [H100_GROUP])


def _pending(pol: PriorityFairShare, jobs: list[tuple[int, int, float]]) -> PendingQueues:
    """jobs: (id, queue, submit), all of priority 100."""
    pend = PendingQueues(2, pol.key)
    for jid, q, submit in jobs:
        job = Job(jid, f"p{jid}", "ab"[q], 1, 10.0, submit_s=submit)
        job.queue_idx, job.priority = q, 100
        pend.add(job)
    return pend


def _snap(st: ClusterState, pend: PendingQueues) -> Snapshot:
    return Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0)


def test_a_flavor_of_one_gpu_counts_its_whole_gpu() -> None:
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(ONE_GPU_FLAVOR, None, ("a", "b"))
    h100, h200 = (st.topo.flavors.index(f) for f in ("H100-SXM5", "H200-SXM"))
    assert st.total_gpus[h200] == 1
    st.add_usage(0, h200, 1)  # a: 1 of 1 H200 GPU -> dominant share 1 / 1 = 1.0
    st.add_usage(1, h100, 40)  # b: 40 of 64 H100 GPUs -> 40 / 64 = 0.625
    # b's 0.625 < a's 1.0, so b goes first although a's job arrived earlier. (Counting the
    # H200 total as 2 would make a's share 0.5 and put a first.)
    pend = _pending(pol, [(1, 0, 0.0), (2, 1, 5.0)])
    assert [j.id for j in pol.order(_snap(st, pend))] == [2, 1]


def test_a_share_that_drops_between_picks_is_recomputed() -> None:
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(PLAIN, None, ("a", "b"))
    st.add_usage(0, 0, 16)  # a holds 16 of 64: share 0.25; b holds nothing: 0
    # a: jobs 1 (t=1) and 2 (t=2); b: jobs 3 (t=3) and 4 (t=4).
    pend = _pending(pol, [(1, 0, 1.0), (2, 0, 2.0), (3, 1, 3.0), (4, 1, 4.0)])
    it = pol.order(_snap(st, pend))
    assert next(it).id == 3  # b's 0 < a's 0.25
    # Job 3 does not start, but a's running job is evicted: a's share falls to 0 / 64 = 0
    # while a's head (job 1) has not moved.
    st.add_usage(0, 0, -16)
    # Both shares 0 now: arrival order among the heads, job 1 (t=1) before job 4 (t=4), then
    # job 2 (t=2) before job 4. With a's share still 0.25, job 4 would come next instead.
    assert [j.id for j in it] == [1, 2, 4]


# Three queues of different weights on a fleet of two flavors (64 H100 and 32 H200 GPUs): the
# merge's first pick, its later picks and the shares kept from pass to pass
# (PriorityFairShare._shares).
def _three(weights: tuple[float, float, float]) -> Topology:
    queues = {"cluster_queues": [{"name": n, "nominal_share": 0.3, "weight": w}
                                 for n, w in zip("abc", weights, strict=True)]}  # fmt: skip
    groups = [H100_GROUP, {"flavor": "H200-SXM", "nodes": 4, "nodes_per_pod": 4}]
    halls = [{"name": "h", "groups": groups}]
    return build(parse_fleet({"name": "three", "halls": halls, "queues": queues}, "test"))


THREE = _three((2.0, 1.0, 0.5))


def _plain_order(st: ClusterState, pend: PendingQueues) -> list[int]:
    """The order read plainly: nothing starts while it is read, so every share stays put and
    the merge of the queues' heads is one sort by (priority class, the queue's share, key)."""
    totals = [max(t, 1) for t in st.total_gpus]
    rows = []
    for q, lst in enumerate(pend.lists):
        share = max(u / t for u, t in zip(st.usage[q], totals, strict=True))
        share /= st.queues.queues[q].weight
        rows += [((key[0], share, key), job.id) for key, job in lst]
    return [jid for _, jid in sorted(rows)]


def _two_jobs(pol: PriorityFairShare) -> PendingQueues:
    """Job 1 in queue a, job 2 in queue b, of one class; job 1 arrived first."""
    pend = PendingQueues(3, pol.key)
    for jid, q in ((1, 0), (2, 1)):
        job = Job(jid, f"p{jid}", "ab"[q], 1, 10.0, submit_s=float(jid))
        job.queue_idx, job.priority = q, 100
        pend.add(job)
    return pend


@settings(max_examples=60, deadline=None)
@given(st_data=data())
def test_the_order_and_its_first_pick_are_the_plain_ones_pass_after_pass(
    st_data: DataObject,
) -> None:
    """One policy over many passes of two states (as two drivers sharing it): usage moves
    (versions bump) and jobs come and go between passes; a pass reads one job and drops the
    order, or reads it all, or reads two and then a usage moves under the rest."""
    pol = PriorityFairShare()
    states = []
    for _ in range(2):
        s, _, _ = testkit.setup_cycle(THREE, None, ("a", "b", "c"))
        states.append((s, PendingQueues(3, pol.key)))
    draw = st_data.draw
    jid = 0
    for _ in range(draw(integers(4, 12))):
        s, pend = states[draw(integers(0, 1))]
        for _ in range(draw(integers(0, 5))):
            jid += 1
            q = draw(integers(0, 2))
            job = Job(jid, f"p{jid}", "abc"[q], 1, 10.0, submit_s=float(draw(integers(0, 50))))
            job.queue_idx, job.priority = q, draw(sampled_from((50, 100, 100)))
            pend.add(job)
        waiting = list(pend)
        if waiting:
            for job in draw(lists(sampled_from(waiting), unique_by=lambda j: j.id, max_size=3)):
                pend.remove(job)
        for _ in range(draw(integers(0, 3))):
            q, f = draw(integers(0, 2)), draw(integers(0, 1))
            s.add_usage(q, f, draw(integers(-s.usage[q][f], 40)))
        plain = _plain_order(s, pend)
        how = draw(sampled_from(("first", "all", "move")))
        got = pol.order(_snap(s, pend))
        if how == "first":
            assert [j.id for j in itertools.islice(got, 1)] == plain[:1]
        elif how == "all":
            assert [j.id for j in got] == plain
        else:
            taken = [j.id for j in itertools.islice(got, 2)]
            assert taken == plain[: len(taken)]
            # A usage moves under the order (a tentative start or eviction): the rest follows
            # the new shares.
            q, f = draw(integers(0, 2)), draw(integers(0, 1))
            s.add_usage(q, f, draw(integers(0, 40)))
            rest = PendingQueues(3, pol.key)
            for j in sorted(pend, key=lambda j: j.id):
                if j.id not in taken:
                    rest.add(j)
            assert [j.id for j in got] == _plain_order(s, rest)


def test_a_share_kept_for_one_state_is_not_read_for_another() -> None:
    """Two states of one queue config whose usage versions agree but whose usage does not,
    ordered by one policy in turn."""
    pol = PriorityFairShare()
    a, _, _ = testkit.setup_cycle(THREE, None, ("a", "b", "c"))
    b = ClusterState(THREE, a.queues)
    a.add_usage(0, 0, 32)  # on a, queue a's share is the larger (32/64 / 2 = 0.25): job 2 first
    b.add_usage(1, 0, 32)  # on b, queue b's (32/64 / 1 = 0.5): job 1 first
    a.add_usage(1, 0, 0)
    b.add_usage(0, 0, 0)  # both at usage versions [1, 1, 0]
    pend = _two_jobs(pol)
    for st_, first in ((a, 2), (b, 1), (a, 2)):
        assert next(iter(pol.order(_snap(st_, pend)))).id == first


def test_totals_changed_in_place_are_read_again() -> None:
    """The kept shares are for the totals they were computed with."""
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(THREE, None, ("a", "b", "c"))
    st.add_usage(0, 0, 32)  # a: 32 of 64 H100 / 2 = 0.25
    st.add_usage(1, 1, 16)  # b: 16 of 32 H200 / 1 = 0.5: a's job first
    pend = _two_jobs(pol)
    assert next(iter(pol.order(_snap(st, pend)))).id == 1
    st.total_gpus[1] = 320  # b: 16 of 320 = 0.05: b's job first now, at the same versions
    assert next(iter(pol.order(_snap(st, pend)))).id == 2


def test_queues_of_other_weights_are_read_again() -> None:
    """The kept shares are for the queues (their weights) they were computed with."""
    pol = PriorityFairShare()
    st, _, _ = testkit.setup_cycle(THREE, None, ("a", "b", "c"))
    st.add_usage(0, 0, 32)  # a: 32 of 64 / 2 = 0.25
    st.add_usage(1, 0, 24)  # b: 24 of 64 / 1 = 0.375: job 1 first
    pend = _two_jobs(pol)
    assert next(iter(pol.order(_snap(st, pend)))).id == 1
    other = _three((0.5, 1.0, 2.0))  # a: 0.5 / 0.5 = 1.0 now: job 2 first, at the same versions
    st.queues = QueueConfig.build(other.spec.queues, other, ("a", "b", "c"))
    assert next(iter(pol.order(_snap(st, pend)))).id == 2


def test_a_sorted_list_shows_its_first_item_and_its_emptiness_in_its_sublists() -> None:
    """What the first pick reads of sortedcontainers' SortedList (its `_lists`)."""
    lst = SortedList()
    assert not lst._lists
    lst.update(range(5000, 0, -1))
    assert lst._lists[0][0] == lst[0] == 1
    for x in range(1, 5001):
        lst.remove(x)
    assert not lst._lists
    assert not lst


TWO_QUEUES = {"cluster_queues": [{"name": "a", "nominal_share": 0.5},
                                 {"name": "b", "nominal_share": 0.5}]}  # fmt: skip
SMALL_GROUPS = [{"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]  # 64 GPUs


def test_a_second_order_over_the_same_state_does_not_change_the_first() -> None:
    """The shares are the policy's, kept across passes; each order's candidates are its own: a
    second order over the same state, read while the first is suspended, must not leave the
    first ranking a queue by the share it had before its usage changed (reviewer rev42)."""
    topo = build(parse_fleet({"name": "p", "halls": [{"name": "h", "groups": SMALL_GROUPS}],
                              "queues": TWO_QUEUES}, "test"))  # fmt: skip
    st = ClusterState(topo, QueueConfig.build(topo.spec.queues, topo, ("a", "b")))
    pol = PriorityFairShare()
    pend = PendingQueues(2, pol.key)
    for jid, q, t in ((1, 0, 1.0), (2, 0, 2.0), (3, 0, 3.0), (11, 1, 1.5), (12, 1, 2.5)):
        job = Job(jid, f"p{jid}", "ab"[q], 1, 10.0, submit_s=t)
        job.queue_idx, job.priority = q, 100
        pend.add(job)
    snap = Snapshot(0.0, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0)
    first = pol.order(snap)
    got = [next(first).id, next(first).id]  # 1, then 11 (both shares 0: by submit time)
    st.add_usage(0, 0, 32)  # queue a: 32 of 64 GPUs, share 0.5 (a tentative start)
    next(iter(pol.order(snap)))  # another order over the same state reads its first pick
    got += [j.id for j in first]
    assert got == [1, 11, 12, 2, 3]  # b's share (0) below a's (0.5): b's 12 before a's 2 and 3
