"""Topology: the fleet expanded into flat index arrays (site -> hall -> pod -> rack -> node).

Everything is an integer index into plain lists, so that placement and the twin can look things
up in O(1) without walking object graphs. Built once per fleet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cortex.fleet.catalog import Accelerator, load_catalog
from cortex.fleet.spec import FleetSpec


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


def build(spec: FleetSpec) -> Topology:
    """Expand a FleetSpec into index arrays."""
    catalog = load_catalog()
    flavors: list[str] = []
    gpn: list[int] = []
    node_flavor: list[int] = []
    node_pod: list[int] = []
    node_rack: list[int] = []
    node_hall: list[int] = []
    node_overhead: list[float] = []
    pod_flavor: list[int] = []
    pod_hall: list[int] = []
    pod_nodes: list[tuple[int, ...]] = []
    rack = 0
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
            remaining = grp.nodes
            while remaining > 0:
                size = min(grp.nodes_per_pod, remaining)
                remaining -= size
                p = len(pod_flavor)
                first = len(node_flavor)
                for i in range(size):
                    if i % grp.nodes_per_rack == 0:
                        rack += 1
                    node_flavor.append(f)
                    node_pod.append(p)
                    node_rack.append(rack - 1)
                    node_hall.append(h)
                    node_overhead.append(overhead)
                pod_flavor.append(f)
                pod_hall.append(h)
                pod_nodes.append(tuple(range(first, first + size)))
    return Topology(
        spec=spec,
        flavors=tuple(flavors),
        accelerators=tuple(catalog[f] for f in flavors),
        flavor_gpus_per_node=tuple(gpn),
        hall_names=tuple(h.name for h in spec.halls),
        node_flavor=node_flavor,
        node_pod=node_pod,
        node_rack=node_rack,
        node_hall=node_hall,
        node_overhead_w=node_overhead,
        pod_flavor=pod_flavor,
        pod_hall=pod_hall,
        pod_nodes=pod_nodes,
        n_racks=rack,
    )
