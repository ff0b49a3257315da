"""A bare gang-scheduling event loop, the yardstick for the twin's speed: FIFO over per-pod
free-node counts, whole nodes per job, no quotas, backfill, failures, checkpoints or metrics.
Not product code: it only shows what the twin's extra work costs."""

from __future__ import annotations

import heapq

from cortex.fleet.topology import Topology
from cortex.workload.job import Job


def bare_loop(topo: Topology, jobs: list[Job], horizon_s: float) -> int:
    """Run FIFO to the horizon; returns the number of events handled."""
    g = topo.flavor_gpus_per_node[0]
    pod_free = [len(ns) for ns in topo.pod_nodes]
    heap: list[tuple[float, int, int, tuple[tuple[int, int], ...]]] = []
    seq = 0
    for j in jobs:
        seq += 1
        heap.append((j.submit_s, 1, seq, ((j.gpus, int(j.work_s)),)))
    heapq.heapify(heap)
    queue: list[tuple[int, int]] = []
    events = 0
    while heap and heap[0][0] <= horizon_s:
        t, kind, _, payload = heapq.heappop(heap)
        events += 1
        if kind == 0:  # finish: return nodes
            for p, k in payload:
                pod_free[p] += k
        else:
            queue.append(payload[0])
        while queue:
            gpus, dur = queue[0]
            need = max(1, -(-gpus // g))
            taken: list[tuple[int, int]] = []
            for p, free in enumerate(pod_free):
                if free:
                    k = min(free, need)
                    taken.append((p, k))
                    need -= k
                    if need == 0:
                        break
            if need:
                break
            for p, k in taken:
                pod_free[p] -= k
            queue.pop(0)
            seq += 1
            heapq.heappush(heap, (t + dur, 0, seq, tuple(taken)))
    return events
