"""The Ray executor's fleet membership (membership.py) over scripted `ray.nodes()` answers, no
cluster: the order is kept across reads and restarts (device ids are positions in it), nodes
that join are appended, nodes dead at a restart keep their places, and odd nodes are left out
with a logged reason, never a crash. And the head-loss logic (headloss.py) on a closed port."""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from cortex.executors.ray import membership
from cortex.executors.ray.executor import RayExecutor
from cortex.executors.ray.runs import Gang
from cortex.executors.spec import ExitRecord, GangHandle


def raw(node_id: str, name: str | None, alive: bool = True, gpus: float = 8) -> dict[str, Any]:
    labels = {"cortex.node": name, "cortex.pod": "p1"} if name else {}
    return {
        "NodeID": node_id,
        "Alive": alive,
        "NodeManagerAddress": "127.0.0.9",
        "Resources": {"CPU": 4.0, "GPU": gpus} if alive else {},
        "Labels": labels,
    }


class Cluster:
    """What ray.nodes() answers, as the test sets it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.nodes: list[dict[str, Any]] = []
        monkeypatch.setattr(membership.ray, "nodes", lambda: list(self.nodes))


def executor(root: Path) -> RayExecutor:
    # No address: no head to probe; ray.nodes() is scripted, nothing else of Ray is called.
    ex = RayExecutor(root, None, connect=False)
    ex.connected = True
    return ex


def test_the_order_holds_as_nodes_join_and_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = Cluster(monkeypatch)
    ray.nodes = [raw("r1", "m1"), raw("r2", "z1")]
    ex = executor(tmp_path)
    assert ex.discover().names == ["m1", "z1"]  # the first read sorts
    v = ex.fleet_version
    ray.nodes.append(raw("r3", "a1"))  # joins at runtime: sorted first, but appended
    assert ex.node_changes(force=True) == []
    assert ex.fleet_version == v + 1
    fleet = ex.current_fleet()
    assert fleet is not None and fleet.names == ["m1", "z1", "a1"]
    assert fleet.devices == list(range(24))  # a1's GPUs are 16-23; m1's stay 0-7
    # A restart with every node alive: the saved order, not a fresh sort (a1, m1, z1), so the
    # devices an adopted gang stored still name the same nodes.
    again = executor(tmp_path)
    assert again.discover().names == ["m1", "z1", "a1"]
    # A restart with m1 dead: it keeps its place, down (a fresh read would shift every id).
    ray.nodes = [raw("r1", "m1", alive=False), raw("r2", "z1"), raw("r3", "a1")]
    third = executor(tmp_path)
    assert third.discover().names == ["m1", "z1", "a1"]
    assert third.node_changes(force=True) == [("m1", False)]
    ray.nodes[0] = raw("r9", "m1")  # back under a new Ray id
    assert third.node_changes(force=True) == [("m1", True)]


def test_odd_nodes_are_left_out_with_a_logged_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ray = Cluster(monkeypatch)
    ray.nodes = [raw("h", None, gpus=0), raw("r1", "n1")]
    ex = executor(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert ex.discover().names == ["n1"]
        v = ex.fleet_version
        # Joining: an unlabelled node, and a node whose flavor the fleet has with 8 GPUs.
        ray.nodes += [raw("u", None), raw("r2", "n2", gpus=4)]
        ex.node_changes(force=True)
        # n1 back with another shape: its place is an 8-GPU node's, so it stays down.
        ray.nodes[1] = raw("r5", "n1", gpus=4)
        changes = ex.node_changes(force=True)
    assert ex.fleet_version == v and changes == [("n1", False)]
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "left out of the fleet: no cortex.node label" in log
    assert "node n2: 4 GPUs, but its flavor H100-SXM5 has 8 in the fleet" in log
    assert "node n1: back with 4 x H100-SXM5, its place in the fleet is 8 x H100-SXM5" in log


def test_no_usable_node_is_no_fleet_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ray = Cluster(monkeypatch)
    ray.nodes = [raw("h", None, gpus=0)]
    ex = executor(tmp_path)
    assert ex.current_fleet() is None
    with pytest.raises(ValueError, match="no usable node"):
        ex.discover()
    ray.nodes.append(raw("r1", "n1"))
    ex._fleet_read = float("-inf")  # the next read is due
    fleet = ex.current_fleet()
    assert fleet is not None and fleet.names == ["n1"] and ex.fleet_version == 1


def test_nodes_ray_drains_or_that_left_on_purpose_are_planned_removals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = Cluster(monkeypatch)
    draining: dict[str, int] = {}
    monkeypatch.setattr(membership, "_draining_nodes", lambda: dict(draining))
    ray.nodes = [raw("r1", "n1"), raw("r2", "n2"), raw("r3", "n3")]
    ex = executor(tmp_path)
    ex.discover()
    assert ex.planned_removals() == {}
    # Ray drains n1 (no deadline) and n2 (2030-01-01T00:00:00Z), by Ray node id.
    draining.update({"r1": 0, "r2": 1_893_456_000_000, "r-gone": 0})
    assert ex.node_changes(force=True) == []  # draining nodes are still up
    assert ex.planned_removals() == {
        "n1": "being drained by Ray (no deadline)",
        "n2": "being drained by Ray (deadline 2030-01-01T00:00:00Z)",
    }
    assert ex.drain_deadlines() == {"n2": 1_893_456_000.0}  # n1's drain has no deadline
    # n1 goes (drained, Ray's reason 3), n3 crashes (reason 2): only n1 left on purpose.
    draining.clear()
    ray.nodes[0] = {**raw("r1", "n1", alive=False), "DeathReason": 3, "DeathReasonMessage": "m"}
    ray.nodes[2] = {**raw("r3", "n3", alive=False), "DeathReason": 2}
    assert sorted(ex.node_changes(force=True)) == [("n1", False), ("n3", False)]
    assert ex.planned_removals() == {"n1": "drained by Ray (preemption): m"}
    # n2 was draining when it died with no reason of Ray's: it keeps the drain's reason.
    draining["r2"] = 0
    ex.node_changes(force=True)
    draining.clear()
    ray.nodes[1] = raw("r2", "n2", alive=False)
    ex.node_changes(force=True)
    assert ex.planned_removals()["n2"] == "being drained by Ray (no deadline)"
    # Back under new ids and drained no more: nothing planned.
    ray.nodes = [raw("r7", "n1"), raw("r8", "n2"), raw("r9", "n3")]
    ex.node_changes(force=True)
    assert ex.planned_removals() == {}


def test_a_node_ray_drains_is_a_planned_removal_on_a_real_cluster(tmp_path: Path) -> None:
    """The draining table is read through an API Ray does not make public: checked here on a
    real one-node loopback cluster. The node is kept busy (an actor on it): Ray ends an idle
    node at once when it is drained."""
    import ray as real_ray
    from ray.core.generated.autoscaler_pb2 import DrainNodeReason
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    from raykit import LoopbackCluster

    class Busy:  # local: pickled by value (the workers cannot import this test module)
        def ping(self) -> int:
            return 1

    c = LoopbackCluster()
    try:
        c.add("node-a")
        c.cluster.wait_for_nodes()
        ex = RayExecutor(tmp_path, c.address)
        ex.discover()
        (ray_id,) = [n["NodeID"] for n in real_ray.nodes() if n["Labels"].get("cortex.node")]
        busy = real_ray.remote(num_cpus=1)(Busy).options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray_id, soft=False)
        )
        actor = busy.remote()
        assert real_ray.get(actor.ping.remote(), timeout=60) == 1
        deadline_ms = 1_893_456_000_000  # 2030-01-01T00:00:00Z
        gcs = real_ray._raylet.GcsClient(address=c.address)
        reason = DrainNodeReason.Value("DRAIN_NODE_REASON_PREEMPTION")
        assert gcs.drain_node(ray_id, reason, "rack maintenance", deadline_ms) == (True, "")
        assert ex.node_changes(force=True) == []  # still up: its actor runs on
        assert ex.planned_removals() == {
            "node-a": "being drained by Ray (deadline 2030-01-01T00:00:00Z)"
        }
        assert ex.drain_deadlines() == {"node-a": deadline_ms / 1e3}
    finally:
        c.shutdown()


def test_the_planned_death_reasons_are_rays() -> None:
    from ray.core.generated.common_pb2 import NodeDeathInfo

    from cortex.executors.ray.fleet import PLANNED_DEATHS

    names = {"EXPECTED_TERMINATION", "AUTOSCALER_DRAIN_PREEMPTED", "AUTOSCALER_DRAIN_IDLE"}
    assert set(PLANNED_DEATHS) == {NodeDeathInfo.Reason.Value(n) for n in names}
    assert "preemption" in PLANNED_DEATHS[NodeDeathInfo.Reason.Value("AUTOSCALER_DRAIN_PREEMPTED")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_lost_head_fails_every_gang_downs_every_node_and_reconnects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = Cluster(monkeypatch)
    ray.nodes = [raw("r1", "n1"), raw("r2", "n2")]
    ex = executor(tmp_path)
    ex.discover()
    ex.address = f"127.0.0.1:{_closed_port()}"  # the head's GCS port, closed: the head is gone
    handle = GangHandle(7, 2, "ray", "/r", "/r/o", "/r/e", (0,), {"agents": [], "pg": "x"})
    # A gang whose launch is still on the executor's worker thread (never done here).
    ex._gangs[(7, 2)] = Gang(handle=handle, parts=[], pg=None, phase="launching", launch=Future())
    # poll() starts the head's watcher thread; its verdict comes at a later poll().
    got: list[ExitRecord] = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        got = ex.poll()
        time.sleep(0.02)
    (rec,) = got
    assert (rec.job_id, rec.attempt, rec.outcome) == (7, 2, "failed")
    assert rec.detail.startswith(f"Ray head lost (cannot connect to {ex.address}")
    assert rec.cluster_lost  # blamed on the cluster: no retry spent (drive/runs.py judge_exit)
    assert not ex.connected and ex._gangs == {}
    assert sorted(ex.node_changes()) == [("n1", False), ("n2", False)]
    assert ex.poll() == []  # reported once
    torn: list[GangHandle] = []
    monkeypatch.setattr(ex, "_teardown", torn.append)
    joined: list[str] = []
    monkeypatch.setattr(ex, "_join", lambda: joined.append(threading.current_thread().name))
    assert ex._shutdown is not None
    ex._shutdown.join(30)
    ex._backoff.next_at = time.monotonic()  # the backoff's first delay (1 s) is over
    ex.address = None  # the head answers again
    deadline = time.monotonic() + 10
    while not ex.connected and time.monotonic() < deadline:
        assert ex.poll() == []
        time.sleep(0.02)
    assert ex.connected
    assert joined == ["ray-connect"]  # ray.init's part ran on a thread, never the tick's
    assert torn == [handle]  # what Ray may have kept of the failed attempt goes first
    assert sorted(ex.node_changes(force=True)) == [("n1", True), ("n2", True)]


def test_the_tick_never_waits_for_the_node_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    ray = Cluster(monkeypatch)
    ray.nodes = [raw("r1", "n1"), raw("r2", "n2")]
    ex = executor(tmp_path)
    ex.discover()
    callers: list[str] = []
    scripted = membership.ray.nodes

    def nodes() -> list[dict[str, Any]]:
        callers.append(threading.current_thread().name)
        return scripted()  # type: ignore[no-any-return]

    monkeypatch.setattr(membership.ray, "nodes", nodes)
    monkeypatch.setattr(membership.ray, "is_initialized", lambda: True)
    ray.nodes[1] = raw("r2", "n2", alive=False)
    got: list[tuple[str, bool]] = []
    deadline = time.monotonic() + 60  # generous: the reader thread runs every 0.5 s
    while not got and time.monotonic() < deadline:
        got = ex.node_changes()  # as the loop calls it, each tick
        time.sleep(0.05)
    ex.connected = False  # ends the reader thread
    assert got == [("n2", False)]
    assert callers and set(callers) == {"ray-nodes"}  # never the caller's thread


def test_a_gang_adopted_while_unreachable_and_gone_since_is_the_clusters_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gang adopted on trust at a restart (the cluster unreachable) that the cluster no
    longer holds, with no verdict left, is reported failed as the cluster's loss
    (`cluster_lost`): no retry of the job's is spent (drive/runs.py judge_exit, mend17)."""
    Cluster(monkeypatch)
    ex = executor(tmp_path)
    handle = GangHandle(9, 1, "ray", "/r", "/r/o", "/r/e", (0,), {"agents": [], "pg": "x"})
    ex._unverified[(9, 1)] = Gang(handle=handle, parts=[], pg=None, phase="running")
    monkeypatch.setattr(ex, "_reattach", lambda gang: False)
    torn: list[GangHandle] = []
    monkeypatch.setattr(ex, "_teardown", torn.append)
    (rec,) = ex._verify_adopted()
    assert (rec.job_id, rec.attempt, rec.outcome) == (9, 1, "failed")
    assert rec.cluster_lost and rec.detail == "lost while the Ray cluster was unreachable"
    assert torn == [handle] and ex._unverified == {}
