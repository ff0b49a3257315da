"""Hot spares, for both drivers: `per_pod` nodes of every pod are held out of scheduling, and a
gang that loses a node to a failure swaps in a spare of the same pod instead of going back to
the queue; a repaired node refills its pod's pool when the pool is short, else returns to
service. Pure over the scheduler's cluster state: the twin (sim/spares.py, its books and the
standby speed-up) and the control plane (control/loop_health.py) drive it. Nodes are the
state's node indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex.fleet.topology import Topology
from cortex.scheduler.state import ClusterState, Placement


@dataclass
class SparePool:
    per_pod: int
    topo: Topology
    spares: dict[int, set[int]] = field(default_factory=dict)  # pod -> its spare nodes now
    gpu_s: float = 0.0  # GPU-seconds held as spares, up to `_since`
    swaps: int = 0
    gpu_s_by_flavor: dict[int, float] = field(default_factory=dict)  # gpu_s split by flavor
    _gpus: int = 0  # GPUs in the pool now
    _gpus_by_flavor: dict[int, int] = field(default_factory=dict)
    _since: float = 0.0

    def __post_init__(self) -> None:
        if self.per_pod < 0:
            raise ValueError(f"hot_spares_per_pod: must be >= 0, got {self.per_pod}")

    def hold(self, state: ClusterState) -> None:
        """Take the last `per_pod` nodes of every pod out of service as its spares (a pod keeps
        at least one node in service)."""
        for p, nodes in enumerate(self.topo.pod_nodes):
            k = min(self.per_pod, len(nodes) - 1)
            for n in nodes[len(nodes) - k :]:
                state.set_down(n)
                self.spares.setdefault(p, set()).add(n)
                self._count(n, state.gpn[self.topo.node_flavor[n]])

    def _book(self, now: float) -> None:
        dt = now - self._since
        self.gpu_s += self._gpus * dt
        for f, g in self._gpus_by_flavor.items():
            self.gpu_s_by_flavor[f] = self.gpu_s_by_flavor.get(f, 0.0) + g * dt
        self._since = now

    def _count(self, node: int, gpus: int) -> None:
        """`gpus` more (or fewer) GPUs in the pool, on `node`'s flavor."""
        self._gpus += gpus
        f = int(self.topo.node_flavor[node])
        self._gpus_by_flavor[f] = self._gpus_by_flavor.get(f, 0) + gpus

    def swap(
        self, state: ClusterState, placement: Placement, failed: int, now: float
    ) -> Placement | None:
        """A spare of the failed node's pod, brought into service, in the failed node's place;
        None when the pod has none left."""
        pool = self.spares.get(self.topo.node_pod[failed])
        if not pool:
            return None
        self._book(now)
        spare = min(pool)  # the same choice in every run
        pool.remove(spare)
        self._count(spare, -state.gpn[self.topo.node_flavor[spare]])
        state.set_up(spare)
        self.swaps += 1
        return tuple((spare if n == failed else n, k) for n, k in placement)

    def repaired(self, state: ClusterState, node: int, now: float) -> None:
        """A repaired node refills its pod's pool if it is short, else returns to service."""
        p = self.topo.node_pod[node]
        pool = self.spares.setdefault(p, set())
        if len(pool) < min(self.per_pod, len(self.topo.pod_nodes[p]) - 1):
            self._book(now)
            pool.add(node)
            self._count(node, state.gpn[self.topo.node_flavor[node]])
        else:
            state.set_up(node)

    def drop(self, node: int, now: float) -> bool:
        """Take a node out of its pod's pool (a spare that failed or was drained cannot stand
        in; once repaired it refills the pool through `repaired`). True if it was a spare."""
        pool = self.spares.get(self.topo.node_pod[node])
        if not pool or node not in pool:
            return False
        self._book(now)
        pool.remove(node)
        self._count(node, -self._gpn(node))
        return True

    def _gpn(self, node: int) -> int:
        return int(self.topo.flavor_gpus_per_node[self.topo.node_flavor[node]])

    def keep_out(self, state: ClusterState) -> bool:
        """Hold the pool's nodes out of service again (a driver that rebuilds its state brings
        every node back up); True if any was up."""
        changed = False
        for pool in self.spares.values():
            for n in pool:
                if state.node_up[n] and not state.jobs_on(n):
                    state.set_down(n)
                    changed = True
        return changed

    def close(self, horizon_s: float) -> None:
        self._book(horizon_s)

    def report(self) -> dict[str, float | int]:
        return {
            "per_pod": self.per_pod,
            "swaps": self.swaps,
            "spare_gpu_h": round(self.gpu_s / 3600.0, 3),
        }
