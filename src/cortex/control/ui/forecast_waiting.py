"""The waiting jobs in the power forecast: when the start estimator's forward run
(control/estimate.py, the scheduler run ahead from the last pass, one run: the point estimate)
starts each one, where, and for how long; each is drawn at its uncapped watts (the power books'
per-GPU draw for its kind on that flavor, less idle, times its gang) from its estimated start to
its estimated end.

The estimator runs without the power policy (its snapshots carry no power view), so its starts
ignore the cap: where the waiting jobs would take the site past it, the forecast holds the draw
at the cap (the policy would hold back or cap them so) and counts those samples. The time the
cap would delay them by is not in it: past a binding cap the tail of the forecast is early.

One forward run is bounded (BUDGET_S here, estimate.MAX_PASSES) and its result is reused for
CACHE_S, so the page's 30 s refresh runs it at most once per refresh. At 100k GPUs with 2,000
jobs queued the estimator's own 2 s budget ran out before the queue did (bench/RESULTS.md
§45): the forecast takes a quarter of that, so it holds the GIL the scheduler shares for at
most about half a second every 30 s; the jobs the run did not reach are not in the forecast
(`waiting_in` counts those that are)."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from cortex.control.estimate import estimate, lost_work

CACHE_S = 30.0
BUDGET_S = 0.5  # seconds of forward run per forecast
# The last service's (loop, when, starts): one service per process in practice. A weak
# reference, so a later loop at the same address is never mistaken for it.
_CACHE: list[tuple[weakref.ref[Any], float, list[tuple[float, float, float]]]] = []
_LOCK = threading.Lock()  # one forward run at a time


def waiting_starts(loop: Any) -> list[tuple[float, float, float]]:
    """(start, end, IT watts over idle) of each waiting job the forward run starts."""
    with _LOCK:
        if _CACHE:
            ref, at, out = _CACHE[0]
            if ref() is loop and time.monotonic() - at < CACHE_S:
                return out
        out = _starts(loop)
        _CACHE[:] = [(weakref.ref(loop), time.monotonic(), out)]
        return out


def _starts(loop: Any) -> list[tuple[float, float, float]]:
    rec = loop.why.current
    if rec.queue_config is None or not rec.queues:
        return []
    where: dict[int, tuple[int, int, Any]] = {}
    est = estimate(
        rec, loop.topo, rec.queue_config, loop.pol, loop.estimate_s, loop.speed,
        runs=1, where=where, lost=lost_work(loop), budget_s=BUDGET_S,
    )  # fmt: skip
    jobs = {job.id: job for q in rec.queues for _, job in q} | dict(rec.backoff_jobs)
    books = loop.power.books
    accs = books.topo.accelerators
    out = []
    for jid, e in est.items():
        if e is None or e.start_s is None or jid not in where or jid not in jobs:
            continue
        flavor, gang, _ = where[jid]
        job, acc = jobs[jid], accs[flavor]
        # draw_w fills a cache the scheduler thread also fills: one key, one value, no
        # iteration, so a write from here is harmless.
        per_w = min(books.draw_w(job.kind, flavor), acc.tdp_w)
        end = e.start_s + loop.estimate_s(job, flavor, gang)
        out.append((e.start_s, end, gang * max(per_w - acc.idle_w, 0.0)))
    return out
