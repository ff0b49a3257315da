"""Cluster queues, cohort and priority classes (Kueue's vocabulary), resolved against a fleet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cortex.fleet.spec import ClusterQueueSpec, QueuesSpec
from cortex.fleet.topology import Topology

DEFAULT_PRIORITY_CLASSES = {"production": 1000, "normal": 100, "preemptible": 10}


@dataclass(frozen=True, slots=True)
class ClusterQueue:
    """One team's queue: nominal GPUs and borrowing limit per flavor (None = unlimited)."""

    name: str
    index: int
    nominal: tuple[int, ...]
    borrowing_limit: tuple[int | None, ...]
    weight: float
    min_runtime_s: float = 0.0  # a job runs this long before it may be a victim
    preemption_budget: int | None = None  # the most preemptions of one job; None: no limit


@dataclass(frozen=True)
class QueueConfig:
    """All cluster queues of the cohort, the priority classes and the preemption floor."""

    queues: tuple[ClusterQueue, ...]
    cohort: str
    cohort_nominal: tuple[int, ...]
    priority_classes: dict[str, int]
    min_runtime_s: float  # the default of the queues' min_runtime_s

    @property
    def least_min_runtime_s(self) -> float:
        """The shortest protection any queue gives (node filters: a necessary condition)."""
        return min(q.min_runtime_s for q in self.queues)

    def index(self, team: str) -> int:
        """Index of a team's queue; KeyError if the team has none."""
        for q in self.queues:
            if q.name == team:
                return q.index
        raise KeyError(team)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.queues)

    @classmethod
    def build(
        cls, spec: QueuesSpec | None, topo: Topology, teams: Iterable[str] = ()
    ) -> QueueConfig:
        """Resolve shares to GPUs. Without a spec every team gets an equal share, one cohort,
        unlimited borrowing."""
        if spec is None:
            names = sorted(set(teams)) or ["default"]
            share = 1.0 / len(names)
            spec = QueuesSpec(
                cluster_queues=[ClusterQueueSpec(name=n, nominal_share=share) for n in names]
            )
        flavor_gpus = topo.flavor_gpus()
        queues = []
        for i, q in enumerate(spec.cluster_queues):
            nominal = []
            limit: list[int | None] = []
            for f, name in enumerate(topo.flavors):
                nom, lim = _flavor_quota(q, name, flavor_gpus[f])
                nominal.append(nom)
                limit.append(lim)
            queues.append(
                ClusterQueue(
                    q.name,
                    i,
                    tuple(nominal),
                    tuple(limit),
                    q.weight,
                    spec.min_runtime_s if q.min_runtime_s is None else q.min_runtime_s,
                    q.preemption_budget,
                )
            )
        # Shares are rounded down per queue; the cohort owns the whole fleet so the remainder
        # is borrowable rather than lost.
        return cls(
            queues=tuple(queues),
            cohort=spec.cohort,
            cohort_nominal=tuple(flavor_gpus),
            priority_classes=dict(spec.priority_classes),
            min_runtime_s=spec.min_runtime_s,
        )


def _flavor_quota(q: ClusterQueueSpec, flavor: str, gpus: int) -> tuple[int, int | None]:
    """A queue's nominal quota and borrowing limit on one flavor, in GPUs: its flavor_quotas
    entry first, then its nominal_gpus entry, then its shares."""
    fq = q.flavor_quotas.get(flavor)
    nominal = q.nominal_gpus.get(flavor, int(q.nominal_share * gpus))
    limit = None if q.borrowing_limit_share is None else int(q.borrowing_limit_share * gpus)
    if fq is not None:
        if fq.nominal_gpus is not None:
            nominal = fq.nominal_gpus
        elif fq.nominal_share is not None:
            nominal = int(fq.nominal_share * gpus)
        if fq.borrowing_limit_gpus is not None:
            limit = fq.borrowing_limit_gpus
        elif fq.borrowing_limit_share is not None:
            limit = int(fq.borrowing_limit_share * gpus)
    return nominal, limit
