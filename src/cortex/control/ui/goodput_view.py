"""The goodput page's figures: where the held GPU-time went (control/goodput.py books each
attempt; drive/goodput.py names the categories), for the caller's jobs (every team's for the
admin) over a window, split by team, with the jobs that lost the most. One pass over the
jobs, booked the way `goodput.fleet_goodput` books them (the API's GET /v1/goodput), so the
page's totals are that answer's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cortex.control import goodput
from cortex.control import store_health as sh
from cortex.drive import goodput as gp

WORST_SHOWN = 20  # jobs listed by GPU-hours lost


@dataclass
class Split:
    """GPU-hours per category (drive/goodput.ATTEMPT_CATEGORIES) and goodput."""

    gpu_h: dict[str, float]
    allocated_gpu_h: float
    lost_gpu_h: float
    goodput: float
    queueing_h: float
    attempts: int
    jobs: int

    @classmethod
    def of(cls, books: gp.Books, jobs: int) -> Split:
        gpu_h = {k: v / 3600.0 for k, v in books.gpu_s.items()}
        return cls(
            gpu_h=gpu_h,
            allocated_gpu_h=books.allocated_gpu_s / 3600.0,
            lost_gpu_h=sum(gpu_h[k] for k in gp.LOSSES),
            goodput=books.goodput(),
            queueing_h=books.queueing_s / 3600.0,
            attempts=books.attempts,
            jobs=jobs,
        )

    def share(self, key: str) -> float:
        """A category's share of the allocated GPU-time (0..1)."""
        return self.gpu_h[key] / self.allocated_gpu_h if self.allocated_gpu_h > 0 else 0.0


@dataclass
class JobLoss:
    id: int
    name: str
    team: str
    state: str
    gpus: int
    allocated_gpu_h: float
    lost_gpu_h: float
    goodput: float
    worst: str  # the category that lost it the most


@dataclass
class GoodputPage:
    since: float
    as_of: float
    total: Split
    teams: list[tuple[str, Split]]
    worst: list[JobLoss] = field(default_factory=list)
    categories: tuple[str, ...] = gp.ATTEMPT_CATEGORIES
    losses: tuple[str, ...] = gp.LOSSES


def goodput_page(svc: Any, s: Any, team: str | None, hours: float) -> GoodputPage:
    """`team` None: every team's (the caller has checked who may ask)."""
    now = svc.clock.time()
    since = now - hours * 3600.0
    progress = svc.loop.progress
    by_job: dict[int, list[Any]] = {}
    for r in sh.attempts_since(s, team, since):
        by_job.setdefault(r.job_id, []).append(r)
    running = {job.id: at for job, at in sh.running_jobs(s, team)}
    total = gp.Books()
    teams: dict[str, tuple[gp.Books, int]] = {}
    losses: list[JobLoss] = []
    jobs = sh.jobs_for(s, team, since)
    for job in sorted(jobs, key=lambda j: j.id):
        jb = goodput.book_job(job, by_job.get(job.id, []), running.get(job.id), progress, now)
        total.merge(jb.books)
        tb, n = teams.get(job.team, (gp.Books(), 0))
        tb.merge(jb.books)
        teams[job.team] = (tb, n + 1)
        lost = {k: jb.books.gpu_s[k] for k in gp.LOSSES}
        lost_s = sum(lost.values())
        if lost_s > 0:
            losses.append(
                JobLoss(
                    id=job.id,
                    name=job.name,
                    team=job.team,
                    state=job.state,
                    gpus=job.gpus,
                    allocated_gpu_h=jb.books.allocated_gpu_s / 3600.0,
                    lost_gpu_h=lost_s / 3600.0,
                    goodput=jb.books.goodput(),
                    worst=max(lost, key=lambda k: lost[k]),
                )
            )
    losses.sort(key=lambda j: (-j.lost_gpu_h, j.id))
    return GoodputPage(
        since=since,
        as_of=now,
        total=Split.of(total, len(jobs)),
        teams=[(t, Split.of(b, n)) for t, (b, n) in sorted(teams.items())],
        worst=losses[:WORST_SHOWN],
    )


def job_split(svc: Any, s: Any, job: Any) -> tuple[Split, list[dict[str, Any]]]:
    """One job's books and its attempts (the API's GET /v1/jobs/{id}/goodput)."""
    from cortex.control import store

    now = svc.clock.time()
    start = None
    if job.state == "running":
        alloc = store.active_allocation(s, job.id)
        start = alloc.created_at if alloc is not None else None
    jb = goodput.book_job(job, list(sh.attempts_of(s, job.id)), start, svc.loop.progress, now)
    attempts = [
        {
            "attempt": a.number,
            "outcome": a.outcome,
            "started_at": a.started_at,
            "ended_at": a.ended_at,
            "node": node,
            "gpu_h": {k: v * a.gpus / 3600.0 for k, v in sp.items()},
        }
        for (a, node), sp in zip(jb.attempts, jb.splits, strict=True)
    ]
    return Split.of(jb.books, 1), attempts
