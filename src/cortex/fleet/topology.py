"""Topology: the fleet expanded into flat index arrays (site -> hall -> pod -> rack -> node).

Everything is an integer index into plain lists, so that placement and the twin can look things
up in O(1) without walking object graphs. Built once per fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex.fleet.catalog import Accelerator, load_catalog
from cortex.fleet.spec import FleetSpec, NodeGroup


@dataclass(frozen=True)
class Topology:
    """A built fleet: flavors, and for each node its flavor, pod, rack and hall."""

    spec: FleetSpec
    flavors: tuple[str, ...]
    accelerators: tuple[Accelerator, ...]
    flavor_gpus_per_node: tuple[int, ...]
    hall_names: tuple[str, ...]
    node_flavor: list[int] = field(repr=False)
    node_pod: list[int] = field(repr=False)
    node_rack: list[int] = field(repr=False)
    node_hall: list[int] = field(repr=False)
    node_overhead_w: list[float] = field(repr=False)
    pod_flavor: list[int] = field(repr=False)
    pod_hall: list[int] = field(repr=False)
    pod_nodes: list[tuple[int, ...]] = field(repr=False)
    n_racks: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def n_nodes(self) -> int:
        return len(self.node_flavor)

    @property
    def n_pods(self) -> int:
        return len(self.pod_flavor)

    def flavor_nodes(self) -> list[int]:
        out = [0] * len(self.flavors)
        for f in self.node_flavor:
            out[f] += 1
        return out

    def flavor_gpus(self) -> list[int]:
        return [n * g for n, g in zip(self.flavor_nodes(), self.flavor_gpus_per_node, strict=True)]

    @property
    def total_gpus(self) -> int:
        return sum(self.flavor_gpus())


def alloc_size(gpus: int, gpus_per_node: int) -> int:
    """GPUs a gang holds: a gang larger than a node takes whole nodes."""
    if gpus <= gpus_per_node:
        return gpus
    return -(-gpus // gpus_per_node) * gpus_per_node


class _Builder:
    """The index arrays as build() fills them, group by group."""

    def __init__(self) -> None:
        self.node_flavor: list[int] = []
        self.node_pod: list[int] = []
        self.node_rack: list[int] = []
        self.node_hall: list[int] = []
        self.node_overhead: list[float] = []
        self.pod_flavor: list[int] = []
        self.pod_hall: list[int] = []
        self.pod_nodes: list[list[int]] = []
        self.racks = 0
        # Labelled groups: (hall, flavor, pod name) -> pod; (pod, rack name) -> rack.
        self.pod_named: dict[tuple[int, int, str], int] = {}
        self.rack_named: dict[tuple[int, str], int] = {}

    def node(self, f: int, p: int, r: int, h: int, overhead_w: float) -> None:
        self.pod_nodes[p].append(len(self.node_flavor))
        self.node_flavor.append(f)
        self.node_pod.append(p)
        self.node_rack.append(r)
        self.node_hall.append(h)
        self.node_overhead.append(overhead_w)

    def pod(self, f: int, h: int) -> int:
        self.pod_flavor.append(f)
        self.pod_hall.append(h)
        self.pod_nodes.append([])
        return len(self.pod_flavor) - 1

    def cut(self, grp: NodeGroup, f: int, h: int, overhead_w: float) -> None:
        """A group cut into pods of nodes_per_pod in order (the last may be partial), each
        cut into racks of nodes_per_rack."""
        remaining = grp.nodes
        while remaining > 0:
            size = min(grp.nodes_per_pod, remaining)
            remaining -= size
            p = self.pod(f, h)
            first = len(self.node_flavor)
            self.pod_nodes[p].extend(range(first, first + size))
            for i in range(size):
                if i % grp.nodes_per_rack == 0:
                    self.racks += 1
                self.node_rack.append(self.racks - 1)
            self.node_flavor.extend([f] * size)
            self.node_pod.extend([p] * size)
            self.node_hall.extend([h] * size)
            self.node_overhead.extend([overhead_w] * size)

    def labelled(self, grp: NodeGroup, f: int, h: int, overhead_w: float) -> None:
        """A group whose nodes name their pod and rack: each joins the pod of that name (of
        its flavor, in its hall), made when first named; pod and rack ids follow first use."""
        assert grp.pods is not None and grp.racks is not None
        for pod, rack in zip(grp.pods, grp.racks, strict=True):
            p = self.pod_named.get((h, f, pod))
            if p is None:
                p = self.pod_named[h, f, pod] = self.pod(f, h)
            r = self.rack_named.get((p, rack))
            if r is None:
                r = self.rack_named[p, rack] = self.racks
                self.racks += 1
            self.node(f, p, r, h, overhead_w)


def build(spec: FleetSpec) -> Topology:
    """Expand a FleetSpec into index arrays."""
    catalog = load_catalog()
    flavors: list[str] = []
    gpn: list[int] = []
    b = _Builder()
    for h, hall in enumerate(spec.halls):
        for grp in hall.groups:
            if grp.flavor not in flavors:
                flavors.append(grp.flavor)
                gpn.append(grp.gpus_per_node)
            f = flavors.index(grp.flavor)
            overhead = (
                grp.node_overhead_w
                if grp.node_overhead_w is not None
                else catalog[grp.flavor].node_overhead_w
            )
            if grp.pods is None:
                b.cut(grp, f, h, overhead)
            else:
                b.labelled(grp, f, h, overhead)
    return Topology(
        spec=spec,
        flavors=tuple(flavors),
        accelerators=tuple(catalog[f] for f in flavors),
        flavor_gpus_per_node=tuple(gpn),
        hall_names=tuple(h.name for h in spec.halls),
        node_flavor=b.node_flavor,
        node_pod=b.node_pod,
        node_rack=b.node_rack,
        node_hall=b.node_hall,
        node_overhead_w=b.node_overhead,
        pod_flavor=b.pod_flavor,
        pod_hall=b.pod_hall,
        pod_nodes=[tuple(ns) for ns in b.pod_nodes],
        n_racks=b.racks,
    )
