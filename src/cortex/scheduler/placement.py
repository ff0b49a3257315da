"""Gang placement, all or nothing, topology-aware and best-fit.

A gang that fits in a node goes to the fullest node that holds it. A larger gang takes whole
nodes: from one pod if any pod holds it (the pod with the fewest free nodes that suffices), else
from as few pods as possible of one hall (the hall with the least free room that suffices),
else across halls. Searches walk the bucketed indices of ClusterState, never all nodes.
"""

from __future__ import annotations

from itertools import islice
from typing import Protocol

from cortex.compiled import mypyc_attr
from cortex.fleet.topology import alloc_size
from cortex.scheduler.state import ClusterState, Placement

__all__ = ["PLACEMENTS", "PlacementPolicy", "TopologyBestFit", "WholeNodes", "alloc_size"]


@mypyc_attr(native_class=False)  # mypyc makes no native subclass of tuple
class WholeNodes(tuple[tuple[int, int], ...]):
    """A placement of whole nodes that the search built pod by pod, with its GPUs per hall
    (`halls`: hall_shares' dict, the halls in the order the placement first names them), counted
    as it took each pod's nodes: power admission reads them instead of each node's hall (RESULTS
    section 149: ~1.1M nodes a month under `full`). It is the tuple of (node, GPUs) pairs in
    every other respect: equal to, and hashed as, the plain tuple of the same pairs."""

    halls: dict[int, int]


class PlacementPolicy(Protocol):
    """Finds nodes for a gang on the (tentative) state, or None; never mutates it."""

    name: str

    def place(self, state: ClusterState, flavor: int, gpus: int) -> Placement | None: ...


class TopologyBestFit:
    """Smallest network block that holds the gang (node, pod, hall), best-fit within it."""

    name = "topology"

    def place(self, state: ClusterState, flavor: int, gpus: int) -> Placement | None:
        g = state.gpn[flavor]
        if gpus <= g:
            return _in_one_node(state, flavor, gpus)
        need = -(-gpus // g)
        if need * g > state.free_gpus[flavor]:
            return None
        # Whole nodes are all a large gang can use, and the search below fails exactly when
        # the halls together hold fewer than it needs: say so from four counters rather than
        # walk every pod's bucket (blocked gangs behind a head ask this many times a pass).
        if need > state.free_whole_nodes(flavor):
            return None
        buckets = state.pod_bucket[flavor]
        for c in range(need, len(buckets)):
            if buckets[c]:
                pod = next(iter(buckets[c]))
                pair = state.whole_pair.__getitem__
                one = WholeNodes(map(pair, islice(state.pod_whole[pod], need)))
                one.halls = {state.pod_hall[pod]: need * g}  # a pod lies in one hall
                return one
        return _across_pods(state, flavor, need)


def _in_one_node(state: ClusterState, flavor: int, gpus: int) -> Placement | None:
    part = state.part[flavor]
    for k in range(gpus, len(part)):
        if part[k]:
            return ((next(iter(part[k])), gpus),)
    # No partly used node fits: break a free node in the pod with the fewest free nodes, to keep
    # large free pods whole for large gangs.
    for bucket in state.pod_bucket[flavor][1:]:
        if bucket:
            pod = next(iter(bucket))
            return ((next(iter(state.pod_whole[pod])), gpus),)
    return None


def _across_pods(state: ClusterState, flavor: int, need: int) -> Placement | None:
    halls = [(state.hall_whole[h][flavor], h) for h in range(len(state.hall_whole))]
    fitting = sorted(x for x in halls if x[0] >= need)
    chosen = [fitting[0][1]] if fitting else [h for _, h in sorted(halls, reverse=True)]
    if sum(state.hall_whole[h][flavor] for h in chosen) < need:
        return None
    # Pods in (hall rank, most free nodes, pod id) order, taken until the gang is full: walk
    # the chosen halls in rank order and the buckets from the fullest down, sorting only one
    # bucket's pods at a time, instead of sorting every pod with a free node.
    buckets = state.pod_bucket[flavor]
    pod_hall = state.pod_hall
    pod_whole = state.pod_whole
    pair = state.whole_pair.__getitem__
    out: list[tuple[int, int]] = []
    # GPUs per hall as the halls are walked: the chosen halls in order, each hall's nodes
    # together, so a hall that gave nodes is named first where its count starts.
    by_hall: dict[int, int] = {}
    g = state.gpn[flavor]
    for h in chosen:
        before = len(out)
        for c in range(len(buckets) - 1, 0, -1):
            bucket = buckets[c]
            if not bucket:
                continue
            for p in sorted(p for p in bucket if pod_hall[p] == h):
                # The pod's first free nodes in its order, as (node, g): islice and map walk
                # them in C (a gang across pods takes hundreds of nodes), the pairs made once.
                out.extend(map(pair, islice(pod_whole[p], need - len(out))))
                if len(out) == need:
                    by_hall[h] = (need - before) * g
                    placed = WholeNodes(out)
                    placed.halls = by_hall
                    return placed
        if len(out) > before:
            by_hall[h] = (len(out) - before) * g
    return None


PLACEMENTS: dict[str, type[TopologyBestFit]] = {"topology": TopologyBestFit}
