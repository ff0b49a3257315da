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
        # Checkpoints on the signal within the 30 s grace: only the 20 s write, plus restart 60.
        (1000.0, 400.0, True, 20.0 + 60.0),
        # Cannot: the 600 s since the checkpoint are lost, plus restart.
        (1000.0, 400.0, False, 600.0 + 60.0),
        # Nothing new since the checkpoint: only the restart.
        (400.0, 400.0, True, 60.0),
    ],
)
def test_the_cost_rule(done: float, saved: float, on_signal: bool, want: float) -> None:
    assert cost_s(done, saved, 20.0, 30.0, on_signal, 60.0) == want


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
