"""Victims chosen by the work they lose (issue 14): within the priority rules, GPUs times what a
preemption now costs each (`Snapshot.lost_s`), then GPUs. The cost rule is one function
(workload/preempt_rule.py `cost_s`) that the twin and the control plane both call."""

from __future__ import annotations

import pytest

import testkit
from cortex.control.preemptions import lost_s
from cortex.scheduler.preemption import PriorityReclaim
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.victims import find_victims
from cortex.workload.job import Job
from cortex.workload.preempt_rule import cost_s

NOW = 10_000.0


def _snap(st, lost: dict[int, float] | None) -> Snapshot:  # type: ignore[no-untyped-def]
    _, pend, _ = testkit.setup_cycle()
    fn = None if lost is None else (lambda j: lost[j.id])
    return Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0, lost_s=fn)


def _snap_fn(st, fn) -> Snapshot:  # type: ignore[no-untyped-def]
    _, pend, _ = testkit.setup_cycle(st.topo)
    return Snapshot(NOW, st, pend, lambda k, f: 1.0, lambda j, f, g: 1.0, lost_s=fn)


def _preemptor(gpus: int) -> Job:
    job = Job(99, "p", "a", gpus, 10.0)
    job.queue_idx, job.priority = 0, 1000
    return job


def test_on_one_node_the_victim_that_loses_least_goes_even_when_larger() -> None:
    # Node 0: job 1 holds 2 GPUs, unsaved for 3,000 s (6,000 GPU-s at stake); job 2 holds 4,
    # checkpointed 100 s ago (400 GPU-s). Node 0 has 2 GPUs free; a 4-GPU job needs one of them.
    st, _, _ = testkit.setup_cycle()
    for n in range(1, 8):
        testkit.running_job(st, 10 + n, ((n, 8),), prio=1000)  # the other nodes: not victims
    testkit.running_job(st, 1, ((0, 2),), prio=10)
    testkit.running_job(st, 2, ((0, 4),), prio=10)
    pol = PriorityReclaim()
    lost = {1: 3000.0, 2: 100.0}
    assert find_victims(_snap(st, lost), pol, 4, 0, _preemptor(4)) == [2]
    # Without a cost of lost work the fewest GPUs win, as before: job 1 (2 GPUs).
    assert find_victims(_snap(st, None), pol, 4, 0, _preemptor(4)) == [1]
    # Priority first: a lower class goes before any cost.
    st.running[2].priority = 5
    assert find_victims(_snap(st, {1: 0.0, 2: 1e6}), pol, 4, 0, _preemptor(4)) == [2]


def test_in_a_pod_the_gang_that_just_checkpointed_goes_first() -> None:
    # Pod 0 (nodes 0-3): a 2-node gang (16 GPUs) on nodes 0-1 that checkpointed 60 s ago
    # (16 x 60 = 960 GPU-s), and two 8-GPU jobs on nodes 2 and 3 unsaved for 600 s (4,800 GPU-s
    # each). Pod 1 is held by production work. A 2-node gang evicts the 16-GPU gang (960) rather
    # than the two single nodes (9,600), though it frees the same nodes for more GPUs.
    st, _, _ = testkit.setup_cycle()
    for n in range(4, 8):
        testkit.running_job(st, 10 + n, ((n, 8),), prio=1000)
    testkit.running_job(st, 1, ((0, 8), (1, 8)), prio=10)
    testkit.running_job(st, 2, ((2, 8),), prio=10)
    testkit.running_job(st, 3, ((3, 8),), prio=10)
    pol = PriorityReclaim()
    lost = {1: 60.0, 2: 600.0, 3: 600.0}
    assert find_victims(_snap(st, lost), pol, 16, 0, _preemptor(16)) == [1]
    assert sorted(find_victims(_snap(st, None), pol, 16, 0, _preemptor(16)) or []) == [2, 3]


@pytest.mark.parametrize(
    ("done", "saved", "on_signal", "want"),
    [
        # Checkpoints on the signal within the 30 s grace: only the 20 s write.
        (1000.0, 400.0, True, 20.0),
        # Cannot: the 600 s since the checkpoint are lost.
        (1000.0, 400.0, False, 600.0),
        # Nothing new since the checkpoint: nothing.
        (400.0, 400.0, True, 0.0),
        # A 40 s write that outlasts the 30 s grace: SIGKILL mid-write, the 600 s are lost and
        # the devices were held the whole grace.
        (1000.0, 400.0, True, 600.0 + 30.0),
    ],
)
def test_the_cost_rule(done: float, saved: float, on_signal: bool, want: float) -> None:
    write = 40.0 if want == 630.0 else 20.0
    assert cost_s(done, saved, write, 30.0, on_signal) == want


def test_the_control_planes_cost_reads_the_newest_checkpoint_of_this_run() -> None:
    job = Job(1, "j", "a", 8, 100.0, ckpt_write_s=40.0, ckpt_on_signal=False)
    job.run_start_s = 1_000.0
    # Checkpointed at 1,500: 2,000 - 1,500 = 500 s lost; none known: all 1,000 s of this run;
    # a checkpoint from before this run saved nothing of it.
    assert lost_s(job, 2_000.0, 1_500.0, 30.0) == 500.0
    assert lost_s(job, 2_000.0, None, 30.0) == 1_000.0
    assert lost_s(job, 2_000.0, 900.0, 30.0) == 1_000.0
    # Its 40 s write does not fit a 30 s grace even on the signal: the 500 s are lost and the
    # devices were held the whole 30 s grace (500 + 30); a 60 s grace takes the write instead.
    job.ckpt_on_signal = True
    assert lost_s(job, 2_000.0, 1_500.0, 30.0) == 530.0
    assert lost_s(job, 2_000.0, 1_500.0, 60.0) == 40.0


def test_the_twin_and_the_control_plane_cost_a_victim_alike() -> None:
    # Node 0 (full): job 1 holds 2 GPUs with 100 s unsaved, job 2 holds 6 with 10 s unsaved;
    # both checkpoint every 1,000 s (a 20 s write), neither on SIGTERM. The twin (its run
    # clock) and the control plane (the checkpoint time from the metrics file) must both cost
    # 2 x 100 = 200 against 6 x 10 = 60 GPU-s and evict job 2.
    from types import SimpleNamespace

    from cortex.drive.runs import rules
    from cortex.sim.runs import RunBooks

    st, _, _ = testkit.setup_cycle()
    for n in range(1, 8):
        testkit.running_job(st, 10 + n, ((n, 8),), prio=1000)
    testkit.running_job(st, 1, ((0, 2),), prio=10)
    testkit.running_job(st, 2, ((0, 6),), prio=10)
    elapsed = {1: 1_000 + 20 + 100.0, 2: 1_000 + 20 + 10.0}  # one period and its write, then
    for jid in (1, 2):
        v = st.running[jid]
        v.ckpt_on_signal, v.ckpt_write_s, v.run_tau_s, v.run_overhead_s = False, 20.0, 1000.0, 0.0
        v.run_start_s = NOW - elapsed[jid]
    grace_s = rules("twin").preempt_grace_s
    books = SimpleNamespace(_run_elapsed=lambda j: elapsed[j.id], grace_s=grace_s)

    def twin(j: Job) -> float:
        return RunBooks._lost_s(books, j)  # type: ignore[arg-type]

    def control(j: Job) -> float:
        return lost_s(j, NOW, j.run_start_s + 1_020.0, grace_s)

    assert [twin(st.running[j]) for j in (1, 2)] == [100.0, 10.0]
    assert [control(st.running[j]) for j in (1, 2)] == [100.0, 10.0]
    pol = PriorityReclaim()
    for fn in (twin, control):
        assert find_victims(_snap_fn(st, fn), pol, 2, 0, _preemptor(2)) == [2]


def test_the_cheapest_victim_is_found_past_the_first_16_candidate_nodes() -> None:
    # 20 full nodes, one 8-GPU job each, one priority: jobs 0-18 have an hour unsaved, job 19
    # checkpointed a moment ago. Node summaries cannot tell them apart (same priority, same
    # GPUs in use), so the search must compare more than the 16 nodes it compares without a
    # lost-work cost.
    from cortex.fleet.spec import parse_fleet
    from cortex.fleet.topology import build

    topo = build(
        parse_fleet(
            {
                "name": "twenty",
                "halls": [{"name": "h", "groups": [{"flavor": "H100-SXM5", "nodes": 20}]}],
            },
            "test",
        )
    )
    st, _, _ = testkit.setup_cycle(topo)
    for n in range(20):
        testkit.running_job(st, n, ((n, 8),), prio=10)
    lost = dict.fromkeys(range(19), 3600.0) | {19: 0.0}
    got = find_victims(_snap_fn(st, lambda j: lost[j.id]), PriorityReclaim(), 8, 0, _preemptor(8))
    assert got == [19]


def test_a_nan_cost_counts_as_nothing_lost_and_does_not_break_the_order() -> None:
    st, _, _ = testkit.setup_cycle()
    for n in range(1, 8):
        testkit.running_job(st, 10 + n, ((n, 8),), prio=1000)
    testkit.running_job(st, 1, ((0, 4),), prio=10)
    testkit.running_job(st, 2, ((0, 4),), prio=10)
    lost = {1: float("nan"), 2: 10.0}
    got = find_victims(_snap_fn(st, lambda j: lost[j.id]), PriorityReclaim(), 4, 0, _preemptor(4))
    assert got == [1]  # NaN -> 0 GPU-s, under 4 x 10


def test_nan_and_negative_costs_count_as_nothing_lost_in_either_node_order() -> None:
    """lost_gpu_s clamps at 0 (issue 16: `lost if lost > 0.0 else 0.0` -> `lost` survived, as
    the NaN job came first on its node, where an unsorted list is already in order)."""
    st, _, _ = testkit.setup_cycle()
    for n in range(2, 8):
        testkit.running_job(st, 10 + n, ((n, 8),), prio=1000)
    # Node 0: job 2 (4 GPUs, 10 s unsaved: 4 x 10 = 40 GPU-s) placed before job 1 (NaN -> 0).
    testkit.running_job(st, 2, ((0, 4),), prio=10)
    testkit.running_job(st, 1, ((0, 4),), prio=10)
    # Node 1: job 3 (4 GPUs, -50 s: a checkpoint stamped after now -> 0) and job 4 (2 GPUs,
    # 0 s), 2 GPUs free. A 4-GPU job there needs one of them: both lose 0, the 2 GPUs decide.
    testkit.running_job(st, 3, ((1, 4),), prio=10)
    testkit.running_job(st, 4, ((1, 2),), prio=10)
    lost = {1: float("nan"), 2: 10.0, 3: -50.0, 4: 0.0}
    snap = _snap_fn(st, lambda j: lost[j.id])
    # Node 0: (10, 0, 4) for job 1; node 1: (10, 0, 2) for job 4: node 1's is cheaper.
    assert find_victims(snap, PriorityReclaim(), 4, 0, _preemptor(4)) == [4]
    # An 8-GPU job: node 0 loses both, (10, 0 + 40, 8); node 1 loses job 4 (2 free + 2 = 4 < 8)
    # and job 3 (8), (10, 0, 6): node 1 still loses less.
    assert find_victims(snap, PriorityReclaim(), 8, 0, _preemptor(8)) == [4, 3]


def test_a_second_unsaved_counts_and_an_unknown_cost_is_zero_not_one() -> None:
    """The clamp's bounds (issue 16: `lost > 1.0` and `else 1.0` survived)."""
    st, _, _ = testkit.setup_cycle()
    for n in range(1, 8):
        testkit.running_job(st, 10 + n, ((n, 8),), prio=1000)
    testkit.running_job(st, 1, ((0, 4),), prio=10)  # node 0: 4 + 2 held, 2 free: a 4-GPU job
    testkit.running_job(st, 2, ((0, 2),), prio=10)  # needs one of them gone
    # Job 1: 4 x 0 = 0 GPU-s; job 2: 2 x 1 s = 2 GPU-s: job 1 goes, though larger.
    snap = _snap_fn(st, lambda j: {1: 0.0, 2: 1.0}[j.id])
    assert find_victims(snap, PriorityReclaim(), 4, 0, _preemptor(4)) == [1]
    # Job 1's cost unknown (NaN): 0, not 4 x 1 = 4, so still under job 2's 2 GPU-s.
    snap = _snap_fn(st, lambda j: {1: float("nan"), 2: 1.0}[j.id])
    assert find_victims(snap, PriorityReclaim(), 4, 0, _preemptor(4)) == [1]


def test_a_pods_bound_sums_only_the_need_least_used_nodes() -> None:
    """_in_one_pod's lower bound on GPUs (issue 16: `rank < need` -> `<=` survived): one node
    too many in the sum lifts a cheap pod's bound to the best so far, and the visit ends
    before it."""
    st, _, _ = testkit.setup_cycle()  # tiny: pods of nodes 0-3 and 4-7, 8 GPUs a node
    for n in (2, 3, 7):
        st.set_down(n)  # out of service: pod 0 has candidates 0, 1; pod 1 has 4, 5, 6
    testkit.running_job(st, 20, ((0, 8),), prio=10)
    testkit.running_job(st, 21, ((1, 8),), prio=10)
    testkit.running_job(st, 24, ((4, 4),), prio=10)
    testkit.running_job(st, 25, ((5, 4),), prio=10)
    testkit.running_job(st, 26, ((6, 8),), prio=10)
    # A 16-GPU job needs 2 whole nodes of one pod. Pod 0: evict 20 and 21, cost (10, 0, 16),
    # bound 8 + 8 = 16. Pod 1: evict 24 and 25, cost (10, 0, 8), bound 4 + 4 = 8 (not
    # 4 + 4 + 8 = 16, which would tie pod 0 and let pod 0, first in order, end the visit).
    snap = _snap_fn(st, None)
    assert find_victims(snap, PriorityReclaim(), 16, 0, _preemptor(16)) == [24, 25]


def test_of_two_pods_that_cost_the_same_the_first_in_order_is_kept() -> None:
    """_in_one_pod's bound on priority is the need-th lowest top priority of a pod (issue 16:
    the (need - 1)-th survived): a lower bound visits pod 1 first and keeps it on the tie."""
    st, _, _ = testkit.setup_cycle()  # tiny: pods of nodes 0-3 and 4-7
    for n in (2, 3, 6, 7):
        st.set_down(n)
    testkit.running_job(st, 30, ((0, 8),), prio=100)
    testkit.running_job(st, 31, ((1, 8),), prio=100)
    testkit.running_job(st, 34, ((4, 8),), prio=10)
    testkit.running_job(st, 35, ((5, 8),), prio=100)
    # Both pods cost (100, 0, 16) and bound at (100, 16): the 2nd lowest top priority of
    # [100, 100] and of [10, 100] is 100. Pod 0 is visited first and pod 1's equal bound ends
    # the visit (only a strictly lower cost replaces the best).
    snap = _snap_fn(st, None)
    assert find_victims(snap, PriorityReclaim(), 16, 0, _preemptor(16)) == [30, 31]
