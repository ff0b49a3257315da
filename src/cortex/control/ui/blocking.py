"""Which jobs block a waiting job, and which jobs a node takes down with it.

Blocking, from the last scheduling pass's record (control/why.py), blocker by blocker:
- no room (InsufficientCapacity, TopologyUnavailable): the running jobs on the flavor it
  needs, soonest estimated end first, as many as must end for its gang to fit (the free GPUs
  plus theirs reach its size; the topology may want more, so this is the least that must end);
- its queue's quota (BorrowingLimit): its own queue's running jobs on the flavor, likewise;
- the cohort's quota (QuotaExceeded): running jobs of the queues that borrow beyond their
  nominal share on the flavor, likewise;
- a reservation (ReservedForHead): the head job it is held for;
- and always the jobs ahead of it in its queue (the first few).
Another team's job is counted with its GPUs and end, never named (as on the node detail).

Blast radius of a node: every job with GPUs on it is one gang, so a failure of the node stops
each whole gang; a failure loses each gang's work since its last checkpoint, a drain what a
preemption loses (the work since the checkpoint, or only the write for a job that
checkpoints on SIGTERM within the grace period: control/preemptions.lost_s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cortex.control.auth import Principal
from cortex.control.preemptions import lost_s
from cortex.control.why import RANK
from cortex.scheduler.reasons import Code

MAX_LISTED = 20  # jobs per reason
AHEAD_LISTED = 10
OTHER = "(another team)"


@dataclass
class Blocking:
    id: int | None  # None: another team's job
    name: str
    team: str
    gpus: int
    state: str  # "running" or "waiting"
    why: str  # the blocker it stands for
    ends_at: float | None = None  # a running job's estimated end


def _row(job: Any, who: Principal, state: str, why: str, ends: float | None = None) -> Blocking:
    mine = who.admin or job.team == who.team
    return Blocking(
        id=job.id if mine else None,
        name=job.name if mine else "",
        team=job.team if mine else OTHER,
        gpus=job.gpus,
        state=state,
        why=why,
        ends_at=ends,
    )


def _until_enough(
    running: list[tuple[Any, int, Any]], need: int, free: int
) -> list[tuple[Any, int, Any]]:
    """Soonest-ending first, until the free GPUs and theirs reach `need`."""
    out: list[tuple[Any, int, Any]] = []
    got = max(0, free)
    for r in sorted(running, key=lambda x: (x[0].est_end_s, x[0].id)):
        if got >= need or len(out) >= MAX_LISTED:
            break
        out.append(r)
        got += _held(r)
    return out


def _held(r: tuple[Any, int, Any]) -> int:
    return sum(k for _, k in r[2])


def _flavor(rec: Any, name: Any) -> int | None:
    return next((i for i, f in enumerate(rec.flavors) if f.name == name), None)


def blocking(rec: Any, job_id: int, who: Principal) -> list[Blocking]:
    """The jobs blocking `job_id` (already checked visible to `who`) in the record `rec`."""
    reasons = list(rec.blockers.get(job_id) or ())
    place = rec.places().get(job_id)
    if not reasons and place is not None and rec.rest is not None:
        reasons = [rec.rest]
    reasons.sort(key=lambda r: RANK.get(r.code.value, 99))
    running = rec.running  # (job, flavor, placement)
    out: list[Blocking] = []
    seen: set[tuple[int, str]] = set()

    def add(rows: list[tuple[Any, int, Any]], why: str) -> None:
        for job, _, _ in rows:
            if (job.id, why) not in seen:
                seen.add((job.id, why))
                out.append(_row(job, who, "running", why, job.est_end_s))

    for r in reasons:
        code, d = r.code, r.detail
        f = _flavor(rec, d.get("flavor"))
        need = int(d.get("need") or 0)
        on_f = [x for x in running if x[1] == f]
        if code is Code.INSUFFICIENT_CAPACITY and f is not None:
            free = int(d.get("free", rec.flavors[f].free_gpus))
            add(_until_enough(on_f, need, free), f"holds {rec.flavors[f].name} GPUs it needs")
        elif code is Code.TOPOLOGY_UNAVAILABLE and f is not None:
            # Free GPUs are scattered: count from the largest free block, not all of them.
            free = int(d.get("largest_block") or rec.flavors[f].largest_pod_gpus)
            add(_until_enough(on_f, need, free), f"holds {rec.flavors[f].name} GPUs it needs")
        elif code is Code.BORROWING_LIMIT and f is not None and place is not None:
            mine = [x for x in on_f if x[0].queue_idx == place[0]]
            room = max(
                0, int(d.get("nominal", 0)) + int(d.get("limit", 0)) - int(d.get("usage", 0))
            )
            add(_until_enough(mine, need, room), "uses its queue's quota")
        elif code is Code.QUOTA_EXCEEDED and f is not None:
            add(_borrowers(rec, on_f, f, need, int(d.get("free_in_quota") or 0)), "borrows quota")
        elif code is Code.RESERVED_FOR_HEAD and d.get("head") is not None:
            head = _waiting(rec, int(d["head"]))
            if head is not None:
                out.append(_row(head, who, "waiting", "holds a reservation it would overrun"))
    if place is not None:
        qi, ahead = place[0], place[1]
        shown = 0
        for _, job in rec.queues[qi] if qi < len(rec.queues) else ():
            if shown >= min(ahead, AHEAD_LISTED):
                break
            if job.id in rec.started or job.id == job_id:
                continue
            out.append(_row(job, who, "waiting", "ahead of it in its queue"))
            shown += 1
    return out


def _borrowers(
    rec: Any, on_f: list[tuple[Any, int, Any]], f: int, need: int, free: int
) -> list[tuple[Any, int, Any]]:
    """Running jobs of queues using more of flavor `f` than their nominal share."""
    cfg = rec.queue_config
    if cfg is None:
        return []
    used: dict[int, int] = {}
    for x in on_f:
        used[x[0].queue_idx] = used.get(x[0].queue_idx, 0) + _held(x)
    over = {q for q, u in used.items() if 0 <= q < len(cfg.queues) and u > cfg.queues[q].nominal[f]}
    return _until_enough([x for x in on_f if x[0].queue_idx in over], need, free)


def _waiting(rec: Any, job_id: int) -> Any:
    for q in rec.queues:
        for _, job in q:
            if job.id == job_id:
                return job
    return None


@dataclass
class Hit:
    id: int | None  # None: another team's job
    name: str
    team: str
    gang_gpus: int  # the whole gang stops
    here_gpus: int
    nodes: int
    fail_gpu_h: float  # lost if the node fails now
    drain_gpu_h: float  # lost if it is drained now


def blast(loop: Any, n: int, who: Principal, now: float, grace_s: float) -> list[Hit]:
    """The jobs node `n` hits, largest loss first."""
    mirror = loop.mirror
    out = []
    for jid, here in list(mirror.state.node_jobs[n].items()):
        job = mirror.jobs.get(jid)
        placed = mirror.placement.get(jid)
        if job is None or placed is None:
            continue
        gang = sum(k for _, k in placed)
        ckpt = loop.progress.known_checkpoint_at(jid) if loop.progress is not None else None
        done = max(0.0, now - job.run_start_s)
        saved = 0.0 if ckpt is None else min(max(0.0, ckpt - job.run_start_s), done)
        mine = who.admin or job.team == who.team
        out.append(
            Hit(
                id=jid if mine else None,
                name=job.name if mine else "",
                team=job.team if mine else OTHER,
                gang_gpus=gang,
                here_gpus=here,
                nodes=len(placed),
                fail_gpu_h=gang * (done - saved) / 3600.0,
                drain_gpu_h=gang * lost_s(job, now, ckpt, grace_s) / 3600.0,
            )
        )
    out.sort(key=lambda h: (-h.fail_gpu_h, -h.gang_gpus))
    return out
