"""The store's side of an executor fleet that grows (control/loop_fleet.py): the service's node
row takes the new GPU count and an accelerator row per new device, written in bulk. Apart from
`store.register_node`, which loads every accelerator row of the node (about 1 s at 8,000
devices through the ORM): a node joining must not cost a tick that much."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from cortex.control import models as m


def grow_node(s: Session, node_id: int, flavor: str, devices: list[int], at: float) -> int:
    """The node row now holds `devices` (the old ones first); the missing accelerator rows
    are added. Returns how many."""
    have = s.scalar(select(func.max(m.Accelerator.index)).where(m.Accelerator.node_id == node_id))
    new = [d for d in devices if have is None or d > have]
    if new:
        s.execute(
            insert(m.Accelerator),
            [{"node_id": node_id, "index": d, "flavor": flavor} for d in new],
        )
    s.execute(
        update(m.Node)
        .where(m.Node.id == node_id)
        .values(gpus=len(devices), flavor=flavor, last_seen=at)
    )
    return len(new)
