"""Kueue-style queue metrics, read at scrape time: pending jobs by cluster queue and by the
reason they wait (the last pass's first blocker, `control/why.py`), and preemptions by rule
(the `preemptions` records, so the counter survives a restart)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cortex.control.why import WhyBook


class WhyCollector(Collector):
    def __init__(
        self,
        book: WhyBook,
        preemptions: Callable[[], dict[str, int]],
        parked: Callable[[], Counter[tuple[str, str]]] | None = None,
    ) -> None:
        self._book = book
        self._preemptions = preemptions
        self._parked = parked  # jobs the gates keep out of the queues (queue_metrics.py)

    def collect(self) -> Iterator[Metric]:
        book = self._book
        rec = book.current
        pending = GaugeMetricFamily(
            "cortex_pending_jobs",
            "Waiting jobs by cluster queue and the reason they wait (the first blocker)",
            labels=["queue", "reason"],
        )
        counts: Counter[tuple[str, str]] = Counter()
        for jid, (qi, _, _) in rec.places().items():
            counts[(rec.queue_names[qi], book.top(jid) or "Unknown")] += 1
        if self._parked is not None:
            counts.update(self._parked())
        for (queue, reason), n in sorted(counts.items()):
            pending.add_metric([queue, reason], n)
        yield pending
        preempted = CounterMetricFamily(
            "cortex_preemptions", "Preemptions by rule", labels=["rule"]
        )
        for rule, n in sorted(self._preemptions().items()):
            preempted.add_metric([rule], n)
        yield preempted
