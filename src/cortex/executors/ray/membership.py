"""Which Ray nodes make up the fleet, in what order, and which of them are up: a mixin of
`RayExecutor` (executor.py).

The loop's device ids are positions in the fleet's order, and they are stored (allocations,
handles), so the order must never change under a running service or across its restarts:
- the first read sorts the nodes (build_fleet's node_order) and saves the fleet
  (offline.save_fleet, `runs/ray-fleet.json`);
- every later read, in this process or after a restart, keeps the saved nodes in their places
  (down while Ray does not list them alive) and appends nodes that joined since, sorted among
  themselves, then saves again;
- a saved node that comes back with another flavor or GPU count keeps its place, down, with
  the reason logged: its place's device ids are the old shape's. To reorder the fleet, stop
  the service while nothing runs and delete `runs/ray-fleet.json`.
A joined node bumps `fleet_version`; the loop then takes the grown fleet (control/loop_fleet.py).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from cortex.executors.nodes import ExecutorFleet, NodeInfo, build_fleet, node_order
from cortex.executors.ray.fleet import IgnoredLog, NodeView, read_nodes
from cortex.executors.ray.offline import load_fleet, save_fleet
from cortex.executors.ray.runs import probe

log = logging.getLogger(__name__)

FLEET_EVERY_S = 0.5  # node_changes() reads the cluster at most this often
LOST_HOLD_S = 30.0  # see RayExecutor._lost
# One read of the nodes: ray.nodes()'s answer, or None and why the head did not answer.
Fetched = tuple[list[dict[str, Any]] | None, str | None]


def _shape(n: NodeInfo) -> tuple[str, int]:
    return (n.flavor, n.gpus)


def merge_fleet(old: list[NodeInfo], view: NodeView) -> tuple[list[NodeInfo], dict[str, str]]:
    """The fleet after one read: `old` in its order (each alive if Ray lists it alive with the
    same shape), then the live nodes new to it, sorted. Also the nodes left out and why (by
    Ray node id): a known node back with another shape, a new node whose flavor the fleet
    already has with another GPU count (the topology has one per flavor)."""
    why: dict[str, str] = {}
    gpn = {n.flavor: n.gpus for n in old}
    out = []
    for n in old:
        now = view.nodes.get(n.name)
        alive = now is not None and now.alive
        if alive and now is not None and _shape(now) != _shape(n):
            why[view.ray_ids.get(n.name, n.name)] = (
                f"node {n.name}: back with {now.gpus} x {now.flavor}, its place in the fleet is "
                f"{n.gpus} x {n.flavor}: down until it matches (or the fleet file is reset)"
            )
            alive = False
        out.append(n if n.alive == alive else _with_alive(n, alive))
    known = {n.name for n in old}
    new = [n for n in view.nodes.values() if n.alive and n.name not in known]
    for n in sorted(new, key=node_order):
        if gpn.setdefault(n.flavor, n.gpus) != n.gpus:
            why[view.ray_ids.get(n.name, n.name)] = (
                f"node {n.name}: {n.gpus} GPUs, but its flavor {n.flavor} has {gpn[n.flavor]} "
                "in the fleet"
            )
            continue
        out.append(n)
    return out, why


def _draining_nodes() -> dict[str, int]:
    """Ray's nodes being drained: hex node id -> deadline in ms since the epoch (0: none). A
    GCS call with no public API in Ray 2.60 (its autoscaler reads the same table); {} when it
    fails, so a Ray without it only loses the early notice, never the fleet read."""
    try:
        from ray._private.state import state

        got = state.get_draining_nodes()
        return {str(k): int(v) for k, v in got.items()}
    except Exception as err:
        log.debug("draining nodes: %s", err)
        return {}


def _drain_why(deadline_ms: int) -> str:
    if deadline_ms <= 0:
        return "being drained by Ray (no deadline)"
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deadline_ms / 1e3))
    return f"being drained by Ray (deadline {at})"


def _with_alive(n: NodeInfo, alive: bool) -> NodeInfo:
    return NodeInfo(n.name, n.flavor, n.gpus, n.pod, n.rack, alive, n.address)


class MembershipMixin:
    # Owned by RayExecutor (declared here for the type checker).
    root: Path
    default_flavor: str
    connected: bool
    _alive: dict[str, bool]
    _ray_ids: dict[str, str]
    _lost: dict[str, tuple[str | None, float]]
    _changes: list[tuple[str, bool]]
    _fleet_read: float
    _ignored: IgnoredLog
    _fleet: list[NodeInfo] | None
    fleet_version: int
    address: str | None
    _reader: threading.Thread | None = None
    _last_fetched: Fetched | None = None
    # Ray's draining nodes at the last read (hex id -> deadline, ms since the epoch, 0: none),
    # and the fleet's nodes being drained or gone on purpose, with why (planned_removals()).
    _draining_ids: dict[str, int] = {}  # noqa: RUF012  (replaced whole, never mutated)
    _planned: dict[str, str] = {}  # noqa: RUF012  (likewise)
    _deadlines: dict[str, float] = {}  # noqa: RUF012  (likewise; drain_deadlines())

    if TYPE_CHECKING:  # RayExecutor's (headloss.py)

        def _head_gone(self, *, every_s: float = 0.0) -> str | None: ...
        def _head_lost(self, why: str) -> None: ...

    def start_offline(self) -> ExecutorFleet | None:
        """The cluster cannot be reached now: the last fleet read, every node down, and
        reconnection attempts from poll() on (the nodes come up through node_changes()).
        None without a saved fleet."""
        nodes = load_fleet(self.root)
        if nodes is None:
            return None
        self._set_fleet(nodes, up=False)
        return self.current_fleet()

    def discover(self) -> ExecutorFleet:
        """The fleet (see the module's doc for its order); ValueError while it has no node."""
        self._read(time.monotonic())
        fleet = self.current_fleet()
        if fleet is None:
            raise ValueError("fleet: the Ray cluster has no usable node (see the log)")
        return fleet

    def current_fleet(self) -> ExecutorFleet | None:
        """The fleet in its stable order; None while no node was ever seen (then, if the
        cluster answers, it is read, at most every FLEET_EVERY_S)."""
        now = time.monotonic()
        if self._fleet is None and self.connected and now - self._fleet_read >= FLEET_EVERY_S:
            self._read(now)
        if not self._fleet:
            return None
        return build_fleet(self._fleet, name="ray", keep_order=True)

    def _set_fleet(self, nodes: list[NodeInfo], *, up: bool) -> None:
        """The fleet from the saved file. The loop starts with every node up: `up` keeps that
        (the read that follows reports the dead ones down); else every node is down for the
        loop as well, at its first sync, so no launch goes to a node not seen yet."""
        self._fleet = list(nodes)
        self.fleet_version += 1
        self._alive = {n.name: up for n in nodes}
        self._changes = [] if up else [(n.name, False) for n in nodes]

    def _read(self, now: float, fetched: Fetched | None = None) -> None:
        """Read Ray's nodes (or take what the reader thread `fetched`): the fleet grows by
        the nodes that joined; `_changes` gets the fleet's nodes that went down or came back."""
        if self._fleet is None:
            saved = load_fleet(self.root)
            if saved is not None:
                self._set_fleet(saved, up=True)
        self._fleet_read = now
        if fetched is None:
            # ray.nodes() would block for as long as the head is away: probe it first.
            fetched = (None, self._head_gone())
            if fetched[1] is None:
                fetched = (ray.nodes(), None)
                self._draining_ids = _draining_nodes()
        raw, gone = fetched
        if gone is not None or raw is None:
            self._head_lost(gone or "no answer")
            return
        view = read_nodes(raw, self.default_flavor)
        old = self._fleet or []
        nodes, why = merge_fleet(old, view)
        self._ignored.report({**view.ignored, **why})
        joined = nodes[len(old) :]
        if joined:
            self._fleet = nodes
            self.fleet_version += 1
            save_fleet(self.root, nodes)
            for n in joined:
                self._alive[n.name] = True
                self._ray_ids[n.name] = view.ray_ids.get(n.name, "")
                if old:  # the first read is one line, however many nodes (below)
                    log.warning("Ray node %s joined the fleet: %d x %s", n.name, n.gpus, n.flavor)
            if not old:
                log.info("ray: fleet of %d nodes, %d GPUs", len(nodes), sum(n.gpus for n in nodes))
        for n, was in zip(nodes[: len(old)], old, strict=True):
            self._update(n.name, n.alive and _shape(n) == _shape(was), view, now)
        self._note_planned(view)

    def _note_planned(self, view: NodeView) -> None:
        """Nodes Ray drains (alive, no new work for them) or that left on purpose (Ray's death
        reason); a node that was draining when it died keeps that reason while it is down."""
        names = {rid: name for name, rid in view.ray_ids.items()}
        planned = {
            names[rid]: _drain_why(deadline_ms)
            for rid, deadline_ms in self._draining_ids.items()
            if rid in names and view.nodes[names[rid]].alive
        }
        self._deadlines = {
            names[rid]: deadline_ms / 1e3
            for rid, deadline_ms in self._draining_ids.items()
            if rid in names and view.nodes[names[rid]].alive and deadline_ms > 0
        }
        planned.update(view.planned)
        kept = {n: w for n, w in self._planned.items() if not self._alive.get(n, False)}
        self._planned = {**kept, **planned}

    def drain_deadlines(self) -> dict[str, float]:
        """The fleet's nodes Ray drains with a deadline: name -> the deadline (seconds since
        the epoch), when Ray's caller may end the node; the loop checkpoints their jobs first."""
        return dict(self._deadlines)

    def planned_removals(self) -> dict[str, str]:
        """The fleet's nodes Ray is draining, or that left on purpose (stopped by an operator,
        drained), with why: the loop keeps new work off them and counts no strike against
        their health when they go (control/loop_health.py)."""
        return dict(self._planned)

    def _update(self, name: str, alive: bool, view: NodeView, now: float) -> None:
        if name in self._lost:
            ray_id, since = self._lost[name]
            same = view.ray_ids.get(name) == ray_id and now - since < LOST_HOLD_S
            if alive and same:
                alive = False  # the very node we lost: Ray has not noticed yet
            elif alive:
                del self._lost[name]  # back under a new Ray id
        if alive:
            self._ray_ids[name] = view.ray_ids.get(name, "")
        if self._alive.get(name) != alive:
            self._alive[name] = alive
            self._changes.append((name, alive))

    def node_changes(self, *, force: bool = False) -> list[tuple[str, bool]]:
        """Nodes of the fleet that went down or came back since the last call: (name, alive).
        A node that rejoins keeps its label (and so its place in the fleet) under a new Ray
        id; a label new to the fleet joins it (fleet_version, current_fleet)."""
        now = time.monotonic()
        if self.connected and force:
            self._read(now)
        elif self.connected:
            fetched = self._fetched()
            if fetched is not None:
                self._read(now, fetched)
        changes, self._changes = self._changes, []
        return changes

    # The loop's ticks never wait for the GCS: a reader thread reads the nodes every
    # FLEET_EVERY_S (a GCS call, 4-10 ms here) and leaves the last answer for node_changes().
    def _fetched(self) -> Fetched | None:
        """The reader's last answer, taken once; starts the reader if it is not running."""
        if self._reader is None or not self._reader.is_alive():
            self._reader = threading.Thread(target=self._read_nodes, name="ray-nodes", daemon=True)
            self._reader.start()
        got, self._last_fetched = self._last_fetched, None
        return got

    def _read_nodes(self) -> None:
        """The reader thread: until the driver disconnects (a lost head ends it too)."""
        while self.connected and ray.is_initialized():
            try:
                probe(self.address, timeout_s=1.0)
            except ConnectionError as err:
                self._last_fetched = (None, str(err))
                return
            try:
                raw = ray.nodes()
                self._draining_ids = _draining_nodes()
                self._last_fetched = (raw, None)
            except Exception as err:  # a call racing a disconnection: the next one tells
                log.debug("ray.nodes(): %s", err)
            time.sleep(FLEET_EVERY_S)

    def _node_lost(self, name: str) -> None:
        """A gang's agent died with its node: the node is down from now, not from when Ray's
        health checks mark it dead, so the loop does not place the requeued job on it."""
        if name not in self._lost:
            self._lost[name] = (self._ray_ids.get(name), time.monotonic())
        if self._alive.get(name, False):
            self._alive[name] = False
            self._changes.append((name, False))

    def _all_down(self, why: str) -> None:
        """The cluster is gone (its head lost): every node of the fleet down for the loop."""
        for name, alive in self._alive.items():
            if alive:
                self._alive[name] = False
                self._changes.append((name, False))
        if self._alive:
            log.error("ray: every node of the fleet down: %s", why)
