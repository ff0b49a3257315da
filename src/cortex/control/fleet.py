"""The local machine as a fleet: one node holding the executor's GPUs or CPU slots, and the
teams' queues from the store, in the twin's own FleetSpec vocabulary."""

from __future__ import annotations

from collections.abc import Iterable

from cortex.control import models as m
from cortex.fleet.spec import (
    ClusterQueueSpec,
    FlavorQuotaSpec,
    FleetSpec,
    HallSpec,
    NodeGroup,
    QueuesSpec,
)

PLACEHOLDER_QUEUE = "default"  # QueuesSpec needs one queue; no team owns this one


def local_fleet(flavor: str, count: int, node_name: str) -> FleetSpec:
    return FleetSpec(
        name="local",
        description=f"{node_name}: {count} x {flavor}",
        halls=[
            HallSpec(
                name="local",
                groups=[
                    NodeGroup(
                        flavor=flavor,
                        nodes=1,
                        gpus_per_node=count,
                        nodes_per_pod=1,
                        nodes_per_rack=1,
                    )
                ],
            )
        ],
    )


def queues_spec(rows: Iterable[m.Queue], min_runtime_s: float) -> QueuesSpec:
    cqs = [
        ClusterQueueSpec(
            name=q.name,
            nominal_share=q.nominal_share,
            borrowing_limit_share=q.borrowing_limit_share,
            weight=q.weight,
            min_runtime_s=q.min_runtime_s,
            preemption_budget=q.preemption_budget,
            flavor_quotas={
                fl: FlavorQuotaSpec.model_validate(fq) for fl, fq in (q.flavor_quotas or {}).items()
            },
        )
        for q in rows
    ] or [ClusterQueueSpec(name=PLACEHOLDER_QUEUE)]
    return QueuesSpec(cohort="local", min_runtime_s=min_runtime_s, cluster_queues=cqs)
