"""The scheduler loop's fleet side, for executors that own a multi-node fleet (the Ray
executor): the per-node placement a launch carries, nodes that leave or come back, and nodes
that join. A mixin of `cortex.control.loop.SchedulerLoop`.

- A node that goes down leaves service at once: the jobs on it give their capacity back (as a
  preemption victim does; their devices stay taken until the executor reports them ended),
  an admitted job not yet launched there is requeued, and the node goes through the twin's
  failure transition (`ClusterState.set_down`), so none of its GPUs can be scheduled. A node
  that comes back is repaired (`set_up`).
- A node that joins (the executor's `fleet_version` moves) is added: the executor's fleet
  keeps every known node in its place and appends the new ones, so device ids and stored
  allocations stay valid; the topology and the cluster state are rebuilt around them.
- An executor that has seen no node yet (a Ray cluster unreachable at the very first start)
  gives a pending fleet: the loop serves the API, leaves submitted jobs queued, and only polls
  the executor (which reconnects with backoff) until the first fleet comes; recovery runs then.
An executor without `node_changes` (the local one: one machine) has a fixed fleet.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store
from cortex.control.mirror import Mirror
from cortex.control.store_fleet import grow_node
from cortex.errors import InputError
from cortex.fleet.topology import Topology, build
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Plan, Preemption

log = logging.getLogger("cortex.control")

FIRST_FLEET_SETTLE_S = 5.0  # see _fleet_ready
# A job on a node drained with a deadline is stopped (SIGTERM, checkpoint, requeue) this long
# plus the grace period before the deadline: time for the SIGTERM to reach it and for the
# exit to be seen before the node may be ended.
DRAIN_LEAD_S = 30.0


def drains_due(
    deadlines: Mapping[str, float],
    undated_since: Mapping[str, float],
    now: float,
    *,
    lead_s: float,
    after_s: float,
) -> dict[str, str]:
    """Drained nodes whose jobs are to be stopped now: name -> the deadline their reason
    shows. A node with a deadline (epoch s) once `now` is within `lead_s` of it; one without
    (`undated_since`: when its drain was first seen) once `after_s` has passed since."""
    due = {
        name: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deadline_s))
        for name, deadline_s in deadlines.items()
        if now >= deadline_s - lead_s
    }
    for name, since_s in undated_since.items():
        if name not in deadlines and now >= since_s + after_s:
            due[name] = f"none; stopped after {after_s:.0f} s"
    return due


def node_devices_of(topo: Topology) -> list[list[int]]:
    """Device ids per node: node n's GPUs follow node n-1's (so appending nodes keeps ids)."""
    gpn = topo.flavor_gpus_per_node
    out, first = [], 0
    for f in topo.node_flavor:
        out.append(list(range(first, first + gpn[f])))
        first += gpn[f]
    return out


@dataclass(frozen=True)
class FleetView:
    """The executor fleet's nodes as the last tick left them, for other threads (the API's
    GET /v1/nodes): immutable, replaced whole."""

    names: tuple[str, ...] = ()
    flavors: tuple[str, ...] = ()
    gpus: tuple[int, ...] = ()
    first_device: tuple[int, ...] = ()  # node n's device ids start here
    down: frozenset[int] = frozenset()

    def rows(self, devices_by_job: Any) -> list[tuple[str, str, int, bool, int]]:
        """(name, flavor, GPUs, up, GPUs allocated) per node, in fleet order."""
        used = [0] * len(self.names)
        for devs in devices_by_job.values():
            for d in devs:
                n = bisect_right(self.first_device, d) - 1
                if 0 <= n < len(used):
                    used[n] += 1
        return [
            (name, self.flavors[n], self.gpus[n], n not in self.down, used[n])
            for n, name in enumerate(self.names)
        ]


class FleetMixin:
    first_fleet_settle_s = FIRST_FLEET_SETTLE_S
    _first_seen: tuple[int, float] | None = None  # (fleet version, when first seen)
    # Nodes the executor drains or that left on purpose, with why (read each tick by
    # _sync_fleet; loop_health.py keeps new work off them and strikes none of them).
    planned_now: dict[str, str] = {}  # noqa: RUF012  (replaced whole each tick)
    drain_deadlines_now: dict[str, float] = {}  # noqa: RUF012  (likewise: name -> epoch s)
    # Nodes drained with no deadline: name -> when this process first saw the drain (_evacuate).
    _undated_since: dict[str, float] = {}  # noqa: RUF012  (replaced whole each tick)
    # Owned by SchedulerLoop (declared here for the type checker).
    executor: Any
    mirror: Mirror
    topo: Topology
    node_names: list[str]
    node_devices: list[list[int]]
    all_devices: list[int]
    nodes_down: set[int]
    dirty: bool
    queues_dirty: bool
    flavor: str
    speeds: dict[str, float]
    power: Any
    sessions: Any
    clock: Any
    node_name: str
    node_id: int
    fleet_pending: bool
    fleet_version: int | None
    fleet_view: FleetView
    _new_alloc: dict[int, m.Allocation]
    settings: Any

    if TYPE_CHECKING:  # SchedulerLoop's and its mixins'

        def recover(self) -> dict[str, int]: ...
        def _index(self) -> dict[str, int]: ...
        def _release(self, s: Session, job_id: int, now: float) -> None: ...
        def _requeue(self, s: Session, row: m.Job, job: Any, reason: str, now: float) -> None: ...

    def _nodes_of(self, devices: list[int]) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The launch's placement node by node: (node name, indices of its devices on that
        node), in node order. O(len(devices)): a launch on a 100k-GPU modelled fleet must not
        scan every node."""
        where = getattr(self, "_device_at", None)
        if where is None:  # built once per fleet
            where = {
                d: (n, i) for n, ds in enumerate(self.mirror.node_devices) for i, d in enumerate(ds)
            }
            self._device_at = where
        by_node: dict[int, list[int]] = {}
        for d in devices:
            n, i = where[d]
            by_node.setdefault(n, []).append(i)
        return tuple((self.node_names[n], tuple(sorted(ix))) for n, ix in sorted(by_node.items()))

    # ---- nodes that join ------------------------------------------------------------------
    def _fleet_ready(self) -> bool:
        """Before a tick: take the executor's fleet if it grew (or came at last). False while
        there is none yet: the tick does nothing else (jobs stay queued)."""
        version = getattr(self.executor, "fleet_version", None)
        if version is None or (version == self.fleet_version and not self.fleet_pending):
            return True
        if self.fleet_pending:
            self.executor.poll()  # reconnects, with backoff; no run exists before a fleet
        fleet = self.executor.current_fleet()
        if fleet is None:
            return not self.fleet_pending
        if self.fleet_pending:
            # A cluster's nodes come up one by one: the first fleet is taken once it has not
            # grown for a while, or jobs queued meanwhile would be judged on its first node.
            now, seen = self.clock.monotonic(), self.executor.fleet_version
            if self._first_seen is None or self._first_seen[0] != seen:
                self._first_seen = (seen, now)
            if now - self._first_seen[1] < self.first_fleet_settle_s:
                return False
            self.fleet_version = seen
            return self._first_fleet(fleet)
        self.fleet_version = self.executor.fleet_version
        self._grow(fleet)
        return True

    def _first_fleet(self, fleet: Any) -> bool:
        from cortex.control.loop_power import LivePower  # imports the loop's modules

        self._set_topology(fleet)
        self.fleet_pending = False
        try:
            self.power = LivePower.attach(self)  # type: ignore[arg-type]  # the loop itself
        except (ValueError, InputError) as err:  # a cap the fleet cannot meet, say
            log.error("serve: power policy on the first fleet: %s; not scheduling", err)
            self.fleet_pending, self.fleet_version = True, None
            return False
        self._record_nodes(fleet.names, "first fleet")
        if self.power is not None:
            with self.sessions.begin() as s:
                for line in self.power.restore(store.site_settings(s), self.clock.time()):
                    log.info("power: %s", line)
        self.recover()  # deferred until now: device ids mean nothing without a fleet
        return True

    def _grow(self, fleet: Any) -> None:
        names = list(fleet.names)
        n = len(self.node_names)
        if names[:n] != self.node_names:
            log.error("executor fleet reordered (%s...); nodes not added", names[:3])
            return
        topo = build(fleet.spec)
        if self.power is not None:  # the power books cover the joined nodes from now
            try:
                self.power.regrow(topo, self.clock.time())
            except (ValueError, InputError) as err:  # a rack cap below a joined node's floor
                log.error("nodes %s joined, not added: %s", names[n:], err)
                return
        self._set_topology(fleet, topo)
        self.queues_dirty = True  # the tick rebuilds the cluster state on the new topology
        self._record_nodes(names[n:], "joined")

    def _set_topology(self, fleet: Any, topo: Topology | None = None) -> None:
        from cortex.control.loop import _speeds

        self.topo = topo if topo is not None else build(fleet.spec)
        self.node_devices = node_devices_of(self.topo)
        self.all_devices = [d for ds in self.node_devices for d in ds]
        self.node_names = list(fleet.names)
        self.flavor = fleet.flavor
        self.speeds = _speeds(self.flavor)
        self.mirror.topo, self.mirror.node_devices = self.topo, self.node_devices
        self.__dict__.pop("_device_at", None)

    def _record_nodes(self, names: list[str], why: str) -> None:
        now = self.clock.time()
        with self.sessions.begin() as s:
            # Device ids only grow (joined nodes come last): their rows are appended in bulk.
            grow_node(s, self.node_id, self.flavor, self.all_devices, now)
            for name in names:
                store.event(s, "node", f"node {name}: {why}, in service", at=now)
        log.info("fleet: %d nodes, %d GPUs (%s: %s)", len(self.node_names),
                 len(self.all_devices), why, ", ".join(names[:5]))  # fmt: skip

    # ---- nodes that leave or come back ----------------------------------------------------
    def _sync_fleet(self, s: Session, now: float) -> None:
        """Apply the executor's node changes; keep down nodes down across state rebuilds."""
        changes = getattr(self.executor, "node_changes", None)
        try:
            got = list(changes()) if changes is not None else []
        except Exception:
            log.exception("reading the executor's nodes failed")
            got = []
        planned = getattr(self.executor, "planned_removals", None)
        deadlines = getattr(self.executor, "drain_deadlines", None)
        try:
            self.planned_now = dict(planned()) if planned is not None else {}
            self.drain_deadlines_now = dict(deadlines()) if deadlines is not None else {}
        except Exception:
            log.exception("reading the executor's planned node removals failed")
        index = {name: n for n, name in enumerate(self.node_names)}
        for name, alive in got:
            n = index.get(name)
            if n is None:
                continue  # not in the loop's fleet (yet: it joins at the next tick)
            if alive and n in self.nodes_down:
                self.nodes_down.discard(n)
                self.mirror.state.set_up(n)
                self.dirty = True
                store.event(s, "node", f"node {name} is back: in service", at=now)
            elif not alive and n not in self.nodes_down:
                self.nodes_down.add(n)
                self.dirty = True
                why = self.planned_now.get(name)
                said = f"left ({why})" if why else "lost"
                store.event(s, "node", f"node {name} {said}: out of service"[:1000], at=now)
        for n in self.nodes_down:
            if self.mirror.state.node_up[n]:  # idempotent: also after a state rebuild
                self._drain(s, n, now)
        if got or len(self.fleet_view.names) != len(self.node_names):
            self._publish_fleet()

    def _evacuate(self, now: float) -> Plan:
        """Jobs on nodes the executor drains, stopped as preemption victims are (SIGTERM,
        checkpoint, requeue elsewhere; the node takes no new work meanwhile, loop_health.py):
        with a deadline, once it is near, rather than lost with the node at the deadline;
        without one (Ray keeps such a node until it is idle, and nothing new lands there), once
        `drain_evacuate_after_s` has passed since the drain was first seen, rather than never.
        Not a preemption for another job: the queue's preemption budget does not count it."""
        plan = Plan()
        deadlines = self.drain_deadlines_now
        index = self._index()
        # Planned removals still up with no deadline: drains Ray holds until the node is idle.
        # First seen per drain by this process: a restart starts the wait again.
        since = {}
        for name in self.planned_now:
            n = index.get(name)
            if n is not None and n not in self.nodes_down and name not in deadlines:
                since[name] = self._undated_since.get(name, now)
        self._undated_since = undated = since
        if not deadlines and not undated:
            return plan
        lead_s, after_s = self.settings.grace_s + DRAIN_LEAD_S, self.settings.drain_evacuate_after_s
        due = drains_due(deadlines, undated, now, lead_s=lead_s, after_s=after_s)
        mi = self.mirror
        stopped: set[int] = set()  # a gang on two draining nodes is stopped once
        for name, deadline in sorted(due.items()):
            n = index.get(name)
            if n is None or n in self.nodes_down:
                continue
            why = Reason(Code.NODE_DRAINING, node=name, deadline=deadline)
            for j in sorted(set(mi.state.jobs_on(n)) - stopped):
                plan.preemptions.append(Preemption(mi.jobs[j], why))
                stopped.add(j)
        return plan

    def _publish_fleet(self) -> None:
        topo = self.topo
        self.fleet_view = FleetView(
            names=tuple(self.node_names),
            flavors=tuple(topo.flavors[f] for f in topo.node_flavor),
            gpus=tuple(len(ds) for ds in self.node_devices),
            first_device=tuple(ds[0] if ds else 0 for ds in self.node_devices),
            down=frozenset(self.nodes_down),
        )

    def _drain(self, s: Session, n: int, now: float) -> None:
        """Node n leaves service now: what holds capacity on it lets go, then set_down."""
        mi, name = self.mirror, self.node_names[n]
        for jid in mi.state.jobs_on(n):
            job = mi.jobs[jid]
            if mi.was_admitted(jid):  # never launched: back to the queue
                row = s.get(m.Job, jid)
                assert row is not None
                self._new_alloc.pop(jid, None)
                self._release(s, jid, now)
                self._requeue(s, row, job, f"node {name} lost before launch", now)
            else:
                # Running there: its run is failing (the executor reports it); its capacity
                # comes back now, its devices when it has ended, as a preemption victim's.
                mi.stop(job)
        mi.state.set_down(n)
        self.dirty = True
