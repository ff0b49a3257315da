"""Heterogeneity-aware scheduling: the `hetero` profile's policies.

A periodic allocation solve (`HeteroAllocator.solve`, the LP in hetero_lp.py) turns a snapshot
into `Targets`: per cluster queue and flavor, the GPUs the queue should hold, and per (queue,
kind) the share of each flavor. The driver calls the solve every `interval_s` and hands the
result to each cycle in `Snapshot.targets`; the cycle then places gangs to meet them:

- `TargetFlavorOrder`: each job tries first the flavors its class was given, the one where its
  queue is furthest below target first, then the rest fastest first;
- `TargetShareCheck`: a queue may start a gang on a flavor while it is under its target there,
  or on capacity no other waiting queue is owed (so the fleet stays work-conserving);
- `EqFairShare`: priority classes first, then the queue with the lowest share of its
  entitlement counted in H100-equivalents, so that a GPU of Dojo and one of GB200 weigh what
  they are worth to the queue's work.

All of it is pure: every function reads the snapshot and returns values.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from cortex.fleet.power import PowerModel
from cortex.fleet.topology import alloc_size
from cortex.power.cooling import CoolingModel
from cortex.scheduler import hetero_lp
from cortex.scheduler.preemption import protected
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

# The kind whose speeds stand for a queue's work before any solve has seen its jobs.
DEFAULT_KIND = "generic"


# (queue, kind, acceptable flavors, packing): packing is, per flavor, the share of the GPUs a
# gang holds that it uses (a 32-GPU gang on 25-chip Dojo nodes holds 50: 0.64).
ClassKey = tuple[int, str, tuple[int, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Targets:
    """One solve's result. Indexed [queue][flavor] unless said otherwise."""

    solved_at_s: float
    queue_gpus: tuple[tuple[float, ...], ...]
    class_share: dict[tuple[int, str], tuple[float, ...]]  # (queue, kind) -> share per flavor
    queue_speed: tuple[tuple[float, ...], ...]  # demand-weighted H100-eq per GPU
    entitlement_eq: tuple[float, ...]  # per queue
    throughput_eq: tuple[float, ...]  # per queue, as allocated
    fair_level: float  # the lowest queue's throughput over its entitlement (1.0: none has one)
    total_eq: float
    classes: int
    # GPUs each queue's pending jobs asked for at the solve, counting only classes the solve
    # gave some of the flavor: the most of its room under target the queue can be owed there.
    waiting_gpus: tuple[tuple[float, ...], ...] = ()
    # Per class (queue, kind, acceptable flavors): the share of each flavor. A queue's big runs
    # and its small jobs of one kind are two classes; the solve may send them to different
    # flavors (big runs to GB200, small ones to Dojo).
    share_by_class: dict[ClassKey, tuple[float, ...]] = field(default_factory=dict)


@functools.lru_cache(maxsize=4096)
def packing(gang: int, gpn: tuple[int, ...]) -> tuple[float, ...]:
    """Per flavor, the share of the GPUs a gang of `gang` holds that it uses: a gang over one
    node takes whole nodes, so on Dojo's 25-chip nodes a 32-GPU gang holds 50 (0.64)."""
    return tuple(round(gang / alloc_size(gang, g), 1) for g in gpn)


def class_key(job: Job, gpn: list[int]) -> ClassKey:
    """The job's class: (queue, kind, acceptable flavors, packing)."""
    return (
        job.queue_idx,
        job.kind,
        job.flavor_ids or tuple(range(len(gpn))),
        packing(job.gpus, tuple(gpn)),
    )


def demand_classes(
    snap: Snapshot, by_packing: bool = True
) -> tuple[dict[ClassKey, float], dict[ClassKey, float], dict[ClassKey, float]]:
    """Per class: GPUs wanted (running jobs hold theirs, pending jobs ask for their gang), the
    pending part alone, and the work wanted in H100-eq per second: a running job's gang at its
    speed where it runs, a pending job's at its speed on the fastest flavor it accepts (so on
    that flavor the work is its gang, as in GPUs; on a slower one it needs more GPUs).
    Without `by_packing` every class's packing is 1 (gangs of all sizes in one class)."""
    gpn = snap.state.gpn
    n_f = len(gpn)
    speed = snap.speed
    # Jobs are tallied by their raw traits first (one dict update each: 50,000 jobs), then each
    # distinct set of traits is turned into its class once.
    run: dict[tuple[int, str, tuple[int, ...], int, int], list[float]] = {}
    for job in snap.state.running.values():
        raw = (job.queue_idx, job.kind, job.flavor_ids, job.gpus, job.run_flavor)
        got = run.get(raw)
        if got is None:
            run[raw] = [1.0, job.alloc_gpus]
        else:
            got[0] += 1.0
            got[1] += job.alloc_gpus
    wait: dict[tuple[int, str, tuple[int, ...], int], int] = {}
    for lst in snap.pending.lists:
        for _, job in lst:
            raw2 = (job.queue_idx, job.kind, job.flavor_ids, job.gpus)
            wait[raw2] = wait.get(raw2, 0) + 1
    out: dict[ClassKey, float] = {}
    work: dict[ClassKey, float] = {}
    waiting: dict[ClassKey, float] = {}
    every = tuple(range(n_f))
    gpn_t = tuple(gpn)
    ones = (1.0,) * n_f
    for (q, kind, ids, gang, f), (n, held) in run.items():
        key = (q, kind, ids or every, packing(gang, gpn_t) if by_packing else ones)
        out[key] = out.get(key, 0.0) + held
        work[key] = work.get(key, 0.0) + n * gang * speed(kind, f)
    for (q, kind, ids, gang), m in wait.items():
        allowed = ids or every
        key = (q, kind, allowed, packing(gang, gpn_t) if by_packing else ones)
        out[key] = out.get(key, 0.0) + m * gang
        waiting[key] = waiting.get(key, 0.0) + m * gang
        top = max(speed(kind, f) for f in allowed)
        work[key] = work.get(key, 0.0) + m * gang * top
    return out, waiting, work


def power_rows(snap: Snapshot, kinds: list[str]) -> tuple[np.ndarray, float]:
    """Incremental IT watts per busy GPU [kind, flavor] and the site's watts over idle.

    With a PowerView (a power policy runs) its per-kind draw and budget are used; otherwise
    the catalog's measured training draw and the site cap turned into IT watts by the one
    facility model (`CoolingModel.it_budget_w` at the design temperature, as the power books
    do), less what every GPU idle and every node's overhead draw (down nodes keep their idle
    budget, as in the books, so a repair never pushes the site over)."""
    st = snap.state
    n_f = len(st.gpn)
    view = snap.power
    if view is not None:
        w = np.array([[view.draw_w(k, f) - view.idle_w[f] for f in range(n_f)] for k in kinds])
        return np.maximum(w.reshape(len(kinds), n_f), 0.0), view.site_budget_w
    topo = st.topo
    busy = np.array([a.busy_w - a.idle_w for a in topo.accelerators])
    w = np.tile(np.maximum(busy, 0.0), (len(kinds), 1))
    site = topo.spec.site
    if site.power_cap_mw is None:
        return w, math.inf
    pm = PowerModel.for_topology(topo)
    gpus = topo.flavor_gpus()
    cooling = CoolingModel.for_pue(site.pue)
    it_w = cooling.it_budget_w(site.power_cap_mw * 1e6, pm.peak_it_w(gpus), cooling.design_temp_c)
    idle_w = sum(i * g for i, g in zip(pm.idle_w, gpus, strict=True)) + sum(pm.flavor_overhead_w)
    return w, it_w - idle_w


def guarded_flavors(snap: Snapshot) -> np.ndarray:
    """[queue, flavor]: whether another queue has jobs of the top priority class (running or
    waiting) that accept the flavor. No target holds those back (`TargetShareCheck`), so
    there a queue's share must be a floor the solve keeps and reclaim enforces; elsewhere the
    targets and the gate hold every class, and queues may trade flavors (Gavel's swaps)."""
    st = snap.state
    n_q, n_f = len(st.queues.queues), len(st.gpn)
    top = max(st.queues.priority_classes.values(), default=0)
    seen = {(j.queue_idx, j.flavor_ids) for j in st.running.values() if j.priority >= top}
    for lst in snap.pending.lists:
        seen.update((j.queue_idx, j.flavor_ids) for _, j in lst if j.priority >= top)
    by_queue = np.zeros((n_q, n_f), dtype=bool)
    for q, ids in seen:
        by_queue[q, list(ids or range(n_f))] = True
    # Guarded for q where any OTHER queue has such jobs.
    others = by_queue.sum(axis=0)[None, :] - by_queue
    return others > 0


@dataclass(frozen=True)
class HeteroAllocator:
    """The periodic solve. `interval_s`: how often a driver should call `solve`;
    `fairness`: each queue's floor as a fraction of its entitlement (hetero_lp.py)."""

    interval_s: float = 1800.0
    fairness: float = 0.95
    # Per-class planning (docs/hetero.md, measured in bench/RESULTS.md section 53; off in the
    # `hetero` profile, on in `hetero-class`): demand counted as work (H100-eq per second)
    # rather than GPUs, classes split by gang packing, per-class shares for the cycle, and the
    # LP's tie-break toward the plan holding fewest GPUs.
    per_class: bool = False
    # A queue's nominal quota as a guarantee (hetero_lp.LpInput.guarded): on each flavor that
    # another queue's top-class jobs accept, targets at least what the queue's entitlement plan
    # holds there (bench/RESULTS.md section 65).
    guarantee: bool = True

    def solve(self, snap: Snapshot) -> Targets:
        """Targets for this snapshot: pure, no clock (`solved_at_s` is the snapshot's time)."""
        st = snap.state
        queues = st.queues.queues
        n_q, n_f = len(queues), len(st.gpn)
        demand, waiting, work = demand_classes(snap, self.per_class)
        keys = sorted(demand)
        kinds = sorted({k for _, k, _, _ in keys})
        kind_idx = {k: i for i, k in enumerate(kinds)}
        speed = np.zeros((len(keys), n_f))
        for c, (_, kind, allowed, pack) in enumerate(keys):
            for f in allowed:
                # H100-eq per GPU held: a gang that leaves part of its nodes idle earns less.
                speed[c, f] = snap.speed(kind, f) * pack[f]
        watts_k, budget = power_rows(snap, kinds)
        watts = watts_k[[kind_idx[k] for _, k, _, _ in keys]] if keys else np.zeros((0, n_f))
        nominal = np.array([q.nominal for q in queues], dtype=float).reshape(n_q, n_f)
        limit = np.array(
            [[math.inf if b is None else b for b in q.borrowing_limit] for q in queues]
        ).reshape(n_q, n_f)
        res = hetero_lp.solve(
            hetero_lp.LpInput(
                class_queue=np.array([q for q, _, _, _ in keys], dtype=np.int64),
                demand_gpus=np.array([demand[k] for k in keys], dtype=float),
                speed=speed,
                capacity_gpus=np.array(st.up_gpus, dtype=float),
                nominal_gpus=nominal,
                max_gpus=nominal + limit,
                watts=watts,
                power_budget_w=budget,
                fairness=self.fairness,
                demand_eq=np.array([work[k] for k in keys]) if self.per_class else None,
                tie_break=hetero_lp.TIE_BREAK if self.per_class else 0.0,
                guarded=guarded_flavors(snap) if self.guarantee else None,
            )
        )
        return _targets(snap, keys, res, [waiting.get(k, 0.0) for k in keys], self.per_class)


def _targets(
    snap: Snapshot,
    keys: list[ClassKey],
    res: hetero_lp.LpResult,
    waiting: list[float],
    per_class: bool,
) -> Targets:
    st = snap.state
    n_q, n_f = len(st.queues.queues), len(st.gpn)
    qg = np.zeros((n_q, n_f))
    eq = np.zeros((n_q, n_f))
    wait = np.zeros((n_q, n_f))
    by_kind: dict[tuple[int, str], np.ndarray] = {}
    for c, (q, kind, _, pack) in enumerate(keys):
        x = res.gpus[c]
        qg[q] += x
        wait[q] += np.where(x > 0, waiting[c], 0.0)
        eq[q] += x * np.array([snap.speed(kind, f) * pack[f] for f in range(n_f)])
        by_kind[(q, kind)] = by_kind.get((q, kind), np.zeros(n_f)) + x
    generic = [snap.speed(DEFAULT_KIND, f) for f in range(n_f)]
    qspeed = [
        tuple(float(eq[q, f] / qg[q, f]) if qg[q, f] > 0 else generic[f] for f in range(n_f))
        for q in range(n_q)
    ]
    norm = res.normalized()
    share = {key: tuple(float(v) for v in x / x.sum()) for key, x in by_kind.items() if x.sum() > 0}
    by_class = {
        key: tuple(float(v) for v in x / x.sum())
        for key, x in zip(keys, res.gpus, strict=True)
        if per_class and x.sum() > 0
    }
    return Targets(
        solved_at_s=snap.now_s,
        queue_gpus=tuple(tuple(float(v) for v in row) for row in qg),
        class_share=share,
        queue_speed=tuple(qspeed),
        entitlement_eq=tuple(float(v) for v in res.entitlement_eq),
        throughput_eq=tuple(float(v) for v in res.throughput_eq),
        fair_level=float(np.nanmin(norm)) if np.any(np.isfinite(norm)) else 1.0,
        total_eq=res.total_eq,
        classes=len(keys),
        waiting_gpus=tuple(tuple(float(v) for v in row) for row in wait),
        share_by_class=by_class,
    )


class TargetFlavorOrder:
    """Per job, the order to try flavors in: first those its (queue, kind) class was given and
    its queue holds less than its target of, then the rest; fastest first within each group.
    Without targets (no solve yet, or a driver that never solves): fastest first."""

    name = "target"

    def flavors(self, snap: Snapshot, job: Job) -> tuple[int, ...]:
        allowed = job.flavor_ids or tuple(range(len(snap.state.gpn)))
        kind = job.kind
        t = snap.targets
        share = _class_share(t, job, snap.state.gpn) if t is not None else None
        if t is None or share is None:
            return tuple(sorted(allowed, key=lambda f: (-snap.speed(kind, f), f)))
        target = t.queue_gpus[job.queue_idx]
        used = snap.state.usage[job.queue_idx]

        def key(f: int) -> tuple[bool, float, int]:
            # Flavors the job's class was given and its queue is still short of first.
            return (share[f] <= 0 or used[f] >= target[f], -snap.speed(kind, f), f)

        return tuple(sorted(allowed, key=key))


class TargetShareCheck:
    """Keeps each queue near its target on each flavor. A start is admitted when the queue
    stays within half a gang of its target, or when the gang fits in free GPUs that no other
    waiting queue is owed (its target minus its usage); otherwise it waits. Jobs of the top
    priority class are not held back.

    Targets are per queue, though the LP sets them per (queue, kind): any kind of a queue may
    use the queue's room. Holding a kind off a flavor the solve gave it none of was measured
    (bench/RESULTS.md, hetero2): it cut research's work by a fifth and gained nothing.

    A queue is owed at most what its waiting jobs of the classes given the flavor asked for at
    the solve: room under a target that no waiting job of the queue can fill (its big runs
    wait for NVIDIA while its Dojo target is unfilled) is spare, not held idle."""

    name = "target-share"

    def check(self, snap: Snapshot, job: Job, flavor: int, alloc_gpus: int) -> Reason | None:
        t = snap.targets
        st = snap.state
        if t is None or job.priority >= max(st.queues.priority_classes.values(), default=0):
            # The top priority class is placed as `priority` places it: a fluid target must
            # not hold back a production gang (a 16k-GPU run is never near any target).
            return None
        q = job.queue_idx
        target = t.queue_gpus[q][flavor]
        used = st.usage[q][flavor]
        # Only with per-class shares (per_class); per (queue, kind) any kind may use its queue's
        # room (hetero2 measured keeping a kind off a flavor: it cost research a fifth).
        share = t.share_by_class.get(class_key(job, st.gpn)) if t.share_by_class else None
        given = share is None or share[flavor] > 0 or _slower_than_given(snap, job, share, flavor)
        if given and used + alloc_gpus / 2 <= target:
            return None
        owed = 0.0
        pending = snap.pending.lists
        for q2 in range(len(t.queue_gpus)):
            # A class the solve gave none of the flavor takes only what no waiting queue, its
            # own included, is owed there.
            if (q2 != q or not given) and pending[q2]:
                owed += _room(t, st.usage, q2, flavor)
        spare = st.free_gpus[flavor] - owed
        if alloc_gpus <= spare and _reclaims_elsewhere(snap, t, job, flavor) is None:
            return None
        return Reason(
            Code.OVER_TARGET,
            need=alloc_gpus,
            flavor=st.topo.flavors[flavor],
            queue=st.queues.queues[q].name,
            usage=used,
            target=round(target),
            spare=max(round(spare), 0),
        )


def _reclaims_elsewhere(snap: Snapshot, t: Targets, job: Job, flavor: int) -> int | None:
    """A flavor faster than `flavor` for the job where its queue is under its target, would
    stay within its nominal quota with the job, and other queues borrow what the job could take
    back (reclaim): the job does not spill onto spare GPUs of the slower flavor past its
    queue's target, it waits for the queue head's search there (Kueue's `whenCanPreempt:
    Preempt`). None when there is no such flavor.

    The hold is bounded, so that GPUs do not idle behind a reclaim that cannot happen: only
    while the free GPUs there plus what other queues borrow there in jobs that are not
    protected cover the job's allocation, and only while the job is not in backoff after a
    failed search. (A bound by the time waited against the run time the slower flavor costs
    cut cortex-2026's work by 7% on seed 0: bench/RESULTS.md section 65, after review.)"""
    st = snap.state
    q = job.queue_idx
    now = snap.now_s
    if now < job.next_preempt_try_s:
        return None
    speed = snap.speed
    here = speed(job.kind, flavor)
    usage = st.usage
    queues = st.queues.queues
    for g in job.flavor_ids or range(len(st.gpn)):
        if speed(job.kind, g) <= here:
            continue
        alloc = alloc_size(job.gpus, st.gpn[g])
        if not (
            usage[q][g] + alloc <= queues[q].nominal[g]
            and usage[q][g] + alloc / 2 <= t.queue_gpus[q][g]
        ):
            continue
        if _reclaimable(snap, g) + st.free_gpus[g] >= alloc:
            return g
    return None


def _reclaimable(snap: Snapshot, g: int) -> int:
    """GPUs that queues borrow on flavor g in jobs their queue does not protect: at most what a
    reclaim there can free. Queue q, within its nominal quota there (checked before), is not
    among them."""
    st = snap.state
    queues = st.queues.queues
    over = {
        o.index: usage - o.nominal[g]
        for o in queues
        if (usage := st.usage[o.index][g]) > o.nominal[g]
    }
    if not over:
        return 0
    loose = _loose_gpus(snap, g, over)
    return sum(min(over[o], loose.get(o, 0)) for o in over)


# One pass asks for the same sums many times: the last ones per state (weakly: a state that
# goes away takes them along), keyed by what they depend on (the instant, the flavor and every
# queue's usage there; an eviction in the pass changes the usage).
_LOOSE: weakref.WeakKeyDictionary[
    ClusterState, dict[tuple[float, int, tuple[int, ...]], dict[int, int]]
] = weakref.WeakKeyDictionary()


def _loose_gpus(snap: Snapshot, g: int, over: dict[int, int]) -> dict[int, int]:
    """GPUs per queue on flavor g in running jobs their queue does not protect, for the queues
    in `over` (those borrowing on g: a function of the usage in the cache key, so every call
    with one key asks for the same queues). Jobs on other flavors and of other queues are
    skipped before any lookup: on cortex-2026 this loop over every running job was 45% of a
    `hetero` run."""
    st = snap.state
    cache = _LOOSE.get(st)
    if cache is None:
        cache = _LOOSE[st] = {}
    key = (snap.now_s, g, tuple(u[g] for u in st.usage))
    got = cache.get(key)
    if got is not None:
        return got
    if len(cache) > 16:
        cache.clear()
    got = {}
    allocations = st.allocations
    for v in st.running.values():
        if v.run_flavor != g or v.queue_idx not in over:
            continue
        # A job evicted earlier in this pass has given its GPUs back (they count as free).
        alloc = allocations.get(v.id)
        if alloc is not None and not protected(snap, v):
            got[v.queue_idx] = got.get(v.queue_idx, 0) + alloc.gpus
    cache[key] = got
    return got


def _slower_than_given(snap: Snapshot, job: Job, share: tuple[float, ...], flavor: int) -> bool:
    """Whether `flavor` is slower for the job's kind than every flavor its class was given: a
    fall-back the queue's own targets may admit (it costs this class, not a class the solve
    sent there)."""
    speed = snap.speed
    s = speed(job.kind, flavor)
    return all(s < speed(job.kind, f) for f, x in enumerate(share) if x > 0)


def _class_share(t: Targets, job: Job, gpn: list[int]) -> tuple[float, ...] | None:
    """The share of each flavor the solve gave the job's class (None: a class it has not seen)."""
    share = t.share_by_class.get(class_key(job, gpn)) if t.share_by_class else None
    return share if share is not None else t.class_share.get((job.queue_idx, job.kind))


def _room(t: Targets, usage: list[list[int]], q: int, f: int) -> float:
    """What queue q can be owed on flavor f: its room under target, at most what its waiting
    jobs of the classes given f asked for at the solve (all of the room without that figure)."""
    room = max(t.queue_gpus[q][f] - usage[q][f], 0.0)
    return min(room, t.waiting_gpus[q][f]) if t.waiting_gpus else room


class EqFairShare:
    """Priority class first; between queues, the lowest weighted share of entitlement in
    H100-equivalents (usage x the queue's speed per flavor) goes next, recomputed after
    every tentative start; within a queue, arrival order."""

    name = "eq-fair-share"

    def key(self, job: Job) -> tuple:
        return (-job.priority, job.submit_s, job.id)

    def order(self, snap: Snapshot) -> Iterator[Job]:
        st = snap.state
        queues = st.queues.queues
        n_f = len(st.gpn)
        t = snap.targets
        if t is not None:
            speed = [list(row) for row in t.queue_speed]
        else:
            generic = [snap.speed(DEFAULT_KIND, f) for f in range(n_f)]
            speed = [generic for _ in queues]
        ent = [
            max(sum(q.nominal[f] * speed[i][f] for f in range(n_f)), 1e-9) * q.weight
            for i, q in enumerate(queues)
        ]
        lists = snap.pending.lists
        iters = [iter(lst) for lst in lists]
        heads: list[tuple | None] = [next(it, None) for it in iters]
        usage = st.usage
        version = st.usage_version
        shares = [0.0] * len(heads)
        seen = [-1] * len(heads)
        while True:
            cands = []
            for i, head in enumerate(heads):
                if head is None:
                    continue
                if seen[i] != version[i]:
                    u = usage[i]
                    shares[i] = sum(u[f] * speed[i][f] for f in range(n_f)) / ent[i]
                    seen[i] = version[i]
                cands.append((head[0][0], shares[i], head[0], i))
            if not cands:
                return
            *_, bi = min(cands)
            head = heads[bi]
            assert head is not None
            heads[bi] = next(iters[bi], None)
            yield head[1]
