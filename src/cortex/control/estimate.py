"""When will a waiting job start? Run the scheduler forward from the live state, the way the
twin runs it: the same `schedule()` and policies, the running jobs ending at their estimated
ends, each start's runtime from the submitter's estimate. A few more runs with runtime errors
drawn per job (seeded) give a band around the point estimate.

The state is the last scheduling pass's (`WhyRecord`: its pending lists and the allocations
it saw), copied: the live mirror is never touched, so this runs on a request thread. A job
this changes is a shallow copy (`copy.copy`) of the live one; the others are only read.

A job waiting out a retry backoff (drive/runs.py judge_exit) joins the pending queues when its
backoff ends, as the twin's RETRY event puts it back (sim/runs.py `_retry`): its estimate is
never earlier than that end.

What it leaves out, so the estimate is optimistic: failures and repairs, jobs submitted later
(a higher priority arriving jumps the queue), preempted jobs' grace periods, and runtime
estimates that are wrong on average (the band models an error around them, not a bias).
"""

from __future__ import annotations

import copy
import heapq
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cortex.control import preemptions
from cortex.drive import protection, runs
from cortex.fleet.topology import Topology
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

log = logging.getLogger("cortex.control")

RUNS = 5  # the point estimate and four runs with drawn runtime errors
# The spread of runtime errors, as a log-normal sigma: an assumption that sets the band's
# width, not a measurement (a job's real error depends on who wrote its duration_s).
RUNTIME_SIGMA = 0.3
MAX_PASSES = 2_000  # scheduling passes per run: bounds the work of one estimate
BUDGET_S = 2.0  # seconds per run (monotonic clock); what has not started by then is "later"
HORIZON_S = 30 * 86_400.0  # a job not started within this is reported as not started


@dataclass(frozen=True)
class StartEstimate:
    start_s: float | None  # the point estimate (runtimes as estimated); None: past the horizon
    low_s: float | None  # earliest and latest over the runs (None: some run never started it)
    high_s: float | None
    runs: int


Estimator = Callable[[Job, int, int], float]
LostWork = Callable[[Job, float], float]  # (running job, time) -> seconds a preemption costs it


def _simulate(
    topo: Topology,
    queues: QueueConfig,
    pol: Policies,
    now: float,
    running: Iterable[tuple[Job, int, Any]],
    pending: Iterable[Job],
    estimate_s: Estimator,
    speed: Callable[[str, int], float],
    factor: Callable[[int], float],
    targets: set[int] | None,
    where: dict[int, tuple[int, int, Any]] | None = None,
    lost: LostWork | None = None,
    budget_s: float = BUDGET_S,
    backoff: Iterable[tuple[Job, float]] = (),
) -> dict[int, float]:
    """Start times of the waiting jobs in one forward run (those that start in it). Jobs this
    run changes (running, started, preempted, queued after a backoff) are its own shallow
    copies; the live ones are only read. `backoff`: (job, when its retry backoff ends), each
    queued then."""
    st = ClusterState(topo, queues)
    pq = PendingQueues(len(queues.queues), pol.ordering.key)
    ends: list[tuple[float, int]] = []
    live: dict[int, tuple[Job, float, float]] = {}  # id: (job, start, end)
    for job, flavor, placement in running:
        j = copy.copy(job)
        j.est_end_s = now + max(0.0, job.est_end_s - now) * factor(j.id)
        st.start(j, j.queue_idx, flavor, placement)
        live[j.id] = (j, now, j.est_end_s)
        heapq.heappush(ends, (j.est_end_s, j.id))
    for job in pending:
        # The live job itself, under the key it was queued with: the scheduler never writes to
        # a pending job (only `PendingQueues.add` sets its key), so only the jobs this run
        # starts are copied, when they start (copying all 10,000 was half the cost).
        pq.lists[job.queue_idx].add((job.key, job))
        pq._n += 1  # not PendingQueues.add: it would rewrite the live job's key
    starts: dict[int, float] = {}
    copied = set(live)  # ids whose job objects here are this run's own copies
    # Besides the ends, the loop's victim searches: a job in its live backoff searches again
    # when that expires, and one whose search here found none when the protected victims could
    # hold it (drive/protection.py, the loop's rule; this run sets no backoff of its own: the
    # pending jobs are the live ones). It used to wait for the next end, past the protection.
    waiting = {job.id: job for q in pq.lists for _, job in q}
    wakes = sorted({j.next_preempt_try_s for j in waiting.values() if j.next_preempt_try_s > now})
    # Jobs in a retry backoff queue when it ends: a pass then (the twin's RETRY event).
    retries = sorted((max(until, now), job.id, job) for job, until in backoff)
    for until, _, _ in retries:
        heapq.heappush(wakes, until)
    t = now
    deadline = time.monotonic() + budget_s
    for _ in range(MAX_PASSES):
        if time.monotonic() > deadline:
            break
        while retries and retries[0][0] <= t:
            _, _, job = heapq.heappop(retries)
            j = copy.copy(job)  # `add` writes its key: never to the live job
            copied.add(j.id)
            pq.add(j)
            waiting[j.id] = j
        # Victims are costed as the loop costs them: by the work they would lose at t.
        lost_s = None if lost is None else (lambda j, t=t: lost(j, t))
        plan = schedule(Snapshot(t, st, pq, speed, estimate_s, lost_s=lost_s), pol, deep=True)
        for p in plan.preemptions:
            v, began, end = live.pop(p.job.id)
            st.stop(v, v.queue_idx)
            runs.evicted(v, p.reason.code)  # its copy: the queue's budget holds here too
            # It keeps the work done so far (the training workloads checkpoint on SIGTERM).
            done = (t - began) / (end - began) if end > began else 1.0
            v.done_s += min(1.0, done) * v.remaining_s
            # Estimates a driver kept on the job (the twin's, control/estimate_accuracy.py) were
            # made for the work left before: the copy drops them (the live job's stay its own).
            v.est_cache = v.est_gang_s = None
            pq.add(v)
            waiting[v.id] = v
        for s in plan.starts:
            pq.remove(s.job)
            j = s.job if s.job.id in copied else copy.copy(s.job)
            copied.add(j.id)
            j.run_start_s = t
            j.est_end_s = t + estimate_s(j, s.flavor, s.gang_gpus) * factor(j.id)
            st.start(j, j.queue_idx, s.flavor, s.placement)
            live[j.id] = (j, t, j.est_end_s)
            heapq.heappush(ends, (j.est_end_s, j.id))
            starts.setdefault(j.id, t)
            if where is not None:
                where.setdefault(j.id, (s.flavor, s.gang_gpus, s.placement))
        if (not len(pq) and not retries) or (targets is not None and targets <= starts.keys()):
            break
        if plan.preempt_failed:
            held = protection.protected((v for v, _, _ in live.values()), queues, t)
            may = pol.preemption.may_evict
            for jid in plan.preempt_failed:
                by = protection.retry_by_s(waiting[jid], held, queues, may)
                if by is not None:
                    heapq.heappush(wakes, by)
        while wakes and wakes[0] <= t:
            heapq.heappop(wakes)
        # Jump to the next end or search (entries of preempted runs are stale: skipped).
        while ends and (ends[0][1] not in live or live[ends[0][1]][2] != ends[0][0]):
            heapq.heappop(ends)
        nxt = min(ends[0][0] if ends else math.inf, wakes[0] if wakes else math.inf)
        if nxt - now > HORIZON_S:  # none (inf) included
            break
        t = nxt
        while ends and ends[0][0] <= t:
            _, jid = heapq.heappop(ends)
            got = live.get(jid)
            if got is not None and got[2] <= t:
                del live[jid]
                st.stop(got[0], got[0].queue_idx)
    return starts


def estimate(
    rec: Any,
    topo: Topology,
    queues: QueueConfig,
    pol: Policies,
    estimate_s: Estimator,
    speed: Callable[[str, int], float],
    targets: set[int] | None = None,
    *,
    runs: int = RUNS,
    seed: int = 0,
    where: dict[int, tuple[int, int, Any]] | None = None,
    lost: LostWork | None = None,
    budget_s: float = BUDGET_S,
) -> dict[int, StartEstimate]:
    """Start estimates for the waiting jobs of a `WhyRecord` (all, or `targets`); `where`, if
    given, receives each start's (flavor, gang GPUs, placement) in the point-estimate run;
    `lost`, if given, costs preemption victims by lost work (else by their GPUs); `budget_s`:
    seconds per run (what has not started by then is "later")."""
    running = list(rec.running)
    pending = [job for q in rec.queues for _, job in q]
    until = getattr(rec, "backoff", {})
    backoff = [(j, until[i]) for i, j in getattr(rec, "backoff_jobs", {}).items() if i in until]
    waiting = ({j.id for j in pending} - set(rec.started)) | {j.id for j, _ in backoff}
    want = waiting if targets is None else targets & waiting
    results: list[dict[int, float]] = []
    for run in range(runs):
        rng = np.random.default_rng([seed, run])
        drawn: dict[int, float] = {}

        def factor(
            jid: int, rng: Any = rng, drawn: dict[int, float] = drawn, run: int = run
        ) -> float:
            if run == 0:
                return 1.0
            if jid not in drawn:
                drawn[jid] = float(math.exp(rng.normal(0.0, RUNTIME_SIGMA)))
            return drawn[jid]

        results.append(
            _simulate(
                topo,
                queues,
                pol,
                rec.at,
                running,
                pending,
                estimate_s,
                speed,
                factor,
                targets,
                where if run == 0 else None,
                lost,
                budget_s,
                backoff,
            )
        )
    out = {}
    for jid in want:
        got = [r.get(jid) for r in results]
        seen = [x for x in got if x is not None]
        full = len(seen) == len(got)
        out[jid] = StartEstimate(
            start_s=got[0],
            low_s=min(seen) if full else None,
            high_s=max(seen) if full else None,
            runs=runs,
        )
    return out


def for_loop(loop: Any) -> Callable[[Any, set[int]], dict[int, StartEstimate]]:
    """The estimator of a scheduler loop's records: its fleet, policies and runtime model."""

    def compute(rec: Any, targets: set[int]) -> dict[int, StartEstimate]:
        queues = rec.queue_config
        try:
            return estimate(
                rec, loop.topo, queues, loop.pol, loop.estimate_s, loop.speed, targets,
                lost=lost_work(loop),
            )  # fmt: skip
        except Exception:
            # The live jobs it reads may have moved on (a queue rebuild re-indexes them while
            # this runs): no estimate this time, rather than a failed request.
            log.exception("start estimate failed; answering none")
            return {}

    return compute


def lost_work(loop: Any) -> LostWork:
    """The loop's victim cost (control/loop.py `_schedule`) at any time of a forward run: the
    newest checkpoint already known of a job still counts; a run the forward run started has
    none, so its cost is all its work there unless it checkpoints on the signal."""
    progress, grace_s = loop.progress, loop.settings.grace_s

    def lost(job: Job, t: float) -> float:
        return preemptions.lost_s(job, t, progress.known_checkpoint_at(job.id), grace_s)

    return lost


def to_dict(e: StartEstimate | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"start_s": e.start_s, "low_s": e.low_s, "high_s": e.high_s, "runs": e.runs}
