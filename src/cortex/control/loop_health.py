"""The scheduler loop's health side: each ended attempt is recorded for goodput
(control/goodput.py) and, when it failed, against the nodes it is blamed on; node losses are
strikes; repeat offenders are drained and return after their burn-in (control/node_health.py).
A mixin of `cortex.control.loop.SchedulerLoop`.

Drained nodes take no new work at once (`ClusterState.cordon`: their jobs run on), leave
service through the twin's transition (`ClusterState.set_down`, once the jobs on them have
ended) and come back through repair (`set_up`), as lost nodes do in
loop_fleet.py; this step runs after that one in each tick, so a drained node that the executor
reports alive again stays out until its burn-in ends.

Hot spares (`--hot-spares N`, drive/spares.py, the twin's pool): a multi-node gang whose failure
is pinned on one node (lost, or named by the executor) is readmitted in the same tick on its
old nodes and a spare of that node's pod, bypassing the queue (a failure blamed on a node waits
no retry backoff and spends no retry: drive/runs.py judge_exit); a repaired node refills its
pod's pool when it is short."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from cortex.control import goodput, store
from cortex.control import models as m
from cortex.control.mirror import Mirror
from cortex.control.node_health import (
    KIND_CLUSTER,
    KIND_JOB,
    KIND_LOST,
    HealthView,
    NodeHealth,
)
from cortex.control.node_health import blame as blame_exit
from cortex.drive.runs import Blame
from cortex.drive.spares import SparePool
from cortex.scheduler.snapshot import Start
from cortex.workload.job import Job

log = logging.getLogger("cortex.control")


class HealthMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    progress: Any
    mirror: Mirror
    node_names: list[str]
    nodes_down: set[int]
    dirty: bool
    view: Any
    health: NodeHealth
    health_view: HealthView
    _seen_down: frozenset[str]
    _drained_out: set[int]
    _node_index: dict[str, int]
    _indexed: list[str] | None
    spares: SparePool | None
    _swaps: dict[int, tuple[int, Any]]
    topo: Any
    fleet_pending: bool
    planned_now: dict[str, str]  # FleetMixin's: nodes the executor drains or that left

    def _init_health(self, hot_spares: int) -> None:
        """Strikes and drains, and the hot-spare pool. Hot spares need the fleet: an executor's
        fleet not known at start (Ray unreachable) runs without them until a restart."""
        self.health = NodeHealth()
        self.health_view = HealthView()
        self._seen_down = frozenset()
        self._drained_out = set()
        self._planned_seen: set[int] = set()
        self._node_index = {}
        self._indexed: list[str] | None = None
        self.spares = (
            SparePool(hot_spares, self.topo) if hot_spares and not self.fleet_pending else None
        )
        self._swaps = {}  # job: (failed node, its placement)

    def _index(self) -> dict[str, int]:
        """Node name -> index, rebuilt when the fleet's names change (an executor's fleet
        arrives or grows at runtime: loop_fleet.py replaces `node_names`)."""
        if self._indexed is not self.node_names:
            self._node_index = {name: n for n, name in enumerate(self.node_names)}
            self._indexed = self.node_names
        return self._node_index

    def _nodes_of(self, devices: list[int]) -> tuple[tuple[str, tuple[int, ...]], ...]:
        raise NotImplementedError  # FleetMixin's

    if TYPE_CHECKING:  # BurnInMixin's

        def _holds_ended(self, s: Session, due: list[str], now: float) -> None: ...

    def _admit(self, s: Session, st: Any, now: float) -> None:
        raise NotImplementedError  # LaunchMixin's

    def _attempt_ended(
        self, s: Session, row: m.Job, e: Any, now: float, started: float | None = None
    ) -> Blame:
        """An attempt of `row` ended with exit record `e` (before the job's state moves on);
        `started`: when its allocation was made, if the caller knows. Returns whom a failure
        is blamed on, for the exit's verdict (drive/runs.py judge_exit): a node lost or named
        by the executor, the executor's cluster (the Ray head lost), else the job."""
        node = None
        blame: Blame = "job"
        if str(e.outcome) == "failed":
            devs = self.view.devices.get(row.id) or ()
            ran_on = [name for name, _ in self._nodes_of(list(devs))] if devs else []
            nodes, strike, kind = blame_exit(e, ran_on)
            for n in nodes:
                self.health.failure(
                    s, n, now, strike=strike, kind=kind, job_id=row.id, attempt=row.attempt
                )
            node = nodes[0] if len(nodes) == 1 else None
            if kind != KIND_JOB and nodes:
                blame = "node"
            elif kind == KIND_CLUSTER:
                blame = "cluster"
            if node is not None and kind != KIND_JOB and self.spares is not None:
                self._plan_swap(row.id, node)
        gbps = self.topo.spec.storage_write_gbps
        goodput.record_end(
            s, row, str(e.outcome), now, self.progress, node=node, started=started,
            storage_write_gbps=gbps,
        )  # fmt: skip
        return blame

    def _plan_swap(self, job_id: int, node: str) -> None:
        """Note a spare for the gang if it spans several nodes, one of them `node`: the exit
        side swaps it in once the run is judged and requeued (loop_exits.py)."""
        placement = self.mirror.placement.get(job_id)
        failed = self._index().get(node)
        if placement and len(placement) > 1 and any(n == failed for n, _ in placement):
            assert failed is not None
            self._swaps[job_id] = (failed, placement)

    def _swap_in(self, s: Session, row: m.Job, job: Job, swap: tuple[int, Any], now: float) -> None:
        """Readmit a requeued gang on its old nodes and a spare of the failed node's pod; with
        none left in that pod it waits in the queue, as without spares."""
        assert self.spares is not None
        failed, placement = swap
        new = self.spares.swap(self.mirror.state, placement, failed, now)
        name = self.node_names[failed]
        if new is None:
            store.event(s, "spare", f"no hot spare left for node {name}'s pod", job_id=row.id,
                        team=row.team, at=now)  # fmt: skip
            return
        spare = next(n for (n, _), (o, _) in zip(new, placement, strict=True) if n != o)
        self._admit(s, Start(job, job.run_flavor, new, job.run_gpus, job.alloc_gpus), now)
        store.event(
            s, "spare", f"node {name} replaced by hot spare {self.node_names[spare]}",
            job_id=row.id, team=row.team, at=now,
        )  # fmt: skip
        self.dirty = True

    def _sync_spares(self, back: set[int], drained: set[int], now: float) -> None:
        """A spare lost or drained leaves its pool (it must not stand in for a failed node); a
        node repaired refills its pod's pool if it is short; the pool stays out of service."""
        assert self.spares is not None
        st = self.mirror.state
        for n in sorted(self.nodes_down | drained):
            self.spares.drop(n, now)
        for n in sorted(back):
            self.spares.repaired(st, n, now)
        if self.spares.keep_out(st):
            self.dirty = True

    def _sync_health(self, s: Session, now: float) -> None:
        """Strike new node losses, end burn-ins, keep drained nodes out of service."""
        h = self.health
        if h.dirty:
            h.load(s, now)
        names = self.node_names
        down = frozenset(names[n] for n in self.nodes_down)
        planned = self.planned_now
        for name in sorted(down - self._seen_down):
            if name not in planned:  # one that left on purpose did not fail
                h.failure(s, name, now, strike=True, kind=KIND_LOST)
        back = self._seen_down - down
        self._seen_down = down
        self._holds_ended(s, h.due(now), now)  # back now, or after a burn-in (loop_burnin.py)
        index = self._index()
        st = self.mirror.state
        drained = {index[d] for d in h.drains if d in index}
        draining = {index[d] for d in planned if d in index} - drained
        for n in sorted(draining - self._planned_seen):
            if st.node_up[n]:
                msg = f"node {names[n]}: {planned[names[n]]}: no new work"
                store.event(s, "node", msg[:1000], at=now)
        self._planned_seen = draining
        drained |= draining  # no new work now, out of service once empty
        if self.spares is not None:
            self._sync_spares({index[n] for n in back} - drained, drained, now)
        for n in sorted(drained):
            if st.node_up[n] and not st.jobs_on(n):  # set_down needs the node empty
                st.set_down(n)
                self._drained_out.add(n)
                self.dirty = True
            elif st.node_up[n] and n not in st.cordoned:  # draining: no new work meanwhile
                st.cordon(n)
        for n in [n for n in st.cordoned if n not in drained]:  # undrained while draining
            st.uncordon(n)
            self.dirty = True
        for n in sorted(self._drained_out - drained):  # burn-in over, or undrained
            self._drained_out.discard(n)
            if n not in self.nodes_down and not st.node_up[n]:
                st.set_up(n)
                self.dirty = True
        out = frozenset(names[n] for n in drained if not st.node_up[n])
        pool = self.spares.spares.values() if self.spares is not None else ()
        spares = frozenset(names[n] for p in pool for n in p)
        v = self.health_view
        if (out, down, spares) != (v.out, v.down, v.spares):
            self.health_view = HealthView(down=down, out=out, spares=spares)
