"""Basic IT power accounting: busy and idle accelerators plus node overhead. Facility power is
one model for every caller, `cortex.power.cooling.CoolingModel.facility_w` (IT x slope(T) + a
fixed share of nameplate); this bottom layer cannot import it, so callers apply it."""

from __future__ import annotations

from dataclasses import dataclass

from cortex.fleet.topology import Topology


@dataclass(frozen=True, slots=True)
class PowerModel:
    """Per-flavor draw figures from the catalog, arranged for O(flavors) evaluation."""

    busy_w: tuple[float, ...]
    idle_w: tuple[float, ...]
    tdp_w: tuple[float, ...]
    flavor_overhead_w: tuple[float, ...]  # sum of node overheads per flavor, all nodes up

    @classmethod
    def for_topology(cls, topo: Topology) -> PowerModel:
        overhead = [0.0] * len(topo.flavors)
        for n, f in enumerate(topo.node_flavor):
            overhead[f] += topo.node_overhead_w[n]
        return cls(
            busy_w=tuple(a.busy_w for a in topo.accelerators),
            idle_w=tuple(a.idle_w for a in topo.accelerators),
            tdp_w=tuple(a.tdp_w for a in topo.accelerators),
            flavor_overhead_w=tuple(overhead),
        )

    def it_power_w(self, busy_gpus: list[int], up_gpus: list[int], up_frac: list[float]) -> float:
        """IT draw: busy GPUs at busy_w, other healthy GPUs at idle_w, overhead of healthy nodes.

        `up_frac[f]` is the fraction of flavor f's nodes in service (failed nodes draw nothing).
        """
        total = 0.0
        for f in range(len(self.busy_w)):
            b = busy_gpus[f]
            total += b * self.busy_w[f] + (up_gpus[f] - b) * self.idle_w[f]
            total += self.flavor_overhead_w[f] * up_frac[f]
        return total

    def peak_it_w(self, flavor_gpus: list[int]) -> float:
        """Every GPU at TDP and every node up: the IT nameplate."""
        it = sum(g * t for g, t in zip(flavor_gpus, self.tdp_w, strict=True))
        return it + sum(self.flavor_overhead_w)

    def busy_it_w(self, flavor_gpus: list[int]) -> float:
        """Every GPU at its measured training draw."""
        it = sum(g * b for g, b in zip(flavor_gpus, self.busy_w, strict=True))
        return it + sum(self.flavor_overhead_w)
