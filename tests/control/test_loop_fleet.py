"""The loop with an executor that owns a multi-node fleet (as the Ray executor does), against
the in-test fake executor: launches carry the placement node by node; a node the executor
loses goes down through the twin's failure transition at once (its free GPUs unschedulable)
and comes back through repair; nodes that join are added; with no fleet yet (a cluster
unreachable at the very first start) the API serves and jobs stay queued."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock
from fakeexec import FakeExecutor, Spec
from fastapi.testclient import TestClient
from helpers import ADMIN, job_body
from sqlalchemy import select

from cortex.control import models as m
from cortex.control.service import Service
from cortex.control.settings import Settings
from cortex.executors.nodes import ExecutorFleet, NodeInfo, build_fleet, pending_fleet

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class FleetExecutor(FakeExecutor):
    """The fake executor plus the fleet side: node changes the test scripts."""

    changes: list[tuple[str, bool]]

    def node_changes(self) -> list[tuple[str, bool]]:
        out, self.changes = self.changes, []
        return out


class GrowingExecutor(FleetExecutor):
    """Also a fleet that grows as the test says (the Ray executor's fleet_version and
    current_fleet, membership.py): None until the first node."""

    fleet_version = 0
    nodes: list[NodeInfo]
    polls = 0

    def join(self, *names: str, pod: str = "p1") -> None:
        self.nodes = [*self.nodes, *(NodeInfo(n, "H100-SXM5", 8, pod, n) for n in names)]
        self.fleet_version += 1

    def current_fleet(self) -> ExecutorFleet | None:
        return build_fleet(self.nodes, name="ray", keep_order=True) if self.nodes else None

    def poll(self) -> list[Any]:
        self.polls += 1
        return super().poll()


def _service(
    tmp_path: Path, ex: Any, fleet: Any, clock: Any = None, **settings_kw: Any
) -> tuple[Service, TestClient, dict[str, str]]:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        admin_token=ADMIN,
        min_runtime_s=0.0,
        max_retries=1,
        **settings_kw,
    )
    svc = Service(
        settings,
        executor=ex,
        inventory=fleet,
        node_name="ray",
        launch_spec=Spec,
        handle_from_dict=lambda d: d,
        **({"clock": clock} if clock is not None else {}),
    )
    svc.loop.retry_backoff_base_s = 0.0
    client = TestClient(svc.app)
    token = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    return svc, client, {"Authorization": f"Bearer {token}"}


def test_nodes_go_down_and_come_back_through_the_loop(tmp_path: Path) -> None:
    ex = FleetExecutor(tmp_path / "runs")
    ex.changes = []
    # Two 8-GPU nodes, as discover() gives them.
    fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
        admin_token=ADMIN,
        min_runtime_s=0.0,
        max_retries=1,
    )
    svc = Service(
        settings,
        executor=ex,
        inventory=fleet,
        node_name="ray",
        launch_spec=Spec,
        handle_from_dict=lambda d: d,
    )
    svc.loop.retry_backoff_base_s = 0.0
    client = TestClient(svc.app)
    token = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {token}"}

    def job(jid: int) -> dict[str, Any]:
        return dict(client.get(f"/v1/jobs/{jid}", headers=h).json())

    jid = int(client.post("/v1/jobs", json=job_body(gpus=16, nprocs=2), headers=h).json()["id"])
    svc.loop.tick()
    spec = ex.launched[-1]
    # 16 GPUs: all of both nodes, node by node, indices on each node.
    assert spec.nodes == (("node-a", tuple(range(8))), ("node-b", tuple(range(8))))
    # node-b dies: the executor reports the run failed by it and the node down.
    ex.finish(jid, "failed", None)
    ex.changes = [("node-b", False)]
    svc.loop.tick()
    svc.loop.tick()
    assert list(svc.loop.mirror.state.node_up) == [True, False]
    assert job(jid)["state"] == "requeued"  # 16 GPUs do not fit on node-a alone: it waits
    ex.changes = [("node-b", True), ("node-x", False)]  # a name the fleet never had: ignored
    svc.loop.tick()
    svc.loop.tick()
    assert list(svc.loop.mirror.state.node_up) == [True, True]
    assert (job(jid)["state"], job(jid)["attempt"]) == ("running", 2)
    svc.close()


def test_with_no_fleet_yet_the_api_serves_and_jobs_wait_for_the_first_nodes(
    tmp_path: Path,
) -> None:
    ex = GrowingExecutor(tmp_path / "runs")
    ex.changes, ex.nodes = [], []
    svc, client, h = _service(tmp_path, ex, pending_fleet("H100-SXM5", "ray"))
    assert svc.loop.fleet_pending and svc.loop.all_devices == []
    # 16 GPUs: nothing is known of the fleet, so the API cannot say it never fits; it takes it.
    r = client.post("/v1/jobs", json=job_body(gpus=16, nprocs=2), headers=h)
    assert r.status_code == 201, r.text
    jid = int(r.json()["id"])
    for _ in range(3):
        svc.loop.tick()
    assert ex.polls == 3  # each tick polls the executor, which reconnects (with its backoff)
    assert client.get(f"/v1/jobs/{jid}", headers=h).json()["state"] == "queued"
    assert ex.launched == [] and client.get("/healthz").status_code == 200
    ex.join("node-b")  # the cluster answers; its nodes come up one by one
    svc.loop.tick()
    assert svc.loop.fleet_pending  # not taken before it has settled (5 s without growing)
    svc.loop.first_fleet_settle_s = 0.0
    ex.join("node-a")  # its first fleet, in the executor's order
    svc.loop.tick()
    assert not svc.loop.fleet_pending and svc.loop.node_names == ["node-b", "node-a"]
    assert len(svc.loop.all_devices) == 16
    assert ex.launched[-1].nodes == (("node-b", tuple(range(8))), ("node-a", tuple(range(8))))
    assert client.get(f"/v1/jobs/{jid}", headers=h).json()["state"] == "running"
    svc.close()


def test_a_node_that_joins_is_added_and_used(tmp_path: Path) -> None:
    ex = GrowingExecutor(tmp_path / "runs")
    ex.changes, ex.nodes = [], []
    ex.join("node-a")
    svc, client, h = _service(tmp_path, ex, ex.current_fleet())
    first = int(client.post("/v1/jobs", json=job_body(gpus=8), headers=h).json()["id"])
    second = int(client.post("/v1/jobs", json=job_body(gpus=8), headers=h).json()["id"])
    svc.loop.tick()
    assert [s.job_id for s in ex.launched] == [first]  # one 8-GPU node: the second waits
    ex.join("node-b")
    svc.loop.tick()
    svc.loop.tick()
    assert svc.loop.node_names == ["node-a", "node-b"]  # appended: node-a keeps devices 0-7
    assert [s.job_id for s in ex.launched] == [first, second]
    assert ex.launched[-1].nodes == (("node-b", tuple(range(8))),)
    assert list(ex.launched[-1].devices) == list(range(8, 16))
    # The joined node is a node like any other: lost, it goes down; back, up again.
    ex.changes = [("node-b", False)]
    svc.loop.tick()
    assert list(svc.loop.mirror.state.node_up) == [True, False]
    events = client.get("/v1/events", headers=ADMIN_H).json()
    assert any(e["message"] == "node node-b: joined, in service" for e in events)
    # `cortex nodes`: a row per node of the fleet (not one for the service), with its use.
    rows = [
        (n["name"], n["gpus"], n["allocated_gpus"], n["healthy"], n["schedulable"])
        for n in client.get("/v1/nodes", headers=h).json()
    ]
    # node-b's job still holds its 8 devices until the executor reports it ended.
    assert rows == [("node-a", 8, 8, True, True), ("node-b", 8, 8, False, False)]
    svc.close()


def test_a_node_that_joins_with_a_pod_label_is_placed_with_that_pods_nodes(
    tmp_path: Path,
) -> None:
    """Before: a joined node formed a pod of its own whatever its label, so a gang that one
    labelled pod could hold was spread over two pods. Now it lands in the pod it names."""
    ex = GrowingExecutor(tmp_path / "runs")
    ex.changes, ex.nodes = [], []
    ex.join("node-a", pod="p1")
    ex.join("node-b", pod="p2")
    svc, client, h = _service(tmp_path, ex, ex.current_fleet())
    ex.join("node-c", pod="p1")  # appended after node-b (device ids 16-23), in pod p1
    svc.loop.tick()
    assert svc.loop.node_names == ["node-a", "node-b", "node-c"]
    topo = svc.loop.topo
    assert topo.node_pod[0] == topo.node_pod[2] != topo.node_pod[1]
    jid = int(client.post("/v1/jobs", json=job_body(gpus=16, nprocs=2), headers=h).json()["id"])
    svc.loop.tick()
    # Two whole nodes: pod p1 holds them (node-a, node-c), so the gang stays inside it rather
    # than spanning p1 and p2 (node-a, node-b: the first free nodes in fleet order).
    assert ex.launched[-1].job_id == jid
    assert [n for n, _ in ex.launched[-1].nodes] == ["node-a", "node-c"]
    assert list(ex.launched[-1].devices) == [*range(8), *range(16, 24)]
    svc.close()


def _capped_one_node(tmp_path: Path) -> tuple[Any, Any, Any, Any]:
    """A service on one node that nodes may join, under the cap policy at 200 kW, its caps
    written by the recording actuator (no NVML here): (executor, service, client, headers)."""
    ex = GrowingExecutor(tmp_path / "runs")
    ex.changes, ex.nodes = [], []
    ex.join("node-a")
    caps = tmp_path / "caps.jsonl"
    svc, client, h = _service(
        tmp_path,
        ex,
        ex.current_fleet(),
        power_policy="cap",
        site_cap_kw=200.0,
        power_actuator=f"record:{caps}",
    )
    return ex, svc, client, h


def test_a_node_that_joins_under_a_power_policy_is_booked_and_used_without_a_restart(
    tmp_path: Path,
) -> None:
    """Before: the power books were built for the fleet at start, so a joined node stayed out
    of service until the next restart. Now the books grow with the fleet and keep what they
    hold: the running job's booking and the cap an operator set."""
    ex, svc, client, h = _capped_one_node(tmp_path)
    first = int(client.post("/v1/jobs", json=job_body(gpus=8), headers=h).json()["id"])
    second = int(client.post("/v1/jobs", json=job_body(gpus=8), headers=h).json()["id"])
    r = client.put("/v1/power", json={"site_cap_kw": 150.0}, headers=ADMIN_H)
    assert r.status_code == 200, r.text
    svc.loop.tick()
    assert [s.job_id for s in ex.launched] == [first]
    power = svc.loop.power
    assert power is not None
    idle_one_w = power.books.base_all_w
    before = client.get("/v1/power", headers=ADMIN_H).json()
    (booked,) = [(j["job_id"], j["cap_level"], j["modelled_w"]) for j in before["jobs"]]
    ex.join("node-b")
    svc.loop.tick()
    svc.loop.tick()
    assert [s.job_id for s in ex.launched] == [first, second]
    assert ex.launched[-1].nodes == (("node-b", tuple(range(8))),)
    # Two identical nodes: twice one node's idle draw (node overhead and 8 idle GPUs).
    assert power.books.base_all_w == 2 * idle_one_w
    assert len(power.books.node_max_cap_w) == 2
    # The halls' sums hold both jobs, the one booked before the growth included.
    assert sum(power.books.hall_inc_w) == pytest.approx(power.books.inc_total_w)
    after = client.get("/v1/power", headers=ADMIN_H).json()
    assert after["site_cap_kw"] == 150.0  # the operator's cap, not the configured 200 kW
    jobs = {j["job_id"]: (j["job_id"], j["cap_level"], j["modelled_w"]) for j in after["jobs"]}
    assert jobs[first] == booked and set(jobs) == {first, second}
    # Both jobs are the same kind on the same flavor: booked alike, each on its own node.
    assert after["it_booked_over_idle_w"] == 2 * before["it_booked_over_idle_w"]
    svc.close()


class PlannedExecutor(FleetExecutor):
    """Also the nodes Ray drains or that left on purpose (membership.py's planned_removals)."""

    planned: dict[str, str]
    deadlines: dict[str, float] = {}  # noqa: RUF012  (replaced whole by the tests)

    def planned_removals(self) -> dict[str, str]:
        return dict(self.planned)

    def drain_deadlines(self) -> dict[str, float]:
        return dict(self.deadlines)


def test_a_node_ray_drains_takes_no_new_work_and_its_removal_is_no_strike(
    tmp_path: Path,
) -> None:
    ex = PlannedExecutor(tmp_path / "runs")
    ex.changes, ex.planned = [], {}
    fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
    svc, client, h = _service(tmp_path, ex, fleet)

    def strikes() -> list[tuple[str, bool]]:
        with svc.loop.sessions() as s:
            return [(f.node, f.strike) for f in s.scalars(select(m.NodeFailure)).all()]

    def messages() -> list[str]:
        return [e["message"] for e in client.get("/v1/events", headers=ADMIN_H).json()]

    ex.planned = {"node-a": "being drained by Ray (no deadline)"}
    svc.loop.tick()
    first = int(client.post("/v1/jobs", json=job_body(gpus=8), headers=h).json()["id"])
    second = int(client.post("/v1/jobs", json=job_body(gpus=8), headers=h).json()["id"])
    svc.loop.tick()
    # node-a is free, but Ray is draining it: the first job goes to node-b, the second waits.
    assert [(sp.job_id, sp.nodes[0][0]) for sp in ex.launched] == [(first, "node-b")]
    assert "node node-a: being drained by Ray (no deadline): no new work" in messages()
    # Ray removes it: out of service with Ray's reason, and no strike against its health.
    ex.planned = {"node-a": "drained by Ray (preemption): rack maintenance"}
    ex.changes = [("node-a", False)]
    svc.loop.tick()
    assert (
        "node node-a left (drained by Ray (preemption): rack maintenance): out of service"
        in messages()
    )
    assert strikes() == []
    # It comes back, drained no more: the waiting job runs there.
    ex.planned, ex.changes = {}, [("node-a", True)]
    svc.loop.tick()
    svc.loop.tick()
    assert [(sp.job_id, sp.nodes[0][0]) for sp in ex.launched][-1] == (second, "node-a")
    # A node lost without a plan is a strike, as before.
    ex.changes = [("node-b", False)]
    svc.loop.tick()
    assert strikes() == [("node-b", True)]
    svc.close()


def test_jobs_on_a_node_drained_with_a_deadline_checkpoint_before_it(tmp_path: Path) -> None:
    ex = PlannedExecutor(tmp_path / "runs")
    ex.changes, ex.planned = [], {}
    fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
    svc, client, h = _service(tmp_path, ex, fleet)
    jid = int(client.post("/v1/jobs", json=job_body(gpus=8), headers=h).json()["id"])
    svc.loop.tick()
    (on,) = ex.launched[-1].nodes
    # Ray drains its node; the deadline is an hour away: the job runs on, no new work there.
    lead_s = svc.settings.grace_s + 30.0  # loop_fleet.DRAIN_LEAD_S
    ex.planned = {on[0]: "being drained by Ray (deadline ...)"}
    ex.deadlines = {on[0]: time.time() + 3600.0}
    svc.loop.tick()
    assert ex.terminated == []
    # Within the grace period and the lead of the deadline: stopped with a checkpoint, once.
    ex.deadlines = {on[0]: time.time() + lead_s - 5.0}
    svc.loop.tick()
    svc.loop.tick()
    assert ex.terminated == [(jid, 1, "preempt")]
    row = client.get(f"/v1/jobs/{jid}", headers=h).json()
    assert row["state"] == "running"  # until its process has exited
    (rec,) = row["preemption_records"]
    assert (rec["rule"], rec["preemptor_id"]) == ("NodeDraining", None)
    ex.finish(jid, "preempted", 75)  # checkpointed
    svc.loop.tick()
    svc.loop.tick()
    # Requeued and started again on the other node; not counted against its preemption budget.
    other = "node-b" if on[0] == "node-a" else "node-a"
    assert (ex.launched[-1].job_id, ex.launched[-1].nodes[0][0]) == (jid, other)
    assert svc.loop.mirror.jobs[jid].evictions == 0
    svc.close()


def test_a_gang_on_two_nodes_drained_with_deadlines_is_stopped_once(tmp_path: Path) -> None:
    ex = PlannedExecutor(tmp_path / "runs")
    ex.changes, ex.planned = [], {}
    fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
    svc, client, h = _service(tmp_path, ex, fleet)
    body = job_body(gpus=16, nprocs=2)
    jid = int(client.post("/v1/jobs", json=body, headers=h).json()["id"])
    svc.loop.tick()
    assert [n for n, _ in ex.launched[-1].nodes] == ["node-a", "node-b"]
    soon = time.time() + 10.0  # inside the grace period: stop now
    ex.planned = dict.fromkeys(("node-a", "node-b"), "being drained by Ray (deadline ...)")
    ex.deadlines = {"node-a": soon, "node-b": soon}
    svc.loop.tick()
    svc.loop.tick()
    assert ex.terminated == [(jid, 1, "preempt")]
    (rec,) = client.get(f"/v1/jobs/{jid}", headers=h).json()["preemption_records"]
    assert rec["rule"] == "NodeDraining"
    svc.close()


def test_jobs_on_a_node_drained_without_a_deadline_are_moved_after_a_bounded_wait(
    tmp_path: Path,
) -> None:
    """Ray keeps a node drained with no deadline until it is idle, and the loop gives it no
    new work: before, its jobs ran on forever. Now they are checkpointed and requeued once
    drain_evacuate_after_s has passed since the drain was first seen."""
    ex = PlannedExecutor(tmp_path / "runs")
    ex.changes, ex.planned = [], {}
    clock = FakeClock()
    fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
    svc, client, h = _service(tmp_path, ex, fleet, clock=clock, drain_evacuate_after_s=600.0)
    jid = int(client.post("/v1/jobs", json=job_body(gpus=8), headers=h).json()["id"])
    svc.loop.tick()
    (on,) = ex.launched[-1].nodes
    ex.planned = {on[0]: "being drained by Ray (no deadline)"}
    svc.loop.tick()  # the drain is first seen at this tick's time
    clock.advance(599.0)
    svc.loop.tick()
    assert ex.terminated == []  # 599 s < 600 s: it runs on (no new work on its node)
    clock.advance(1.0)
    svc.loop.tick()
    svc.loop.tick()
    assert ex.terminated == [(jid, 1, "preempt")]  # once, though two ticks saw it due
    (rec,) = client.get(f"/v1/jobs/{jid}", headers=h).json()["preemption_records"]
    assert (rec["rule"], rec["preemptor_id"]) == ("NodeDraining", None)
    ex.finish(jid, "preempted", 75)  # checkpointed
    svc.loop.tick()
    svc.loop.tick()
    other = "node-b" if on[0] == "node-a" else "node-a"
    assert (ex.launched[-1].job_id, ex.launched[-1].nodes[0][0]) == (jid, other)
    assert svc.loop.mirror.jobs[jid].evictions == 0  # not counted against its budget
    svc.close()


def test_a_drain_without_a_deadline_that_ends_in_time_stops_nothing(tmp_path: Path) -> None:
    """The wait is per drain: a node undrained and drained again waits the whole time again;
    a gang on two such nodes is stopped once when the wait is over."""
    ex = PlannedExecutor(tmp_path / "runs")
    ex.changes, ex.planned = [], {}
    clock = FakeClock()
    fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
    svc, client, h = _service(tmp_path, ex, fleet, clock=clock, drain_evacuate_after_s=60.0)
    jid = int(client.post("/v1/jobs", json=job_body(gpus=16, nprocs=2), headers=h).json()["id"])
    svc.loop.tick()
    assert [n for n, _ in ex.launched[-1].nodes] == ["node-a", "node-b"]
    both = dict.fromkeys(("node-a", "node-b"), "being drained by Ray (no deadline)")
    ex.planned = both
    svc.loop.tick()
    clock.advance(50.0)
    ex.planned = {}  # the drain is cancelled
    svc.loop.tick()
    ex.planned = both  # and asked again: its wait starts from here (50 + 50 < 60 + 50)
    svc.loop.tick()
    clock.advance(50.0)
    svc.loop.tick()
    assert ex.terminated == []
    clock.advance(10.0)
    svc.loop.tick()
    svc.loop.tick()
    assert ex.terminated == [(jid, 1, "preempt")]
    svc.close()


def test_a_lost_nodes_free_gpus_are_not_scheduled_while_its_job_ends(tmp_path: Path) -> None:
    ex = FleetExecutor(tmp_path / "runs")
    ex.changes = []
    fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
    svc, client, h = _service(tmp_path, ex, fleet)
    a = int(client.post("/v1/jobs", json=job_body(gpus=4), headers=h).json()["id"])
    svc.loop.tick()
    (on,) = ex.launched[-1].nodes
    # The executor says the node is lost; the job's run is still ending (its other ranks get
    # their grace period), so no exit yet.
    ex.changes = [(on[0], False)]
    svc.loop.tick()
    lost = svc.loop.node_names.index(on[0])
    assert svc.loop.mirror.state.node_up[lost] is False  # down now, not when the job ends
    b = int(client.post("/v1/jobs", json=job_body(gpus=4), headers=h).json()["id"])
    svc.loop.tick()
    # 4 GPUs were free on the lost node; the new job goes to the other one.
    assert ex.launched[-1].job_id == b and ex.launched[-1].nodes[0][0] != on[0]
    ex.finish(a, "failed", None)
    svc.loop.tick()
    assert client.get(f"/v1/jobs/{a}", headers=h).json()["state"] in ("requeued", "running")
    assert svc.loop.mirror.state.node_up[lost] is False
    svc.close()


def test_stopping_the_loop_waits_for_the_executors_queued_calls(tmp_path: Path) -> None:
    """The Ray executor queues teardowns on a worker thread (review finding): a service that
    stopped right after a tick tore gangs down left their placement groups and agents behind.
    Stopping the loop drains the executor's queue, up to DRAIN_S."""
    from helpers import fake_service

    from cortex.control import loop as loop_mod

    drained: list[float] = []

    class Queued(FakeExecutor):
        def drain(self, timeout_s: float) -> bool:
            drained.append(timeout_s)
            return True

    ex = Queued(tmp_path / "runs")
    svc = fake_service(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, executor=ex)
    svc.loop.start()
    svc.close()
    assert drained == [loop_mod.DRAIN_S]


def test_a_power_solve_after_nodes_join_reads_the_classes_booked_before(tmp_path: Path) -> None:
    """Before: the regrow's copy of the books had no ladders, and the kept class sums of jobs
    booked before it asked theirs: the first solve after one of them left raised KeyError (the
    live loop's power solve, until a restart). tests/power/test_books_regrow.py: the books
    alone."""
    ex, svc, client, h = _capped_one_node(tmp_path)
    big = int(client.post("/v1/jobs", json=job_body(gpus=4), headers=h).json()["id"])
    small = int(client.post("/v1/jobs", json=job_body(gpus=2), headers=h).json()["id"])
    svc.loop.tick()
    assert [s.job_id for s in ex.launched] == [big, small]
    power = svc.loop.power
    assert power is not None
    # One class (same kind, flavor, priority and hall), two ladders (gangs of 4 and 2).
    [cls] = power.books._classes.values()
    assert len(cls.whole) == 2
    power._solve(svc.loop.clock.time())  # the class's sums made before the growth
    ex.join("node-b")
    svc.loop.tick()
    assert len(power.books.node_max_cap_w) == 2  # regrown
    power.books.stop(small)  # as the loop books a job that ended
    plan = power._solve(svc.loop.clock.time())
    assert set(plan.levels) == {big}
    svc.close()
