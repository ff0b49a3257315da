"""Node health in the control plane: job failures attributed to nodes, repeat offenders
drained by the twin's strike rule (drive/node_health.py: `strikes` node failures within
`window_s`), and a burn-in (`burn_in_s`) before a drained node returns; an admin may drain and
undrain by hand (like `scontrol update state=drain reason=...`).

What counts as a node failure (a strike) is what the twin counts: a node lost (the executor
reports it down) or a failed run the executor pins on one node (an exit record's `node`). A
failed run that names no node is recorded against the nodes it ran on as a job failure,
shown but never a strike: a bug in the job is not the node's fault, and the local executor's
one machine would otherwise be drained by any crashing script.

The store is the truth (node_failures, node_drains); the loop keeps the strikes and the drains
in memory, reloads them at start and when the API changed a drain, and publishes an immutable
view for the API. Burn-in here is a hold: the node stays out for `burn_in_s` (the twin's model);
with the `burn_in` setting on, a diagnostic run then decides (control/loop_burnin.py).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store
from cortex.control import store_health as sh
from cortex.drive.node_health import QuarantineRules, Strikes

NODE_LOST = re.compile(r"\bnode (\S+?):? lost\b")
NODE_RANK = re.compile(r"^node (\S+?): ")  # the Ray executor: the node whose rank failed first
KIND_LOST, KIND_NAMED, KIND_JOB = "node lost", "named by the executor", "job failed"
KIND_CLUSTER = "cluster lost"  # the executor's cluster (the Ray head): no node, not the job


def blame(e: Any, ran_on: list[str]) -> tuple[list[str], bool, str]:
    """The nodes a failed exit is attributed to, whether it is a strike against them, and
    why: the node the executor names (a strike); a node the exit says was lost (not a strike
    here: the node's loss is, once, when the executor reports it down); the node whose rank
    failed first, or else every node it ran on (a job failure). A run the executor's cluster
    lost (`cluster_lost`: the Ray head gone) is blamed on no node and is no job failure."""
    if getattr(e, "cluster_lost", False) is True:
        return [], False, KIND_CLUSTER
    named = getattr(e, "node", None)
    if isinstance(named, str) and named:
        return [named[:200]], True, KIND_NAMED
    lost = [n for n in NODE_LOST.findall(str(getattr(e, "detail", "") or "")) if n in ran_on]
    if lost:
        return sorted(set(lost)), False, KIND_LOST
    rank = NODE_RANK.match(str(getattr(e, "detail", "") or ""))
    if rank and rank.group(1) in ran_on:
        return [rank.group(1)], False, KIND_JOB
    return list(ran_on), False, KIND_JOB


@dataclass
class Drain:
    reason: str
    by: str
    drained_at: float
    return_at: float | None


@dataclass(frozen=True)
class HealthView:
    """What the loop publishes for the API after each health step."""

    down: frozenset[str] = frozenset()  # lost nodes (the executor's)
    out: frozenset[str] = frozenset()  # drained nodes already out of service
    spares: frozenset[str] = frozenset()  # nodes held as hot spares


@dataclass
class NodeHealth:
    rules: QuarantineRules = field(default_factory=QuarantineRules.load)
    strikes: Strikes = field(init=False)
    drains: dict[str, Drain] = field(default_factory=dict)
    dirty: bool = True  # reload the drains from the store (start, or the API changed one)
    loaded: bool = False
    last_strike: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.strikes = Strikes(self.rules)

    def load(self, s: Session, now: float) -> None:
        """The drains from the store; at the first load also the strikes still in the window."""
        # Cleared before the read: a drain the API commits after it sets the flag again and
        # the next tick reloads (cleared after, that change would wait for another one).
        self.dirty = False
        self.drains = {
            n: Drain(d.reason, d.by, d.drained_at, d.return_at) for n, d in sh.drains(s).items()
        }
        if not self.loaded:
            for f in sh.node_failures_since(s, now - self.rules.window_s):
                if f.strike and not f.spent:  # oldest first, as Strikes keeps them
                    self.strikes.recent.setdefault(f.node, deque()).append(f.at)
            self.loaded = True

    def failure(
        self, s: Session, node: str, at: float, *, strike: bool, kind: str,
        job_id: int | None = None, attempt: int | None = None,
    ) -> bool:  # fmt: skip
        """Record a failure against `node`; True when it is the strike that drains it."""
        drains = strike and self._strike(node, at)
        if drains:
            sh.spend_strikes(s, node)
        sh.add_node_failure(
            s,
            m.NodeFailure(
                node=node, at=at, job_id=job_id, attempt=attempt, strike=strike, spent=drains,
                detail=kind,
            ),
        )  # fmt: skip
        if drains:
            r = self.rules
            reason = (
                f"{r.strikes} node failures within {r.window_s / 86400:g} d (last: {kind}); "
                f"burn-in {r.burn_in_s / 3600:g} h"
            )
            self.drain(s, node, reason, "auto", at, at + r.burn_in_s)
        return drains

    def _strike(self, node: str, at: float) -> bool:
        """The twin's rule (drive/node_health.py), once per node per tick: the exit that names
        a node and the node's loss in one tick are one failure. A drained node takes none."""
        if node in self.drains or self.last_strike.get(node) == at:
            return False
        self.last_strike[node] = at
        return self.strikes.strike(node, at)

    def drain(
        self, s: Session, node: str, reason: str, by: str, at: float, return_at: float | None
    ) -> None:
        sh.put_drain(s, node, reason, by, at, return_at)
        self.drains[node] = Drain(reason[:500], by, at, return_at)
        store.event(s, "node", f"node {node} drained ({by}): {reason}"[:1000], at=at)

    def due(self, now: float) -> list[str]:
        """Drained nodes whose burn-in has ended."""
        return sorted(
            n for n, d in self.drains.items() if d.return_at is not None and now >= d.return_at
        )

    def returned(self, s: Session, node: str, now: float) -> None:
        self.drains.pop(node, None)
        sh.remove_drain(s, node)
        store.event(s, "node", f"node {node} back in service after its burn-in", at=now)


def score(strikes_in_window: int, drained: bool, rules: QuarantineRules) -> float:
    """1 for a node with no node failure in the window, falling by 1/strikes per failure, 0
    once drained (or at the strike that drains it)."""
    if drained:
        return 0.0
    return max(0.0, 1.0 - strikes_in_window / rules.strikes)
