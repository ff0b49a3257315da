"""The per-node writes of a whole-node gang's `Capacity.give` (scheduler/capacity.py): the
Python loop it runs against the same writes as C-level maps (RESULTS 71). In-process, ns per
node, the best of five rounds.

    PYTHONPATH=src python bench/node_writes.py
"""

from __future__ import annotations

import time
from collections import deque
from itertools import groupby, repeat
from operator import itemgetter

_SINK: deque[object] = deque(maxlen=0)
_drain = _SINK.extend
NODES, POD_NODES, ROUNDS = 8192, 16, 5


def loop(pl: tuple, node_pod: list, pod_whole: list, node_free: list, node_jobs: list) -> None:
    """As `Capacity.give` writes a whole-node gang back (job 7, 8 GPUs per node)."""
    touched: dict[int, int] = {}
    for p, run in groupby(map(itemgetter(0), pl), node_pod.__getitem__):
        pw = pod_whole[p]
        before = len(pw)
        for n in run:
            del node_jobs[n][7]
            node_free[n] = 8
            pw[n] = None
        touched[p] = touched.get(p, 0) + len(pw) - before


def maps(pl: tuple, node_pod: list, pod_whole: list, node_free: list, node_jobs: list) -> None:
    """The same writes, in the same order per dict, through map() and dict.fromkeys."""
    touched: dict[int, int] = {}
    nodes = list(map(itemgetter(0), pl))
    _drain(map(dict.__delitem__, map(node_jobs.__getitem__, nodes), repeat(7)))
    _drain(map(node_free.__setitem__, nodes, repeat(8)))
    for p, run in groupby(nodes, node_pod.__getitem__):
        pw = pod_whole[p]
        before = len(pw)
        pw.update(dict.fromkeys(run))
        touched[p] = touched.get(p, 0) + len(pw) - before


def main() -> None:
    node_pod = [n // POD_NODES for n in range(NODES)]
    for size in (8, 32, 256, 2048):
        pl = tuple((n, 8) for n in range(size))
        reps = max(20, 30000 // size)
        best: dict[str, float] = {}
        for _ in range(ROUNDS):
            for fn in (loop, maps):
                pod_whole: list[dict[int, None]] = [{} for _ in range(NODES // POD_NODES)]
                node_free = [0] * NODES
                node_jobs: list[dict[int, int]] = [{} for _ in range(NODES)]
                total_ns = 0
                for _ in range(reps):
                    for n in range(size):
                        node_jobs[n][7] = 8
                    for p in range(-(-size // POD_NODES)):
                        pod_whole[p].clear()
                    t0 = time.perf_counter_ns()
                    fn(pl, node_pod, pod_whole, node_free, node_jobs)
                    total_ns += time.perf_counter_ns() - t0
                ns = total_ns / reps / size
                best[fn.__name__] = min(best.get(fn.__name__, ns), ns)
        print(size, " ".join(f"{k} {v:.0f} ns/node" for k, v in best.items()))


if __name__ == "__main__":
    main()
