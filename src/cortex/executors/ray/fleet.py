"""The fleet from a Ray cluster's nodes, keyed on the `cortex.node` label.

Ray's node id changes when a machine rejoins, so a node is known by its label only. A node
without `cortex.node`, without GPUs, with an unknown flavor, or whose GPU count differs from
the rest of its flavor is left out, with the reason logged once: never a crash. Defaults for
the other labels: `cortex.pod` "default", `cortex.rack` the node's name (a rack of its own),
`cortex.flavor` from Ray's `accelerator_type:<X>` resource, else the executor's default flavor.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cortex.executors.nodes import NodeInfo
from cortex.fleet.catalog import load_catalog

log = logging.getLogger(__name__)

LABEL_NODE = "cortex.node"
LABEL_POD = "cortex.pod"
LABEL_RACK = "cortex.rack"
LABEL_FLAVOR = "cortex.flavor"
DEFAULT_POD = "default"
DEFAULT_FLAVOR = "H100-SXM5"
# Ray's accelerator_type resource names -> the catalog's flavors (as nvml_names does for NVML).
ACCELERATOR_FLAVORS = {"H100": "H100-SXM5", "H200": "H200-SXM", "B200": "B200-HGX"}
ACCELERATOR_FLAVORS["GB200"] = "B200-GB200"
MAX_LABEL = 253
# Ray's label values: up to 63 letters, digits, "-", "_" and ".", starting and ending with a
# letter or digit (the Kubernetes rule Ray follows).
LABEL_VALUE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
# A dead node's DeathReason when it left on purpose: stopped by its operator, or drained (`ray
# drain-node`, the autoscaler). Not a failure of the machine: no strike against its health
# (control/loop_health.py). The numbers are Ray's NodeDeathInfo.Reason (common.proto; its
# generated module has no type stubs): EXPECTED_TERMINATION, AUTOSCALER_DRAIN_PREEMPTED,
# AUTOSCALER_DRAIN_IDLE; tests/ray checks them against the installed Ray.
PLANNED_DEATHS = {
    1: "stopped by its operator",
    3: "drained by Ray (preemption)",
    4: "drained by Ray (idle)",
}


@dataclass
class NodeView:
    """What one read of the cluster gives: usable nodes by name (alive or not) and why the
    others were left out (Ray node id -> reason)."""

    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    ray_ids: dict[str, str] = field(default_factory=dict)  # name -> current Ray node id
    ignored: dict[str, str] = field(default_factory=dict)
    planned: dict[str, str] = field(default_factory=dict)  # dead nodes that left on purpose: why


def _flavor(labels: Mapping[str, str], resources: Mapping[str, float], default: str) -> str:
    if labels.get(LABEL_FLAVOR):
        return labels[LABEL_FLAVOR]
    for key in resources:
        if key.startswith("accelerator_type:"):
            kind = key.split(":", 1)[1]
            return ACCELERATOR_FLAVORS.get(kind, kind)
    return default


def _one(raw: Mapping[str, Any], default_flavor: str, catalog: set[str]) -> NodeInfo | str:
    """A usable node, or why this one is left out."""
    labels = raw.get("Labels") or {}
    resources = raw.get("Resources") or {}
    name = labels.get(LABEL_NODE)
    if not isinstance(name, str) or not name:
        return f"no {LABEL_NODE} label"
    if len(name) > MAX_LABEL:
        return f"{LABEL_NODE} label longer than {MAX_LABEL} characters"
    if not LABEL_VALUE.fullmatch(name):
        # Ray's own label-value syntax. A node started with JSON labels skips Ray's check, and
        # a value like "!node-a" would read as "not node-a" in a bundle's label selector: the
        # bundle could land on any node.
        return f"{LABEL_NODE} label {name[:80]!r} is not a valid label value"
    if not raw.get("Alive"):
        # Ray lists a dead node with no resources: known by its label, down, nothing more.
        return NodeInfo(name=name, flavor="", gpus=0, pod="", rack="", alive=False)
    gpus = resources.get("GPU", 0)
    if (
        not isinstance(gpus, int | float)
        or not math.isfinite(gpus)
        or gpus < 1
        or gpus != int(gpus)
    ):
        return f"node {name}: no whole GPUs ({gpus!r})"
    flavor = _flavor(labels, resources, default_flavor)
    if flavor not in catalog:
        return f"node {name}: flavor {flavor!r} is not in the fleet catalog"
    return NodeInfo(
        name=name,
        flavor=flavor,
        gpus=int(gpus),
        pod=str(labels.get(LABEL_POD) or DEFAULT_POD)[:MAX_LABEL],
        rack=str(labels.get(LABEL_RACK) or name)[:MAX_LABEL],
        alive=bool(raw.get("Alive")),
        address=str(raw.get("NodeManagerAddress", "")),
    )


def read_nodes(raw_nodes: Iterable[Mapping[str, Any]], default_flavor: str) -> NodeView:
    """`ray.nodes()` as NodeInfos by label. Ray lists a dead node until it is forgotten and a
    rejoined machine twice (the dead entry and the new one): a live entry wins."""
    catalog = set(load_catalog())
    view = NodeView()
    for raw in raw_nodes:
        got = _one(raw, default_flavor, catalog)
        ray_id = str(raw.get("NodeID", "?"))
        if isinstance(got, str):
            view.ignored[ray_id] = got
            continue
        old = view.nodes.get(got.name)
        if old is None or (got.alive and not old.alive):
            view.nodes[got.name] = got
            view.ray_ids[got.name] = ray_id
            view.planned.pop(got.name, None)
            reason = raw.get("DeathReason", 0)
            why = PLANNED_DEATHS.get(reason) if isinstance(reason, int) else None
            if why is not None and not got.alive:
                said = str(raw.get("DeathReasonMessage") or "")[:200]
                view.planned[got.name] = f"{why}: {said}" if said else why
        elif got.alive and old.alive and view.ray_ids[got.name] != ray_id:
            view.ignored[ray_id] = f"node {got.name}: label already taken by a live node"
    _same_size(view)
    return view


def _same_size(view: NodeView) -> None:
    """The topology has one GPU count per flavor: nodes that differ from their flavor's most
    common count are left out."""
    live = [n for n in view.nodes.values() if n.alive]
    common = {
        f: Counter(n.gpus for n in live if n.flavor == f).most_common(1)[0][0]
        for f in {n.flavor for n in live}
    }
    for name, n in list(view.nodes.items()):
        if n.alive and n.gpus != common[n.flavor]:
            view.ignored[view.ray_ids.pop(name)] = (
                f"node {name}: {n.gpus} GPUs, but its flavor {n.flavor} has {common[n.flavor]}"
            )
            del view.nodes[name]


class IgnoredLog:
    """Logs each left-out node's reason once (a fleet is re-read every second)."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def report(self, ignored: Mapping[str, str]) -> None:
        for ray_id, why in ignored.items():
            if self._seen.get(ray_id) != why:
                self._seen[ray_id] = why
                log.warning("Ray node %s left out of the fleet: %s", ray_id[:12], why)
