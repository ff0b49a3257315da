"""A queue's nominal quota as a guarantee across priority classes (`PriorityReclaim(
reclaim_any=True)`, the `hetero` profiles; Kueue's `reclaimWithinCohort: Any` with
`borrowWithinCohort: LowerPriority`): a queue within its nominal quota of a flavor takes back
GPUs that another queue borrows there, whatever their priority class, and another queue's jobs
are victims only while their queue borrows (before each of them goes), so a queue within its
nominal is never preempted by another queue's job. Whole cycles on a small two-flavor fleet,
with the outcomes worked out by hand below.

Fleet: H100 8 nodes x 8 GPUs (nodes 0-7), H200 2 nodes x 8 (nodes 8-9). Two queues, half of each
flavor: prod 32 H100 + 8 H200 nominal, res the same; borrowing unlimited.
prod runs production (priority 1000), res research (priority 10). Every running job started
long ago (settled: no minimum-runtime shield).
"""

from __future__ import annotations

import pytest

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.preemption import PreemptionPolicy, PriorityReclaim
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

FLEET = build(parse_fleet({"name": "reclaim", "halls": [{"name": "h", "groups": [
    {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 8},
    {"flavor": "H200-SXM", "nodes": 2, "nodes_per_pod": 2}]}], "queues": {"cluster_queues": [
    {"name": "prod", "nominal_share": 0.5}, {"name": "res", "nominal_share": 0.5}]}},
    "test"))  # fmt: skip
PROD, RES = 0, 1
HI, LO = 1000, 10
H100, H200 = 0, 1


def _run(st: ClusterState, jid: int, nodes: list[int], team: int, prio: int) -> Job:
    return testkit.running_job(
        st, jid, tuple((n, 8) for n in nodes), team=team, prio=prio, start=-1e6, work=1e6
    )


def _fleet(
    prod_gangs: list[int], res_nodes: int, prod_h200: int = 0, res_prio: int = LO
) -> ClusterState:
    """prod runs one job per entry of `prod_gangs` (its size in H100 nodes) from node 0 on,
    res one 8-GPU job per node after those; prod_h200 H200 nodes run prod single-node jobs."""
    st, _, _ = testkit.setup_cycle(FLEET, teams=("prod", "res"))
    n = 0
    for i, size in enumerate(prod_gangs):
        _run(st, 100 + i, list(range(n, n + size)), PROD, HI)
        n += size
    for i in range(res_nodes):
        _run(st, 200 + i, [n], RES, res_prio)
        n += 1
    for i in range(prod_h200):
        _run(st, 300 + i, [8 + i], PROD, HI)
    return st


def _cycle(st: ClusterState, gpus: int, any_mode: bool, flavors: tuple[int, ...] = (H100,),
           prio: int = LO, team: int = RES,
           pre: PreemptionPolicy | None = None) -> tuple[list[int], list[int]]:  # fmt: skip
    """One cycle with a pending job of `team` (res, research class by default); the ids
    preempted and the ids started."""
    _, pend, _ = testkit.setup_cycle(FLEET, teams=("prod", "res"))
    job = Job(1, "p1", ("prod", "res")[team], gpus, 1000.0)
    job.queue_idx, job.priority, job.flavor_ids = team, prio, flavors
    pend.add(job)
    pre = pre if pre is not None else PriorityReclaim(reclaim_any=any_mode)
    pol = Policies(ordering=Fifo(), preemption=pre)
    snap = Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda j, f, g: j.work_s)
    plan = schedule(snap, pol)
    return sorted(p.job.id for p in plan.preemptions), [s.job.id for s in plan.starts]


@pytest.mark.parametrize(
    ("prod_gangs", "res_nodes", "gpus", "any_mode", "preempted", "started"),
    [
        # prod holds 6 single-node jobs (48 H100 = 32 nominal + 16 borrowed), res 2 (16), the
        # fleet is full. res asks for 8: 16 + 8 = 24 <= 32, within its nominal. Under Any it
        # evicts one prod job (prod borrows before it goes: 48 > 32): the cheapest, all
        # equal, the lowest id (100) by the search's node order. The old rule never evicts a
        # higher class: the job waits.
        ([1] * 6, 2, 8, True, [100], [1]),
        ([1] * 6, 2, 8, False, [], []),
        # prod holds 5 single-node jobs (40 = 32 + 8), res 2, one node free. res asks for 24
        # (3 nodes) with 16 held: 16 + 24 = 40 > 32, beyond its nominal: no reclaim.
        ([1] * 5, 2, 24, True, [], []),
        # res holds 1 (8), asks for 24: 8 + 24 = 32 <= 32. Free: 2 nodes (5 prod + 1 res of 8);
        # one more node needed: one prod job (prod borrows: 40 > 32). Allowed.
        ([1] * 5, 1, 24, True, [100], [1]),
        # Same, but prod's 40 is one 3-node gang (24) and one 2-node gang (16). prod borrows
        # before the eviction (40 > 32), which is all Kueue asks of a victim's queue: the
        # cheaper gang (101) goes, though prod then holds 24 < 32. Nothing flips back: prod's
        # gang may not reclaim (24 + 16 > 32) and res (32) borrows nothing.
        ([3, 2], 1, 24, True, [101], [1]),
        # res holds 1, asks for 32 (4 nodes): 8 + 32 = 40 > 32: beyond its nominal.
        ([1] * 5, 1, 32, True, [], []),
        # res holds 0, prod 6 single-node jobs (48), 2 nodes free; res asks for 32 (4 nodes):
        # 0 + 32 <= 32; it needs 2 more nodes: two prod jobs; prod borrows before each (48, then
        # 40 > 32): allowed, ids 100 and 101.
        ([1] * 6, 0, 32, True, [100, 101], [1]),
        # prod 7 single-node jobs (56 = 32 + 24), 1 free, res 0 asks for 32 (4 nodes): three
        # victims; prod borrows before each (56, 48, 40 > 32): allowed.
        ([1] * 7, 0, 32, True, [100, 101, 102], [1]),
        # prod 5 single-node (40), 3 free; res 0 asks for 64? No: for 40 (5 nodes):
        # 0 + 40 > 32, beyond res's nominal.
        ([1] * 5, 0, 40, True, [], []),
    ],
)
def test_reclaim_any_scenarios(
    prod_gangs: list[int], res_nodes: int, gpus: int, any_mode: bool, preempted: list[int],
    started: list[int],
) -> None:  # fmt: skip
    st = _fleet(prod_gangs, res_nodes)
    assert _cycle(st, gpus, any_mode) == (preempted, started)


def test_each_victim_alone_allowed_but_not_together() -> None:
    # prod holds 5 single-node jobs (40 = 32 + 8). With res on nodes 5 and 6 (16) and node 7
    # free, a res job for 16 needs one victim: prod borrows before it goes (40 > 32), allowed.
    st = _fleet([1] * 5, 1)
    _run(st, 400, [6], RES, LO)
    assert _cycle(st, 16, True) == ([100], [1])
    # With res on node 5 only (8): a res job for 24 is within res's nominal (8 + 24 = 32);
    # each prod job alone may go (prod borrows: 40 > 32), two together may not: after the
    # first, prod holds 32 and no longer borrows (Kueue re-checks before each removal).
    st2 = _fleet([1] * 5, 1)
    pol = PriorityReclaim(reclaim_any=True)
    snap = Snapshot(0.0, st2, testkit.setup_cycle(FLEET, teams=("prod", "res"))[1],
                    lambda kind, f: 1.0, lambda j, f, g: 1.0)  # fmt: skip
    job = Job(1, "p1", "res", 24, 1000.0)
    job.queue_idx, job.priority = RES, LO
    a, b = st2.running[100], st2.running[101]
    assert pol.eligible(snap, job, a) and pol.eligible(snap, job, b)
    assert pol.admits(snap, job, [a]) and not pol.admits(snap, job, [a, b])
    # The old mode judges no set (and never takes a higher class).
    old = PriorityReclaim()
    assert not old.eligible(snap, job, a) and old.admits(snap, job, [a, b])


def test_reclaim_is_per_flavor() -> None:
    # prod borrows on H100 (6 nodes = 48 > 32) and holds both H200 nodes (16 = 8 + 8 borrowed).
    # res holds 2 H100 nodes and nothing on H200. A res job for 8 H200 GPUs: 0 + 8 <= 8, and
    # prod borrows there (16 > 8): one H200 victim (300), none on H100.
    st = _fleet([1] * 6, 2, prod_h200=2)
    assert _cycle(st, 8, True, flavors=(H200,)) == ([300], [1])
    # res already at its H200 nominal (one prod H200 node traded for a res one): 8 + 8 > 8,
    # so no reclaim on H200, however much prod borrows on H100.
    st2 = _fleet([1] * 6, 2, prod_h200=1)
    _run(st2, 500, [9], RES, LO)
    assert _cycle(st2, 8, True, flavors=(H200,)) == ([], [])


def test_equal_class_reclaim_is_the_old_rule_under_any() -> None:
    # Both queues production class. prod holds a 3-node gang (100) and a 2-node gang (101): 40,
    # borrowing 8. res holds node 5 (8), nodes 6-7 are free; res asks for 24 (3 nodes): 8 + 24
    # = 32, within its nominal; one more node is needed. Same-class reclaim needs only that prod
    # borrows before the eviction, in both modes: the cheaper gang, 101 (16 GPUs), goes,
    # though prod then holds 24 < 32.
    for any_mode in (False, True):
        st = _fleet([3, 2], 1, res_prio=HI)
        assert _cycle(st, 24, any_mode, prio=HI) == ([101], [1])


def test_the_profiles() -> None:
    # The first scenario above, where cross-class reclaim evicts prod's job 100: the hetero
    # profiles take it back (a queue's nominal quota is a guarantee there), priority does not.
    for name, want in (("priority", ([], [])), ("hetero", ([100], [1])),
                       ("hetero-class", ([100], [1]))):  # fmt: skip
        pre = policies(name).preemption
        assert _cycle(_fleet([1] * 6, 2), 8, True, pre=pre) == want, name


def test_cross_class_reclaim_does_not_flip_back_by_priority() -> None:
    # res (within its nominal) reclaims 8 GPUs from prod (borrowing 16): job 100 goes.
    assert _cycle(_fleet([1] * 6, 2), 8, True) == ([100], [1])
    # prod's job comes back for 8 GPUs: prod 40 + 8 > 32 still borrows, so it may not reclaim;
    # res holds 24, within its 32, so its jobs are no other queue's victims whatever their
    # class (Kueue's cqIsBorrowing): the job waits and the reclaim stands.
    assert _cycle(_fleet([1] * 5, 3), 8, True, prio=HI, team=PROD) == ([], [])
    # Without the guarantee (the priority profile's rule) it evicts res's job 200 back.
    assert _cycle(_fleet([1] * 5, 3), 8, False, prio=HI, team=PROD) == ([200], [1])


def test_a_queue_within_its_nominal_is_no_other_queues_victim() -> None:
    # prod 4 single-node jobs (32, its nominal), res 4 (32, its nominal): full, nobody borrows.
    # A production job of prod for 8 preempts no one under the guarantee, one res job (200,
    # the lowest id of the equal cheapest) under the old rule.
    st = _fleet([1] * 4, 4)
    assert _cycle(st, 8, True, prio=HI, team=PROD) == ([], [])
    assert _cycle(st, 8, False, prio=HI, team=PROD) == ([200], [1])
    # res 5 (40, borrowing 8), prod 3, full: res borrows, so one of its jobs may go (200).
    st2 = _fleet([1] * 3, 5)
    assert _cycle(st2, 8, True, prio=HI, team=PROD) == ([200], [1])
    # For 16 GPUs two res jobs would go: res borrows before the first (40 > 32) but not
    # before the second (32): Kueue stops taking from a queue once it no longer borrows.
    assert _cycle(st2, 16, True, prio=HI, team=PROD) == ([], [])
    # prod's own lower class stays a victim: prod holds 3 research-class jobs, res 5.
    st3, _, _ = testkit.setup_cycle(FLEET, teams=("prod", "res"))
    for i in range(3):
        _run(st3, 100 + i, [i], PROD, LO)
    for i in range(5):
        _run(st3, 200 + i, [3 + i], RES, LO)
    assert _cycle(st3, 16, True, prio=HI, team=PROD) == ([100, 101], [1])


def test_admits_lower_class_set() -> None:
    # The set check for lower-class victims of another queue: res holds 5 nodes (40, nominal
    # 32). Two of its 8-GPU jobs: 40 - 16 + 8 = 32, not borrowing before the second: refused;
    # one: 40 - 8 + 8 = 40 > 32: allowed. A hand-made variant that checks after the last
    # victim (40 - 8 = 32, not > 32) would refuse the single one too.
    st = _fleet([1] * 3, 5)
    pol = PriorityReclaim(reclaim_any=True)
    snap = Snapshot(0.0, st, testkit.setup_cycle(FLEET, teams=("prod", "res"))[1],
                    lambda kind, f: 1.0, lambda j, f, g: 1.0)  # fmt: skip
    job = Job(1, "p1", "prod", 16, 1000.0)
    job.queue_idx, job.priority = PROD, HI
    a, b = st.running[200], st.running[201]
    assert pol.eligible(snap, job, a) and pol.eligible(snap, job, b)
    assert pol.admits(snap, job, [a]) and not pol.admits(snap, job, [a, b])
    # prod's own jobs are not counted: a prod job with res's is judged by res's alone.
    own = st.running[100]
    own.priority = LO
    assert pol.admits(snap, job, [own, a])


def test_the_search_passes_over_a_guaranteed_queue() -> None:
    # res holds nodes 0-3 (32, its nominal), prod nodes 4-7, all research class. prod's
    # production job for 8 takes its own queue's job (100), not res's 200 on the first node:
    # the search skips victims whose queue does not borrow, rather than finding a set the
    # set check then refuses (the job would wait).
    st, _, _ = testkit.setup_cycle(FLEET, teams=("prod", "res"))
    for i in range(4):
        _run(st, 200 + i, [i], RES, LO)
        _run(st, 100 + i, [4 + i], PROD, LO)
    assert _cycle(st, 8, True, prio=HI, team=PROD) == ([100], [1])
