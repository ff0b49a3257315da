"""An executor's fleet in the twin's vocabulary: the nodes an executor offers (name, flavor, GPU
count, pod, rack, up or not) and the FleetSpec the scheduler loop builds its topology from.
Executor-neutral: the Ray executor fills it from node labels; any multi-node executor can."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import groupby

from cortex.fleet.spec import FleetSpec, HallSpec, NodeGroup


@dataclass(frozen=True)
class NodeInfo:
    name: str  # the stable name (a label), never the executor's own id, which can change
    flavor: str  # fleet catalog name, e.g. "H100-SXM5"
    gpus: int
    pod: str
    rack: str
    alive: bool = True
    address: str = ""


@dataclass(frozen=True)
class ExecutorFleet:
    """The nodes in topology order (node index n of the loop's topology is `nodes[n]`)."""

    spec: FleetSpec
    nodes: tuple[NodeInfo, ...]

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    kind = "gpu"  # an executor's fleet offers GPUs (as the local Inventory's `kind`)

    @property
    def devices(self) -> list[int]:
        """The loop's device ids: node n's GPUs follow node n-1's."""
        return list(range(sum(n.gpus for n in self.nodes)))

    @property
    def flavor(self) -> str:
        """The most common flavor (the loop's throughput table is per one flavor)."""
        if not self.nodes:  # a pending fleet: its placeholder's flavor
            return self.spec.halls[0].groups[0].flavor
        return Counter(n.flavor for n in self.nodes).most_common(1)[0][0]

    @property
    def pending(self) -> bool:
        """No node seen yet (see pending_fleet)."""
        return not self.nodes


def _per(labels: list[str]) -> int:
    """Nodes per pod (or rack) for a group: the largest label's count (informative only: the
    topology takes each node's pod and rack from its labels, NodeGroup.pods and racks)."""
    return max(Counter(labels).values())


def node_order(n: NodeInfo) -> tuple[str, int, str, str, str]:
    """The order of nodes new to a fleet: by flavor, GPU count, pod, rack and name."""
    return (n.flavor, n.gpus, n.pod, n.rack, n.name)


def build_fleet(
    nodes: list[NodeInfo], name: str = "executor", *, keep_order: bool = False
) -> ExecutorFleet:
    """Group identical nodes (flavor, GPUs per node) in a stable order: sorted (node_order),
    so the same nodes give the same node indices every time; with `keep_order`, in the order
    given (a fleet that grew: its nodes keep their indices, joined ones come after), each run
    of identical nodes a group of its own. Pods and racks are the nodes' own (labels): nodes of
    one flavor with the same pod label share a pod in the topology, whatever their order."""
    if not nodes:
        raise ValueError("fleet: the executor offers no usable node")
    gpn: dict[str, int] = {}
    for n in nodes:  # the topology has one GPU count per flavor
        if gpn.setdefault(n.flavor, n.gpus) != n.gpus:
            raise ValueError(f"fleet: node {n.name}: {n.gpus} GPUs, its flavor has {gpn[n.flavor]}")
    ordered = list(nodes) if keep_order else sorted(nodes, key=node_order)
    groups = []
    for (flavor, gpus), members in groupby(ordered, key=lambda n: (n.flavor, n.gpus)):
        ms = list(members)
        groups.append(
            NodeGroup(
                flavor=flavor,
                nodes=len(ms),
                gpus_per_node=gpus,
                nodes_per_pod=_per([n.pod for n in ms]),
                nodes_per_rack=_per([f"{n.pod}/{n.rack}" for n in ms]),
                # Exactly as labelled: a node that joined later lands in its pod (and rack)
                # with the nodes labelled alike, though it comes in a later group.
                pods=[n.pod for n in ms],
                racks=[n.rack for n in ms],
            )
        )
    spec = FleetSpec(
        name=name,
        description=f"{len(ordered)} nodes from the executor",
        halls=[HallSpec(name=name, groups=groups)],
    )
    return ExecutorFleet(spec=spec, nodes=tuple(ordered))


def pending_fleet(flavor: str, name: str = "executor") -> ExecutorFleet:
    """No node seen yet (a cluster unreachable at the very first start): no node, and a
    one-node placeholder spec the loop builds its structures on but never schedules on
    (`SchedulerLoop.fleet_pending`); the executor's first fleet replaces it."""
    group = NodeGroup(flavor=flavor, nodes=1, gpus_per_node=1, nodes_per_pod=1, nodes_per_rack=1)
    spec = FleetSpec(
        name=name,
        description="no node yet (placeholder)",
        halls=[HallSpec(name=name, groups=[group])],
    )
    return ExecutorFleet(spec=spec, nodes=())
