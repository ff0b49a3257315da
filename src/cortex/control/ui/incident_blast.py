"""The incident feed's blast radius: what a failed or preempted run lost, and what a lost node
cost, from the store's records (control/goodput.py's attempt records, control/node_health.py's
failures attributed to nodes). A node's loss is told by the job failures attributed to it in
the WINDOW_S after it (the executor reports a lost node's runs as they end, not all at once);
a row rendered sooner shows what was known then.

The figures are the books' rule (drive/goodput.split_attempt): a failed run loses its work since
its last checkpoint, a preempted one likewise (rework), in GPU-hours of its whole gang."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control.goodput import _ended
from cortex.drive import goodput as gp

WINDOW_S = 600.0
MAX_FAILURES = 200  # failures read per lost node
MATCH_S = 5.0  # an exit event and its attempt record are written in the same tick
LOST_NODE = re.compile(r"^node (\S+) lost")
REWORK = ("rework_after_failures", "rework_after_preemptions")


def _lost_gpu_h(r: m.AttemptRecord) -> float:
    split = gp.split_attempt(_ended(r), r.ended_at)
    return r.gpus * sum(split[k] for k in REWORK) / 3600.0


def blast(s: Session, events: Sequence[m.Event]) -> dict[int, str]:
    """Event id -> a short line, for the exit and node-lost events among `events`."""
    out: dict[int, str] = {}
    exits = [e for e in events if e.kind == "exit" and e.job_id is not None]
    if exits:
        ids = sorted({int(e.job_id) for e in exits if e.job_id is not None})
        recs: dict[int, list[m.AttemptRecord]] = {}
        q = select(m.AttemptRecord).where(
            m.AttemptRecord.job_id.in_(ids), m.AttemptRecord.outcome.in_(("failed", "preempted"))
        )
        for r in s.scalars(q):
            recs.setdefault(r.job_id, []).append(r)
        for e in exits:
            near = [
                r for r in recs.get(int(e.job_id or 0), []) if abs(r.ended_at - e.at) <= MATCH_S
            ]
            if near:
                r = min(near, key=lambda x: abs(x.ended_at - e.at))
                out[e.id] = f"lost {_lost_gpu_h(r):.2f} GPU-h of its {r.gpus} GPUs' work"
    for e in events:
        got = LOST_NODE.match(e.message) if e.kind == "node" else None
        if got is not None:
            out[e.id] = _node_line(s, got.group(1), e.at)
    return out


def _node_line(s: Session, node: str, at: float) -> str:
    fails = s.execute(
        select(m.NodeFailure.job_id, m.NodeFailure.attempt)
        .where(
            m.NodeFailure.node == node,
            m.NodeFailure.at >= at,
            m.NodeFailure.at < at + WINDOW_S,
            m.NodeFailure.job_id.is_not(None),
        )
        .limit(MAX_FAILURES)
    ).all()
    keys = {(int(j), int(a or 0)) for j, a in fails if j is not None}
    if not keys:
        return "no job failure attributed to it yet"
    cond = or_(*(and_(m.AttemptRecord.job_id == j, m.AttemptRecord.attempt == a) for j, a in keys))
    recs = s.scalars(select(m.AttemptRecord).where(cond)).all()
    gpus = sum(r.gpus for r in recs)
    lost = sum(_lost_gpu_h(r) for r in recs)
    n = len({j for j, _ in keys})
    return f"{n} job{'s' if n != 1 else ''} failed on it ({gpus} GPUs), {lost:.2f} GPU-h lost"


def rendered(s: Session, rows: Sequence[m.Event], tpl: Any) -> list[tuple[int, str]]:
    lines = blast(s, rows)
    return [(e.id, tpl.render(e=e, blast=lines.get(e.id))) for e in rows]
