"""The scheduler loop's fleet side, for executors that own a multi-node fleet (the Ray
executor): the per-node placement a launch carries, and nodes that leave or come back. A mixin
of `cortex.control.loop.SchedulerLoop`.

A node that goes down leaves service through the same transition as a node failure in the
twin (`ClusterState.set_down`) once the jobs on it have ended (the executor reports them
failed by that node, and the loop requeues them); a node that comes back is repaired
(`set_up`). An executor without `node_changes` (the local one: one machine) has a fixed fleet.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from cortex.control import store
from cortex.control.mirror import Mirror

log = logging.getLogger("cortex.control")


class FleetMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    executor: Any
    mirror: Mirror
    node_names: list[str]
    nodes_down: set[int]
    dirty: bool
    _device_at: dict[int, tuple[int, int]]  # device -> (node, index on it), built on first use

    def _nodes_of(self, devices: list[int]) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The launch's placement node by node: (node name, indices of its devices on that
        node), in node order. O(len(devices)): a launch on a 100k-GPU modelled fleet must not
        scan every node."""
        where = getattr(self, "_device_at", None)
        if where is None:  # built once: the loop's devices never change
            where = {
                d: (n, i) for n, ds in enumerate(self.mirror.node_devices) for i, d in enumerate(ds)
            }
            self._device_at = where
        by_node: dict[int, list[int]] = {}
        for d in devices:
            n, i = where[d]
            by_node.setdefault(n, []).append(i)
        return tuple((self.node_names[n], tuple(sorted(ix))) for n, ix in sorted(by_node.items()))

    def _sync_fleet(self, s: Session, now: float) -> None:
        """Apply the executor's node changes; keep down nodes down across state rebuilds."""
        changes = getattr(self.executor, "node_changes", None)
        try:
            got = list(changes()) if changes is not None else []
        except Exception:
            log.exception("reading the executor's nodes failed")
            got = []
        index = {name: n for n, name in enumerate(self.node_names)}
        for name, alive in got:
            n = index.get(name)
            if n is None:
                continue  # not in the fleet the loop was built with (the executor logs it)
            if alive and n in self.nodes_down:
                self.nodes_down.discard(n)
                self.mirror.state.set_up(n)
                self.dirty = True
                store.event(s, "node", f"node {name} is back: in service", at=now)
            elif not alive and n not in self.nodes_down:
                self.nodes_down.add(n)
                self.dirty = True
                store.event(s, "node", f"node {name} lost: out of service", at=now)
        st = self.mirror.state
        for n in self.nodes_down:
            # Once the jobs on it have ended (set_down needs the node empty); idempotent.
            if st.node_up[n] and not st.jobs_on(n):
                st.set_down(n)
                self.dirty = True
