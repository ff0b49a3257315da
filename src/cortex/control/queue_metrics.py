"""Kueue-style quota gauges, read at scrape time from the loop's mirror (Kueue's
`kueue_cluster_queue_nominal_quota`, `..._borrowing_limit`, `..._resource_usage`, by cluster
queue and flavor), and the jobs the gates park (control/loop_gates.py) in
`cortex_pending_jobs{queue,reason}` with Slurm's reasons for them.

The mirror is read without the loop's lock: its quota lists are replaced whole on a rebuild
and its usage counters are plain ints, so a scrape during a tick sees a value from before or
after that tick's change, which is all a metric needs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# A parked job's reason code, from the gate that holds it (the row's reason text's start).
PARKED_REASONS = (
    ("held", "JobHeldUser"),
    ("waiting for dependencies", "Dependency"),
    ("job array limit", "JobArrayTaskLimit"),
    ("priority class", "InvalidPriorityClass"),  # Slurm's InvalidQOS (loop_gates.py)
)


def parked_reason(text: str) -> str:
    for prefix, code in PARKED_REASONS:
        if text.startswith(prefix):
            return code
    return "Gated"


class QuotaCollector(Collector):
    def __init__(self, loop: Any) -> None:
        self._loop = loop

    def collect(self) -> Iterator[Metric]:
        mi = self._loop.mirror
        st = mi.state
        queues = st.queues
        flavors = st.topo.flavors
        labels = ["queue", "flavor"]
        nominal = GaugeMetricFamily(
            "cortex_queue_nominal_gpus", "Guaranteed GPUs per queue and flavor", labels=labels
        )
        limit = GaugeMetricFamily(
            "cortex_queue_borrowing_limit_gpus",
            "GPUs a queue may borrow beyond its guarantee (absent: no limit)",
            labels=labels,
        )
        used = GaugeMetricFamily(
            "cortex_queue_used_gpus", "GPUs a queue's jobs hold now", labels=labels
        )
        for q in queues.queues:
            for f, flavor in enumerate(flavors):
                key = [queues.names[q.index], flavor]
                nominal.add_metric(key, q.nominal[f])
                if q.borrowing_limit[f] is not None:
                    limit.add_metric(key, q.borrowing_limit[f])
                used.add_metric(key, st.usage[q.index][f])
        yield nominal
        yield limit
        yield used


def parked_counts(loop: Any) -> Counter[tuple[str, str]]:
    """(queue, reason code) -> jobs the gates park (a queue per team, named for it)."""
    out: Counter[tuple[str, str]] = Counter()
    why = dict(loop.parked_why)
    for jid, job in list(loop.parked.items()):
        out[(job.team, parked_reason(why.get(jid, "")))] += 1
    return out
