"""Hot spares (sim/spares.py): the pool, and a gang that swaps a spare in for a failed node,
with hand-computed completion times.

Cause 0 of the census (sim/data/failures.csv), "Faulty GPU": detect 10 s, recover 10 s, repair
10,800 s; restart overhead 600 s (sim/data/defaults.csv); standby speed-up 10.9 (ByteRobust,
sim/data/spares.csv). A run without checkpoints loses all its work to a failure.
"""

from __future__ import annotations

import pytest

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.state import ClusterState
from cortex.sim.books import books_gpu_s, categories
from cortex.sim.engine import FAILURE
from cortex.sim.failures import load_causes
from cortex.sim.spares import SparePool, swap_speedup
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job


def _topo(nodes_per_pod: int, pods: int = 1) -> Topology:
    group = {"flavor": "H100-SXM5", "nodes": nodes_per_pod * pods, "nodes_per_pod": nodes_per_pod}
    return build(parse_fleet({"name": "f", "halls": [{"name": "h", "groups": [group]}]}, "t"))


def test_the_pool_holds_swaps_and_refills() -> None:
    topo = _topo(4, pods=2)  # pods (0-3) and (4-7)
    state = ClusterState(topo, QueueConfig.build(topo.spec.queues, topo, ["t"]))
    pool = SparePool(1, topo)
    pool.hold(state)
    assert pool.spares == {0: {3}, 1: {7}} and state.up_gpus == [48]  # 8 nodes less 2
    # A gang on nodes 0 and 1 loses node 1: pod 0's spare (3) takes its place.
    assert pool.swap(state, ((0, 8), (1, 8)), 1, 100.0) == ((0, 8), (3, 8))
    assert state.node_up[3] and pool.spares[0] == set() and pool.swaps == 1
    assert pool.swap(state, ((0, 8), (3, 8)), 0, 200.0) is None  # pod 0 has none left
    state.set_down(1)  # node 1 failed (the twin takes it out of service)
    pool.repaired(state, 1, 300.0)  # refills pod 0's pool: stays out of service
    assert pool.spares[0] == {1} and not state.node_up[1]
    state.set_down(5)
    pool.repaired(state, 5, 300.0)  # pod 1's pool is full: back in service
    assert state.node_up[5]
    pool.close(400.0)
    # GPU-seconds held: node 3 for 100 s, node 7 for 400 s, node 1 from 300 s: 8 x 600.
    assert pool.gpu_s == 8 * (100 + 400 + 100)


def _run(nodes_per_pod: int, spares: int) -> tuple[Twin, Job]:
    job = Job(0, "gang", "t", 16, 10_000.0)
    tw = Twin(
        _topo(nodes_per_pod), [job], SimConfig(days=1, failures=False, hot_spares_per_pod=spares)
    )
    assert tw.speeds[("generic", 0)] == 1.0  # H100 is the reference: 10,000 s of work
    tw.engine.add(1000.0, FAILURE, FAILURE, 0, 0)  # node 0, under the gang, at t = 1,000 s
    return tw.run(), job


def test_a_gang_swaps_in_a_spare_instead_of_waiting_for_the_repair() -> None:
    c = load_causes()[0]
    assert (c.detect_s, c.recover_s, c.repair_s) == (10.0, 10.0, 10_800.0)
    # With a spare: restarts at once owing 10 + (10 + 600) / 10.9 = 65.963 s, from zero.
    tw, job = _run(nodes_per_pod=3, spares=1)
    owed = 10.0 + 610.0 / swap_speedup()
    assert job.end_s == pytest.approx(1000.0 + owed + 10_000.0)
    assert tw.gang_recover_s == [pytest.approx(owed)]
    assert tw.spares is not None and tw.spares.swaps == 1
    # The pool: node 2 until the swap at 1,000 s; node 0 from its repair at 11,800 s to the
    # end of the day: 8 x (1,000 + 74,600) GPU-s, booked as hot_spare, not down.
    assert tw.spares.gpu_s == pytest.approx(8 * (1000 + 86_400 - 11_800))
    books = books_gpu_s(tw)
    assert books["hot_spare"] == tw.spares.gpu_s
    assert sum(books[k] for k in categories(tw)) == pytest.approx(books["installed"], rel=1e-9)
    # Without: the two-node pod waits for node 0's repair (11,800 s), then owes 620 s.
    tw0, job0 = _run(nodes_per_pod=2, spares=0)
    assert job0.end_s == pytest.approx(11_800.0 + 620.0 + 10_000.0)
    assert tw0.gang_recover_s == [pytest.approx(10_800.0 + 620.0)]
    assert "hot_spare" not in books_gpu_s(tw0)


def test_negative_spares_name_the_field() -> None:
    with pytest.raises(ValueError, match="hot_spares_per_pod"):
        SimConfig(days=1, hot_spares_per_pod=-1)
