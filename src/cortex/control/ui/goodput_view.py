"""The goodput page's figures: where the held GPU-time went (control/goodput.py books each
attempt; drive/goodput.py names the categories), for the caller's jobs (every team's for the
admin) over a window, split by team, with the jobs that lost the most. One pass over the
jobs, booked the way `goodput.fleet_goodput` books them (the API's GET /v1/goodput), so the
page's totals are that answer's."""

from __future__ import annotations

import heapq
import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from cortex.control import goodput
from cortex.control import goodput_ledger as ledger
from cortex.control import store_health as sh
from cortex.drive import goodput as gp

WORST_SHOWN = 20  # jobs listed by GPU-hours lost
# How the pages draw the categories (templates/_split.html): a color and words for each.
LOOK: dict[str, Any] = {
    "categories": gp.ATTEMPT_CATEGORIES,
    "colors": {
        "productive": "#2e7d32",
        "startup": "#8e99a8",
        "restart_overhead": "#f9a825",
        "checkpoint_writes": "#5b9bd5",
        "rework_after_failures": "#e53935",
        "rework_after_preemptions": "#ab47bc",
        "in_progress": "#37474f",
    },
    "labels": {
        "productive": "productive",
        "startup": "startup",
        "restart_overhead": "restart overhead",
        "checkpoint_writes": "checkpoint writes",
        "rework_after_failures": "rework after failures",
        "rework_after_preemptions": "rework after preemptions",
        "in_progress": "in progress, not checkpointed yet",
    },
}


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
        return cls.from_gpu_s(books.gpu_s, books.queueing_s, books.attempts, jobs)

    @classmethod
    def from_gpu_s(
        cls, gpu_s: dict[str, float], queueing_s: float, attempts: int, jobs: int
    ) -> Split:
        gpu_h = {k: gpu_s.get(k, 0.0) / 3600.0 for k in gp.ATTEMPT_CATEGORIES}
        held = sum(gpu_h.values())
        return cls(
            gpu_h=gpu_h,
            allocated_gpu_h=held,
            lost_gpu_h=sum(gpu_h[k] for k in gp.LOSSES),
            goodput=gpu_h["productive"] / held if held > 0 else 0.0,
            queueing_h=queueing_s / 3600.0,
            attempts=attempts,
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


def _loss(job: Any, f: ledger.JobFigures) -> JobLoss:
    jid, jteam, name, state, gpus = job[:5]
    lost = f.lost_gpu_s()
    return JobLoss(
        id=jid,
        name=name,
        team=jteam,
        state=state,
        gpus=gpus,
        allocated_gpu_h=f.allocated_gpu_s / 3600.0,
        lost_gpu_h=sum(lost.values()) / 3600.0,
        goodput=f.goodput(),
        worst=max(lost, key=lambda k: lost[k]),
    )


def goodput_page(svc: Any, s: Any, team: str | None, hours: float) -> GoodputPage:
    """`team` None: every team's (the caller has checked who may ask)."""
    now = svc.clock.time()
    gbps = svc.loop.topo.spec.storage_write_gbps  # prices a declared checkpoint size
    since = now - hours * 3600.0
    by_job = ledger.attempts_by_job(s, team, since)
    teams: dict[str, tuple[gp.Books, int]] = {}
    # Jobs that lost GPU-time, by (-lost GPU-hours, id): only the WORST_SHOWN first become
    # JobLoss lines (thousands of jobs lose some).
    lost: list[tuple[float, int, Any, ledger.JobFigures]] = []
    rows = ledger.jobs_to_book(s, team, since)
    for job, f in ledger.book_rows(rows, by_job, svc.loop.progress, now, gbps):
        tb, n = teams.get(job[1], (gp.Books(), 0))
        teams[job[1]] = (tb, n + 1)
        ledger.add_to(tb, f)
        if f.attempts:  # else it never held GPUs in the window (most of a long queue)
            lost_s = f.lost_total_gpu_s()
            if lost_s > 0:
                lost.append((-(lost_s / 3600.0), job[0], job, f))
    worst = heapq.nsmallest(WORST_SHOWN, lost, key=lambda x: (x[0], x[1]))
    total = gp.Books()  # the teams' sums: one merge a team rather than one a job
    for tb, _ in teams.values():
        total.merge(tb)
    return GoodputPage(
        since=since,
        as_of=now,
        total=Split.of(total, len(rows)),
        teams=[(t, Split.of(b, n)) for t, (b, n) in sorted(teams.items())],
        worst=[_loss(job, f) for _, _, job, f in worst],
    )


CACHE_S = 5.0  # a page's books are reused this long (monotonic clock) for the same question
CACHE_MAX = 64
# Per service (weakly held: a closed service's entries go with it), per (team, window).
_cache: weakref.WeakKeyDictionary[Any, dict[tuple[str | None, float], tuple[float, GoodputPage]]]
_cache = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()
# One booking at a time: page views that all miss the cache (an entry just expired, or a
# viewer stepping through windows) wait for it instead of each taking the GIL for as long.
_compute_lock = threading.Lock()


def peek_goodput(
    svc: Any, team: str | None, hours: float, max_age_s: float = CACHE_S
) -> GoodputPage | None:
    """The cached books for this question if fresh, never computing them: the page renders
    them at once when they are, else it paints without them and its fragment books them
    after the first paint."""
    with _cache_lock:
        got = _cache.get(svc, {}).get((team, float(math.ceil(hours))))
    fresh = got is not None and 0 <= svc.clock.monotonic() - got[0] < max_age_s
    return got[1] if fresh and got is not None else None


def cached_goodput(
    svc: Any, team: str | None, hours: float, max_age_s: float = CACHE_S
) -> GoodputPage:
    """`goodput_page`, computed at most once per CACHE_S for the same service, team and window:
    the fragment refreshes every 15 s in every open page, and booking 100k GPUs' jobs takes a
    few hundred milliseconds of the GIL the scheduler shares. The page shows its `as_of`. The
    window is rounded up to whole hours, so that `hours=1.0001`, `1.0002`, ... cannot each
    force a booking past the cache."""
    hours = float(math.ceil(hours))
    key = (team, hours)

    def cached(now: float) -> GoodputPage | None:
        with _cache_lock:
            got = _cache.get(svc, {}).get(key)
        return got[1] if got is not None and 0 <= now - got[0] < max_age_s else None

    page = cached(svc.clock.monotonic())
    if page is not None:
        return page
    with _compute_lock:
        page = cached(svc.clock.monotonic())  # booked while this one waited
        if page is not None:
            return page
        now = svc.clock.monotonic()
        with svc.sessions() as s:
            page = goodput_page(svc, s, team, hours)
        with _cache_lock:
            mine = _cache.setdefault(svc, {})
            if len(mine) >= CACHE_MAX:
                mine.clear()
            mine[key] = (now, page)
    return page


def job_split(svc: Any, s: Any, job: Any) -> tuple[Split, list[dict[str, Any]]]:
    """One job's books and its attempts (the API's GET /v1/jobs/{id}/goodput)."""
    from cortex.control import store

    now = svc.clock.time()
    start = None
    if job.state == "running":
        alloc = store.active_allocation(s, job.id)
        start = alloc.created_at if alloc is not None else None
    gbps = svc.loop.topo.spec.storage_write_gbps  # prices a declared checkpoint size
    recs = list(sh.attempts_of(s, job.id))
    jb = goodput.book_job(job, recs, start, svc.loop.progress, now, gbps)
    attempts = [
        {
            "attempt": a.number,
            "outcome": a.outcome,
            "started_at": a.started_at,
            "ended_at": a.ended_at,
            "node": node,
            "split": Split.from_gpu_s({k: v * a.gpus for k, v in sp.items()}, 0.0, 1, 1),
        }
        for (a, node), sp in zip(jb.attempts, jb.splits, strict=True)
    ]
    return Split.of(jb.books, 1), attempts
