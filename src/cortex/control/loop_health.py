"""The scheduler loop's health side: each ended attempt is recorded for goodput
(control/goodput.py) and, when it failed, against the nodes it is blamed on; node losses are
strikes; repeat offenders are drained and return after their burn-in (control/node_health.py).
A mixin of `cortex.control.loop.SchedulerLoop`.

Drained nodes leave service through the twin's transition (`ClusterState.set_down`, once the
jobs on them have ended) and come back through repair (`set_up`), as lost nodes do in
loop_fleet.py; this step runs after that one in each tick, so a drained node that the executor
reports alive again stays out until its burn-in ends."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from cortex.control import goodput
from cortex.control import models as m
from cortex.control.mirror import Mirror
from cortex.control.node_health import KIND_LOST, HealthView, NodeHealth
from cortex.control.node_health import blame as blame_exit

log = logging.getLogger("cortex.control")


class HealthMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    progress: Any
    mirror: Mirror
    node_names: list[str]
    nodes_down: set[int]
    dirty: bool
    view: Any
    health: NodeHealth
    health_view: HealthView
    _seen_down: frozenset[str]
    _drained_out: set[int]
    _node_index: dict[str, int]

    def _nodes_of(self, devices: list[int]) -> tuple[tuple[str, tuple[int, ...]], ...]:
        raise NotImplementedError  # FleetMixin's

    def _attempt_ended(self, s: Session, row: m.Job, e: Any, now: float) -> None:
        """An attempt of `row` ended with exit record `e` (before the job's state moves on)."""
        node = None
        if str(e.outcome) == "failed":
            devs = self.view.devices.get(row.id) or ()
            ran_on = [name for name, _ in self._nodes_of(list(devs))] if devs else []
            nodes, strike, kind = blame_exit(e, ran_on)
            for n in nodes:
                self.health.failure(
                    s, n, now, strike=strike, kind=kind, job_id=row.id, attempt=row.attempt
                )
            node = nodes[0] if len(nodes) == 1 else None
        goodput.record_end(s, row, str(e.outcome), now, self.progress, node=node)

    def _sync_health(self, s: Session, now: float) -> None:
        """Strike new node losses, end burn-ins, keep drained nodes out of service."""
        h = self.health
        if h.dirty:
            h.load(s, now)
        names = self.node_names
        down = frozenset(names[n] for n in self.nodes_down)
        for name in sorted(down - self._seen_down):
            h.failure(s, name, now, strike=True, kind=KIND_LOST)
        self._seen_down = down
        for name in h.due(now):
            h.returned(s, name, now)
        index = self._node_index
        if len(index) != len(names):  # built once: the loop's fleet never changes
            index.update((name, n) for n, name in enumerate(names))
        st = self.mirror.state
        drained = {index[d] for d in h.drains if d in index}
        for n in sorted(drained):
            if st.node_up[n] and not st.jobs_on(n):  # set_down needs the node empty
                st.set_down(n)
                self._drained_out.add(n)
                self.dirty = True
        for n in sorted(self._drained_out - drained):  # burn-in over, or undrained
            self._drained_out.discard(n)
            if n not in self.nodes_down and not st.node_up[n]:
                st.set_up(n)
                self.dirty = True
        out = frozenset(names[n] for n in drained if not st.node_up[n])
        if out != self.health_view.out or down != self.health_view.down:
            self.health_view = HealthView(down=down, out=out)
