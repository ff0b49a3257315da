"""Victim-search paths the other victim tests pass through without pinning down: a job with id 0
as the only victim, a node shared by several victims inside a multi-node gang's pod, a job
under its minimum runtime, and ties between equally cheap nodes. Fleet
`tiny` as in test_victims.py (nodes 0-3 pod 0, 4-7 pod 1; unused nodes run production jobs)."""

from __future__ import annotations

import test_victims as tv


def test_a_job_with_id_0_is_a_victim_like_any_other() -> None:
    # Pod 1: job 0 (preemptible) holds nodes 4-7 whole. A production gang of 32 GPUs needs
    # 4 whole nodes: pod 0 runs production jobs, so job 0 is the one victim.
    st, pend = tv._state({4, 5, 6, 7})
    tv._run(st, 0, ((4, 8), (5, 8), (6, 8), (7, 8)), prio=tv.LOW)
    assert tv._victims(st, pend, 32) == [0]


def test_a_node_shared_by_victims_counts_for_a_multi_node_gang() -> None:
    # Pod 1: node 4 shared by jobs 20 and 21 (4 GPUs each, preemptible), node 5 by job 22
    # (preemptible, whole), nodes 6 and 7 free. A production gang of 32 GPUs needs nodes 4-7:
    # all three jobs go, and node 4 is free only once both of its jobs are.
    st, pend = tv._state({4, 5, 6, 7})
    tv._run(st, 20, ((4, 4),), prio=tv.LOW)
    tv._run(st, 21, ((4, 4),), prio=tv.LOW)
    tv._run(st, 22, ((5, 8),), prio=tv.LOW)
    got = tv._victims(st, pend, 32)
    assert got is not None and sorted(got) == [20, 21, 22]


def test_a_job_under_its_minimum_runtime_is_passed_over_for_a_costlier_one() -> None:
    # Node 0: job 30 (preemptible) started 100 s before now, under the 600 s minimum runtime:
    # not a victim, though the cheapest. Node 1: job 31 (normal, whole node): it goes.
    st, pend = tv._state({0, 1})
    tv._run(st, 30, ((0, 8),), prio=tv.LOW, start=-100.0)
    tv._run(st, 31, ((1, 8),), prio=tv.NORMAL)
    assert tv._victims(st, pend, 8) == [31]


def test_equally_cheap_victims_in_a_pod_go_by_node_not_by_job_id() -> None:
    # Pod 1: nodes 4, 5, 6 each run one preemptible job of 8 GPUs, ids 200, 150, 170; node 7
    # runs production. A production gang of 16 needs 2 nodes of pod 1 (pod 0 is production):
    # all three cost (10, 8), so the lowest nodes go, 4 and 5: jobs 200 and 150.
    st, pend = tv._state({4, 5, 6})
    tv._run(st, 200, ((4, 8),), prio=tv.LOW)
    tv._run(st, 150, ((5, 8),), prio=tv.LOW)
    tv._run(st, 170, ((6, 8),), prio=tv.LOW)
    got = tv._victims(st, pend, 16)
    assert got is not None and sorted(got) == [150, 200]
