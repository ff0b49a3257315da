"""A cordoned node (a drain waiting for its jobs to end) takes no new work: its free GPUs leave
the free indices, what its jobs free stays out, no victim search evicts to make room there,
and uncordon or set_down puts the books straight (ClusterState.cordon)."""

from __future__ import annotations

import test_cycle as tc

import testkit
from cortex.scheduler.cycle import schedule
from cortex.scheduler.statement import Statement


def test_a_cordoned_node_keeps_what_its_jobs_free_out_of_service_until_uncordoned() -> None:
    st, _, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 H100
    total = st.free_gpus[0]
    job = testkit.running_job(st, 1, ((0, 4),))
    st.cordon(0)
    # 64 - 4 held - the 4 left free on node 0, held out: 56 free, node 0 in no index.
    assert (st.free_gpus[0], st.node_free[0], st.cordoned) == (total - 8, 0, {0: 4})
    assert 0 not in st.part[0][4] and st.np_up[0] == False  # noqa: E712 (numpy bool)
    st.stop(job, 0)
    assert (st.free_gpus[0], st.cordoned) == (total - 8, {0: 8})  # its 4 stay out
    st.uncordon(0)
    assert (st.free_gpus[0], st.node_free[0], st.cordoned) == (total, 8, {})
    assert st.free_whole_nodes(0) == 8 and bool(st.np_up[0])


def test_set_down_and_set_up_from_a_cordon() -> None:
    st, _, _ = testkit.setup_cycle()
    total = st.free_gpus[0]
    job = testkit.running_job(st, 1, ((0, 4),))
    st.cordon(0)
    st.stop(job, 0)
    st.set_down(0)  # the drain completes: out of service, 56 GPUs free and up
    assert (st.free_gpus[0], st.up_gpus[0], st.cordoned) == (total - 8, total - 8, {})
    st.set_up(0)
    assert (st.free_gpus[0], st.up_gpus[0], st.node_free[0]) == (total, total, 8)


def test_a_rolled_back_eviction_on_a_cordoned_node_restores_the_state_exactly() -> None:
    st, _, _ = testkit.setup_cycle()
    job = testkit.running_job(st, 1, ((0, 4), (1, 8)))
    st.cordon(0)
    before = testkit.state_contents(st)
    stmt = Statement(st)
    stmt.evict(job)
    assert st.cordoned == {0: 8}
    stmt.rollback()
    assert testkit.state_contents(st) == before


def test_no_job_starts_on_a_cordoned_node_and_no_victim_there_is_evicted() -> None:
    st, pend, pol = tc._setup()  # FIFO, PriorityReclaim
    tc._run(st, 101, ((0, 8), (1, 8), (2, 8), (3, 8)), end=1000.0)
    tc._run(st, 102, ((4, 4),), end=5000.0, prio=10)  # preemptible, on the node to cordon
    tc._run(st, 103, ((5, 8), (6, 8), (7, 8)), end=5000.0)
    tc._pend(pend, 2, 4, 5000.0)  # fits node 4's 4 free GPUs
    st.cordon(4)
    plan = schedule(tc._snap(st, pend, now=700.0), pol)
    assert plan.starts == [] and plan.preemptions == []
    # Production needing node 4 whole: evicting 102 would free it, but 4 is cordoned.
    tc._pend(pend, 3, 8, 5000.0, prio=1000)
    plan = schedule(tc._snap(st, pend, now=700.0), pol)
    assert plan.starts == [] and plan.preemptions == []
    st.uncordon(4)  # the control: the same passes start job 2 on node 4's free half
    plan = schedule(tc._snap(st, pend, now=700.0), pol)
    assert [(s.job.id, s.placement) for s in plan.starts][:1] == [(2, ((4, 4),))]


def test_a_second_cordon_and_a_cordon_of_a_down_node_change_nothing() -> None:
    """cordon's guard (issue 16: `or` -> `and` survived): a node already cordoned keeps the
    GPUs it held out, and a node out of service is not cordoned."""
    st, _, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, 64 free
    testkit.running_job(st, 1, ((0, 4),))
    st.cordon(0)
    st.cordon(0)  # again: node 0's 4 free GPUs stay held out, not 0
    assert (st.free_gpus[0], st.cordoned) == (64 - 4 - 4, {0: 4})
    st.set_down(3)  # idle node 3 leaves service: 56 - 8 = 48 free
    st.cordon(3)  # a down node has nothing to hold out: no entry, no GPUs taken twice
    assert (st.free_gpus[0], st.cordoned, bool(st.np_up[3])) == (48, {0: 4}, False)
    st.set_up(3)  # back: 48 + 8 = 56, and node 3 takes work (whole and free)
    assert (st.free_gpus[0], st.node_free[3], st.cordoned) == (56, 8, {0: 4})


def test_a_gang_stopping_on_two_cordoned_nodes_frees_nothing_until_they_are_uncordoned() -> None:
    """give sums what it holds out over every cordoned node (issue 16: `held_out += k` -> `=`
    survived: no test stopped a job on two cordoned nodes)."""
    st, _, _ = testkit.setup_cycle()  # tiny: 8 nodes of 8 GPUs, 64 free
    job = testkit.running_job(st, 1, ((0, 4), (1, 4)))  # 64 - 8 = 56 free
    st.cordon(0)
    st.cordon(1)  # 4 + 4 free held out: 48
    st.stop(job, 0)  # its 4 + 4 stay out too: still 48
    assert (st.free_gpus[0], st.cordoned) == (48, {0: 8, 1: 8})
    st.uncordon(0)
    st.uncordon(1)
    assert (st.free_gpus[0], st.free_whole_nodes(0)) == (64, 8)


def test_a_rolled_back_eviction_of_a_gang_on_two_cordoned_nodes_restores_each_count() -> None:
    """take on cordoned nodes (a rollback putting a victim back; issue 16: `cordoned[n] -= k`,
    `total += k` and `held_out += k` with `=` survived: the victim above spans one cordoned
    node whose held-out count equals its GPUs there)."""
    st, _, _ = testkit.setup_cycle()  # tiny: 64 GPUs
    job = testkit.running_job(st, 1, ((0, 2), (1, 8)))  # 64 - 10 = 54 free
    st.cordon(0)  # node 0's 6 free held out: 48
    st.cordon(1)  # node 1 has none free
    before = testkit.state_contents(st)
    stmt = Statement(st)
    stmt.evict(job)  # node 0 holds out 6 + 2 = 8, node 1 8; still 48 free
    assert (st.cordoned, st.free_gpus[0]) == ({0: 8, 1: 8}, 48)
    stmt.rollback()  # 2 + 8 = 10 GPUs taken back, all from held-out GPUs: 48 free
    assert (st.cordoned, st.free_gpus[0], st.allocations[1].gpus) == ({0: 6, 1: 0}, 48, 10)
    assert testkit.state_contents(st) == before
