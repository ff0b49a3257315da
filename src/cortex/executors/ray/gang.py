"""A gang on Ray, worked out before anything starts: which ranks run on which node, and the
names its placement group and actors get. The names carry the job id and attempt, so a
restarted service finds a running gang by name alone (Ray keeps detached named actors and
placement groups after their creator died)."""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "cortex"
_NAME = re.compile(rf"^{PREFIX}-(\d+)-(\d+)(?:-n(\d+))?$")
CPU_PER_RANK = 0.01  # Ray needs some resource per actor; GPUs are the bundle's real content


@dataclass(frozen=True)
class NodePart:
    index: int  # position in the placement (the bundle index)
    node: str  # the node's cortex.node label
    devices: tuple[int, ...]  # the scheduler's device indices on that node
    ranks: tuple[int, ...]  # global ranks that run on it

    def bundle(self, uses_gpus: bool) -> dict[str, float]:
        out = {"CPU": CPU_PER_RANK * len(self.ranks)}
        if uses_gpus and self.devices:
            out["GPU"] = float(len(self.devices))
        return out


def split(nodes: tuple[tuple[str, tuple[int, ...]], ...], nprocs: int) -> list[NodePart]:
    """Ranks over nodes in proportion to their devices (largest remainder; earlier nodes win
    ties), numbered node by node, so a node's ranks are consecutive as torchrun makes them.
    Every node gets at least one rank: a node that holds devices but runs nothing would idle."""
    if not nodes:
        raise ValueError("nodes: the Ray executor needs the placement node by node")
    if nprocs < len(nodes):
        raise ValueError(f"nprocs: {nprocs} ranks cannot cover {len(nodes)} nodes")
    total = sum(len(d) for _, d in nodes)
    weights = [len(d) if total else 1 for _, d in nodes]
    wsum = sum(weights)
    share = [max(1, nprocs * w // wsum) for w in weights]
    left = nprocs - sum(share)
    order = sorted(range(len(nodes)), key=lambda i: (-(nprocs * weights[i] % wsum), i))
    k = 0
    while left != 0:
        i = order[k % len(order)]
        if left > 0:
            share[i] += 1
            left -= 1
        elif share[i] > 1:
            share[i] -= 1
            left += 1
        k += 1
    parts, first = [], 0
    for i, ((name, devs), n) in enumerate(zip(nodes, share, strict=True)):
        parts.append(NodePart(i, name, tuple(devs), tuple(range(first, first + n))))
        first += n
    return parts


def pg_name(job_id: int, attempt: int) -> str:
    return f"{PREFIX}-{job_id}-{attempt}"


def agent_name(job_id: int, attempt: int, index: int) -> str:
    return f"{PREFIX}-{job_id}-{attempt}-n{index}"


def parse_name(name: str) -> tuple[int, int, int | None] | None:
    """(job id, attempt, node index or None for a placement group), or None: not ours."""
    m = _NAME.match(name)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), (int(m.group(3)) if m.group(3) else None)
