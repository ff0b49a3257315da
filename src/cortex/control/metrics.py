"""Prometheus metrics on a registry of the service's own (tests run several services in one
process). Job counts by state and team are read from the store at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

WAIT_BUCKETS_S = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
CYCLE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class _Live(Collector):
    def __init__(
        self,
        jobs: Callable[[], list[tuple[str, str, int]]],
        gpus: Callable[[], dict[str, tuple[int, int]]],
        nodes: Callable[[], list[tuple[str, bool]]],
    ) -> None:
        self._jobs = jobs
        self._gpus = gpus
        self._nodes = nodes

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("cortex_jobs", "Jobs by state and team", labels=["state", "team"])
        for team, state, n in self._jobs():
            jobs.add_metric([state, team], n)
        yield jobs
        alloc = GaugeMetricFamily(
            "cortex_gpus_allocated", "GPUs (or CPU slots) allocated, by flavor", labels=["flavor"]
        )
        # Not `_total`: that suffix is for counters (Prometheus' naming rules).
        total = GaugeMetricFamily(
            "cortex_gpus_capacity", "GPUs (or CPU slots) in the fleet, by flavor", labels=["flavor"]
        )
        for flavor, (used, all_) in self._gpus().items():
            alloc.add_metric([flavor], used)
            total.add_metric([flavor], all_)
        yield alloc
        yield total
        health = GaugeMetricFamily(
            "cortex_node_healthy", "1 if the node is healthy", labels=["node"]
        )
        for name, ok in self._nodes():
            health.add_metric([name], 1.0 if ok else 0.0)
        yield health


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_wait = Histogram(
            "cortex_queue_wait_seconds",
            "Submit to first start",
            buckets=WAIT_BUCKETS_S,
            registry=self.registry,
        )
        # Kueue's kueue_admission_wait_time_seconds{cluster_queue}: submission to first start.
        self.admission_wait = Histogram(
            "cortex_admission_wait_time_seconds",
            "Submit to first start, by queue",
            ["queue"],
            buckets=WAIT_BUCKETS_S,
            registry=self.registry,
        )
        # Jobs whose metrics file had lines naming neither ts nor attempt (ignored; an event
        # says so once per job: control/progress.py).
        self.progress_unattributed = Counter(
            "cortex_progress_unattributed_jobs",
            "Jobs whose progress lines named neither ts nor attempt (those lines are ignored)",
            registry=self.registry,
        )
        self.cycle = Histogram(
            "cortex_schedule_cycle_seconds",
            "Duration of one scheduler core call",
            buckets=CYCLE_BUCKETS_S,
            registry=self.registry,
        )

    def attach(
        self,
        jobs: Callable[[], list[tuple[str, str, int]]],
        gpus: Callable[[], dict[str, tuple[int, int]]],
        nodes: Callable[[], list[tuple[str, bool]]],
    ) -> None:
        self.registry.register(_Live(jobs, gpus, nodes))
