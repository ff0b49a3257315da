"""Why a job waits, and where it stands in the queue: the scheduler's structured blockers
(`cortex.scheduler.reasons`), ranked, each with its numbers and a hint that fixes it.

The loop records what each cycle decided (`WhyBook.record`, one call per scheduling pass); the
API reads the last record from any thread. A record is immutable once published (one attribute
store replaces it whole, like `LoopView`), so a reader needs no lock and never waits for a tick.
What costs more than a copy (each waiting job's place in the queue) is computed by the first
reader of a record and kept with it.

Queue order: the jobs the last pass examined and could not start come first, in the order it
walked them (exact: that is the order the scheduler gives capacity in); every other waiting job
follows by its ordering key (exact within a cluster queue; across queues the priority profile's
fair-share merge may interleave them differently as usage changes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Plan, Snapshot

log = logging.getLogger("cortex.control")

# Codes the control plane adds to the scheduler's: a waiting job the last pass did not see.
RETRY_BACKOFF = "RetryBackoff"
NOT_SCHEDULED_YET = "NotScheduledYet"
WAITING_FOR_DEVICES = "WaitingForDevices"

# The blocker shown first is the one that would still hold once the others cleared: a limit of
# policy (never fits, quota) before one of capacity, capacity before a transient one (a head's
# reservation, not being reached this pass). Lower ranks first; ties keep the scheduler's order.
RANK: dict[str, int] = {
    Code.NEVER_FITS.value: 0,
    Code.NEVER_FITS_POWER.value: 0,
    Code.NO_FLAVOR.value: 0,
    Code.UNKNOWN_QUEUE.value: 0,
    Code.UNKNOWN_PRIORITY_CLASS.value: 0,
    Code.BORROWING_LIMIT.value: 1,
    Code.QUOTA_EXCEEDED.value: 2,
    Code.OVER_TARGET.value: 3,
    Code.POWER_CAP.value: 4,
    Code.POWER_RAMP.value: 5,
    Code.INSUFFICIENT_CAPACITY.value: 6,
    Code.TOPOLOGY_UNAVAILABLE.value: 7,
    Code.RESERVED_FOR_HEAD.value: 8,
    RETRY_BACKOFF: 9,
    WAITING_FOR_DEVICES: 9,
    Code.NOT_EXAMINED.value: 10,
    NOT_SCHEDULED_YET: 11,
}

# What the submitter (or an admin) can do about each blocker; {names} come from its numbers.
HINTS: dict[str, str] = {
    Code.NEVER_FITS.value: "ask for at most {most} GPUs, or list a larger flavor",
    Code.NEVER_FITS_POWER.value: "ask for fewer GPUs: the site's power budget can never hold it",
    Code.NO_FLAVOR.value: "list a flavor the fleet has",
    Code.BORROWING_LIMIT.value: (
        "a gang of at most {free_in_quota} fits queue {queue} now; or ask an admin to raise its "
        "nominal share or borrowing limit"
    ),
    Code.QUOTA_EXCEEDED.value: (
        "a gang of at most {free_in_quota} fits the cohort's quota now; or wait for its usage "
        "to drop"
    ),
    Code.OVER_TARGET.value: "another flavor, or wait: the queue holds its target share",
    Code.POWER_CAP.value: "fewer GPUs, or wait for power headroom (running jobs ending)",
    Code.POWER_RAMP.value: "wait a minute: the site limits how fast its load may rise",
    Code.INSUFFICIENT_CAPACITY.value: (
        "a gang of at most {free_gpus} starts now (or set elastic.min_gpus), or list another "
        "flavor; else it waits for running jobs to end"
    ),
    Code.TOPOLOGY_UNAVAILABLE.value: (
        "a gang of at most {largest_block_gpus} fits the largest free block now; else it waits "
        "for whole nodes to free up"
    ),
    Code.RESERVED_FOR_HEAD.value: (
        "a shorter duration_s (ending before job {head} starts) would let it backfill"
    ),
    RETRY_BACKOFF: "nothing: it waits out its retry delay, then queues again",
    WAITING_FOR_DEVICES: "nothing: it has its place; a preempted job is still exiting",
    Code.NOT_EXAMINED.value: "nothing: jobs ahead of it are considered first",
    NOT_SCHEDULED_YET: "nothing: the next scheduling pass will consider it",
}

# The hint when the number its gang size comes from is 0 ("a gang of at most 0" helps no one).
HINTS_AT_ZERO: dict[str, tuple[str, str]] = {
    Code.BORROWING_LIMIT.value: (
        "free_in_quota",
        "queue {queue} has no room now: it waits for its jobs to end; or ask an admin to raise "
        "its nominal share or borrowing limit",
    ),
    Code.QUOTA_EXCEEDED.value: (
        "free_in_quota",
        "the cohort's quota is used up now: it waits for its usage to drop",
    ),
    Code.INSUFFICIENT_CAPACITY.value: (
        "free_gpus",
        "nothing is free now: it waits for running jobs to end, or list another flavor",
    ),
    Code.TOPOLOGY_UNAVAILABLE.value: (
        "largest_block_gpus",
        "no block is free now: it waits for whole nodes to free up",
    ),
}


@dataclass(frozen=True)
class FlavorFree:
    """A flavor's free capacity when the pass ran."""

    name: str
    free_gpus: int
    largest_node_gpus: int
    largest_pod_gpus: int


@dataclass(frozen=True)
class Place:
    """A waiting job's place: `position` in its cluster queue (1 = next), the jobs ahead of it
    in that queue and in all queues."""

    queue: str
    position: int
    ahead_in_queue: int
    ahead_total: int


@dataclass
class WhyRecord:
    """What one scheduling pass left unstarted, and why. Immutable after `record` builds it,
    except the lazily built `_places` index (built once, under `_lock`)."""

    at: float = 0.0
    blockers: Mapping[int, Sequence[Reason]] = field(default_factory=dict)
    rest: Reason | None = None
    queue_names: tuple[str, ...] = ()
    # Per queue, its pending list as the pass saw it: (ordering key, Job), the jobs in
    # `started` excluded when read (a copy at C speed; the filtering is the reader's).
    queues: tuple[tuple[tuple[Any, Any], ...], ...] = ()
    started: frozenset[int] = frozenset()
    backoff: Mapping[int, float] = field(default_factory=dict)
    # The jobs waiting out a retry backoff (the live objects, only read), for start estimates:
    # they join the pending queues when their backoff ends, as the twin's RETRY event.
    backoff_jobs: Mapping[int, Any] = field(default_factory=dict)
    flavors: tuple[FlavorFree, ...] = ()
    quota_room: tuple[tuple[int | None, ...], ...] = ()  # per queue, per flavor; None: no limit
    cohort_free: tuple[int, ...] = ()
    power_headroom_mw: float | None = None
    # What held capacity when the pass ran, for start estimates (control/estimate.py).
    queue_config: Any = None  # the pass's QueueConfig (the jobs' queue indices refer to it)
    running_jobs: Mapping[int, Any] = field(default_factory=dict)
    allocations: tuple[tuple[int, Any], ...] = ()
    # Waiting jobs whose last victim search found none, and when the protected jobs they may
    # evict hold them (their queues' min_runtime_s): the `retry_by_s` the loop handed
    # preempt_backoff (drive/runs.py), so why names when the next search may find a victim.
    preempt_at: Mapping[int, float] = field(default_factory=dict)
    _estimates: dict[int, Any] | None = None
    _places: dict[int, tuple[int, int, int]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def places(self) -> dict[int, tuple[int, int, int]]:
        """Job id to (queue index, jobs ahead in its queue, jobs ahead in all queues)."""
        if self._places is None:
            with self._lock:
                if self._places is None:
                    self._places = _places(self)
        return self._places

    @property
    def running(self) -> list[tuple[Any, int, Any]]:
        """(job, flavor, placement) of every job holding capacity."""
        jobs = self.running_jobs
        return [(jobs[j], a.flavor, a.placement) for j, a in self.allocations if j in jobs]

    def estimates(self, compute: Any, ids: set[int]) -> dict[int, Any]:
        """Start estimates of `ids`: `compute(self, missing)` for those this record has not
        estimated yet, once (one computation at a time: each is bounded in time)."""
        with self._lock:
            cache = self._estimates if self._estimates is not None else {}
            missing = ids - cache.keys()
            if missing:
                cache.update(compute(self, missing))
                self._estimates = cache
            return {i: cache.get(i) for i in ids}

    def place(self, job_id: int) -> Place | None:
        got = self.places().get(job_id)
        if got is None:
            return None
        qi, ahead_q, ahead = got
        return Place(self.queue_names[qi], ahead_q + 1, ahead_q, ahead)


def _places(rec: WhyRecord) -> dict[int, tuple[int, int, int]]:
    """Every waiting job's (queue index, jobs ahead in its queue, jobs ahead in all), in
    O(n log n): see the module's note on queue order. Plain tuples: this runs over every
    waiting job once per pass, and an object per job would cost most of it."""
    walk = {jid: i for i, jid in enumerate(rec.blockers)}
    n_walk = len(walk)
    started = rec.started
    out: dict[int, tuple[int, int, int]] = {}
    rest: list[tuple[Any, int, int, int]] = []  # jobs the pass did not walk
    for qi, q in enumerate(rec.queues):
        i = 0
        for key, job in q:
            jid = job.id
            if jid in started:
                continue
            w = walk.get(jid)
            if w is None:
                rest.append((key, jid, qi, i))
            else:
                out[jid] = (qi, i, w)
            i += 1
    # Keys end with the job id, so they are unique and the order is total; the queues' runs
    # are each sorted already, which timsort merges in about linear time.
    rest.sort()
    for rank, (_, jid, qi, i) in enumerate(rest, n_walk):
        out[jid] = (qi, i, rank)
    return out


class WhyBook:
    """The last pass's record, replaced whole by the scheduler thread."""

    def __init__(self) -> None:
        self.current = WhyRecord()

    def record(
        self,
        snap: Snapshot,
        plan: Plan,
        backoff: Mapping[int, float],
        preempt_at: Mapping[int, float] | None = None,
        backoff_jobs: Mapping[int, Any] | None = None,
    ) -> None:
        """Called by the loop right after `schedule`, before it applies the plan. A failure
        here is logged and leaves the last record: explaining must never stop scheduling.
        `preempt_at`: the loop's retry_by_s of the jobs whose victim search failed;
        `backoff_jobs`: the jobs of `backoff` (id to job), for start estimates."""
        try:
            self._record(snap, plan, backoff, preempt_at or {}, backoff_jobs or {})
        except Exception:
            log.exception("recording why jobs wait failed; the last record stays")

    def _record(
        self,
        snap: Snapshot,
        plan: Plan,
        backoff: Mapping[int, float],
        preempt_at: Mapping[int, float],
        backoff_jobs: Mapping[int, Any],
    ) -> None:
        st = snap.state
        started = frozenset(s.job.id for s in plan.starts)
        queues = tuple(tuple(lst) for lst in snap.pending.lists)
        flavors = tuple(
            FlavorFree(
                name,
                st.free_gpus[f],
                st.largest_free_node_gpus(f),
                st.largest_free_pod_gpus(f),
            )
            for f, name in enumerate(st.topo.flavors)
        )
        room: list[tuple[int | None, ...]] = []
        for q in st.queues.queues:
            room.append(
                tuple(
                    None
                    if q.borrowing_limit[f] is None
                    else max(0, q.nominal[f] + (q.borrowing_limit[f] or 0) - st.usage[q.index][f])
                    for f in range(len(flavors))
                )
            )
        cohort_free = tuple(
            max(0, st.queues.cohort_nominal[f] - st.cohort_usage[f]) for f in range(len(flavors))
        )
        left_w = plan.power_headroom_w
        self.current = WhyRecord(
            at=snap.now_s,
            blockers=dict(plan.blockers),
            rest=plan.rest_reason,
            queue_names=st.queues.names,
            queues=queues,
            started=started,
            backoff=dict(backoff),
            backoff_jobs=dict(backoff_jobs),
            flavors=flavors,
            quota_room=tuple(room),
            cohort_free=cohort_free,
            power_headroom_mw=None if left_w is None else left_w / 1e6,
            queue_config=st.queues,
            running_jobs=dict(st.running),
            allocations=tuple(st.allocations.items()),
            preempt_at=dict(preempt_at),
        )

    # ---- read side ------------------------------------------------------------------------
    def top(self, job_id: int) -> str | None:
        """The code of a waiting job's first blocker (for the REASON column), or None."""
        rec = self.current
        reasons = rec.blockers.get(job_id)
        if reasons:
            return min(reasons, key=lambda r: RANK.get(r.code.value, 99)).code.value
        if job_id in rec.backoff:
            return RETRY_BACKOFF
        if job_id in rec.places():
            return rec.rest.code.value if rec.rest is not None else NOT_SCHEDULED_YET
        return None

    def explain(
        self, job_id: int, queue: str | None, backoff_until: float | None = None
    ) -> dict[str, Any]:
        """The ranked blockers of a waiting job and its place (see `blocker`). `backoff_until`:
        the loop's retry delay for the job now (a pass that ran before it began cannot know)."""
        rec = self.current
        if backoff_until is None:
            backoff_until = rec.backoff.get(job_id)
        place = rec.place(job_id)
        ahead = place.ahead_total if place is not None else None
        qi = rec.queue_names.index(queue) if queue in rec.queue_names else None
        if job_id in rec.blockers:
            reasons: list[tuple[str, Reason | None]] = [
                (r.code.value, r) for r in rec.blockers[job_id]
            ]
        elif backoff_until is not None:
            reasons = [(RETRY_BACKOFF, Reason(Code.NOT_EXAMINED, until_s=backoff_until))]
        elif place is not None and rec.rest is not None:
            reasons = [(rec.rest.code.value, rec.rest)]
        else:
            reasons = [(NOT_SCHEDULED_YET, None)]
        out = [blocker(code, r, rec, qi, ahead, job_id) for code, r in _dedupe(reasons)]
        out.sort(key=lambda b: RANK.get(b["code"], 99))
        for i, b in enumerate(out, 1):
            b["rank"] = i
        return {
            "as_of": rec.at,
            "place": None if place is None else asdict(place),
            "blockers": out,
        }


def _dedupe(reasons: list[tuple[str, Reason | None]]) -> list[tuple[str, Reason | None]]:
    """One blocker per (code, flavor): a job tried with two gang sizes on one flavor reports
    the first (its full gang's)."""
    seen: set[tuple[str, Any]] = set()
    out = []
    for code, r in reasons:
        k = (code, None if r is None else r.detail.get("flavor"))
        if k not in seen:
            seen.add(k)
            out.append((code, r))
    return out


def blocker(
    code: str,
    r: Reason | None,
    rec: WhyRecord,
    qi: int | None,
    ahead: int | None,
    job_id: int,
) -> dict[str, Any]:
    """One blocker with its numbers: `requested_gpus`, `free_gpus`, `free_in_quota`,
    `largest_block_gpus`, `power_headroom_mw`, `jobs_ahead` (None where they do not apply),
    the scheduler's own numbers in `detail`, its message and a hint."""
    d = dict(r.detail) if r is not None else {}
    f = next((i for i, x in enumerate(rec.flavors) if x.name == d.get("flavor")), None)
    ff = rec.flavors[f] if f is not None else None
    need = d.get("need")
    free_in_quota = d.get("free_in_quota")
    if free_in_quota is None and code == Code.BORROWING_LIMIT.value:
        free_in_quota = max(0, d["nominal"] + d["limit"] - d["usage"])
    elif free_in_quota is None and qi is not None and f is not None:
        room = rec.quota_room[qi][f]
        free_in_quota = rec.cohort_free[f] if room is None else min(room, rec.cohort_free[f])
    largest = d.get("largest_block")
    if largest is None and ff is not None and need is not None:
        largest = ff.largest_pod_gpus or ff.largest_node_gpus
    numbers = {
        "requested_gpus": need,
        "flavor": d.get("flavor"),
        "free_gpus": d.get("free", ff.free_gpus if ff is not None else None),
        "free_in_quota": free_in_quota,
        "largest_block_gpus": largest,
        "power_headroom_mw": d.get("headroom_mw", rec.power_headroom_mw),
        "jobs_ahead": ahead,
    }
    if code == RETRY_BACKOFF:  # its Reason carries only `until_s`
        message = f"waiting out a retry delay until t={d.get('until_s', 0.0):.0f}"
    elif code == NOT_SCHEDULED_YET:
        message = "no scheduling pass has considered it yet"
    elif r is not None:
        message = r.message
    else:
        message = code
    template = HINTS.get(code, "")
    if code in HINTS_AT_ZERO and numbers.get(HINTS_AT_ZERO[code][0]) == 0:
        template = HINTS_AT_ZERO[code][1]
    preempt_at = preempt_at_s(rec, job_id) if code in WAITS_FOR_CAPACITY else None
    numbers["preempt_at_s"] = preempt_at
    if preempt_at is not None:
        # Not "waits for running jobs to end": a preemption is coming, at a known time.
        template = (
            "the jobs it may preempt are protected now (their queue's min_runtime_s); "
            f"by t={preempt_at:.0f} "
            f"({max(0.0, preempt_at - rec.at):.0f} s after this pass) enough of their "
            "protection has ended to hold it, and it searches for victims again"
        )
    try:
        hint = template.format(**{**d, **numbers})
    except (KeyError, ValueError, IndexError):
        hint = template
    return {
        "code": code,
        "message": message,
        "hint": hint,
        **numbers,
        "detail": {k: v for k, v in d.items() if isinstance(v, int | float | str | bool)},
    }


# Blockers a preemption could clear: capacity that running jobs hold.
WAITS_FOR_CAPACITY = frozenset({Code.INSUFFICIENT_CAPACITY.value, Code.TOPOLOGY_UNAVAILABLE.value})


def preempt_at_s(rec: WhyRecord, job_id: int) -> float | None:
    """When a job whose last victim search found none may find one: the moment the protected
    jobs it may evict hold its GPUs (drive/protection.retry_by_s), while it lies after the
    pass."""
    got = rec.preempt_at.get(job_id)
    return got if got is not None and got > rec.at else None


def never_reason(stored: str) -> dict[str, Any] | None:
    """A rejected job's reason as intake wrote it (`NeverFits: needs 64 GPUs; ...`,
    `drive/intake.describe`) as a blocker; None if it is not one of intake's codes."""
    code, sep, message = stored.partition(": ")
    if not sep or code not in {c.value for c in Code}:
        return None
    hint = "resubmit with a smaller gang, another flavor, or to a queue with more quota"
    return {"code": code, "message": message, "hint": hint, "rank": 1}
