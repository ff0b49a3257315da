"""Hot spares in the twin: `per_pod` nodes of every pod are held out of scheduling, and a gang
that loses a node to a failure swaps in a spare of the same pod instead of going back to the
queue. It keeps its checkpointed work as any failed run does, owes the detection time plus its
recovery and restart overhead divided by the standby speed-up (sim/data/spares.csv, from
ByteRobust), and restarts at once on its old nodes and the spare. A repaired node refills its
pod's pool when the pool is short, else returns to service.

The pool's GPU-time is booked as `hot_spare` (carved out of `down`, since the state holds spares
out of service like down nodes), so the GPU-hour categories still sum to installed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from cortex.fleet.topology import Topology
from cortex.scheduler.state import ClusterState, Placement


@cache
def swap_speedup() -> float:
    text = resources.files("cortex.sim").joinpath("data/spares.csv").read_text()
    rows = {r["name"]: float(r["value"]) for r in csv.DictReader(text.splitlines())}
    return rows["swap_speedup"]


@dataclass
class SparePool:
    per_pod: int
    topo: Topology
    spares: dict[int, set[int]] = field(default_factory=dict)  # pod -> its spare nodes now
    gpu_s: float = 0.0  # GPU-seconds held as spares, up to `_since`
    swaps: int = 0
    _gpus: int = 0  # GPUs in the pool now
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
                self._gpus += state.gpn[self.topo.node_flavor[n]]

    def _book(self, now: float) -> None:
        self.gpu_s += self._gpus * (now - self._since)
        self._since = now

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
        self._gpus -= state.gpn[self.topo.node_flavor[spare]]
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
            self._gpus += state.gpn[self.topo.node_flavor[node]]
        else:
            state.set_up(node)

    def close(self, horizon_s: float) -> None:
        self._book(horizon_s)

    def report(self) -> dict[str, float | int]:
        return {
            "per_pod": self.per_pod,
            "swaps": self.swaps,
            "spare_gpu_h": round(self.gpu_s / 3600.0, 3),
        }
