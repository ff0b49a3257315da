"""The scheduling cycle: one pure function, `schedule(snapshot, policies) -> Plan`.

Both drivers call it: the twin on simulated events, the control plane on real ones. It reads no
clock, does no I/O and draws no random numbers; tentative moves go through a Statement that is
rolled back before it returns, so the state is unchanged and the driver applies the Plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cortex.scheduler.admission import AdmissionCheck, QuotaCheck
from cortex.scheduler.evict_place import try_preempt as _try_preempt
from cortex.scheduler.ordering import OrderingPolicy, PriorityFairShare
from cortex.scheduler.placement import PlacementPolicy, TopologyBestFit, alloc_size
from cortex.scheduler.power import PowerPolicy, PowerView, Watts
from cortex.scheduler.preemption import PreemptionPolicy, PriorityReclaim
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.shadow import PASSES, Reservation, blocked_judge, first_blocked
from cortex.scheduler.shadow import power_blocks as _power_blocks
from cortex.scheduler.shadow import shadow as _shadow
from cortex.scheduler.snapshot import Plan, Preemption, Snapshot, Start
from cortex.scheduler.state import ClusterState, Placement
from cortex.scheduler.statement import Statement
from cortex.workload.job import Job


class FlavorOrder(Protocol):
    """The flavors a job tries, in order (default: its own list, else the fleet's order)."""

    def flavors(self, snap: Snapshot, job: Job) -> Sequence[int]: ...


class Allocator(Protocol):
    """A periodic solve that drivers run every `interval_s` and pass to cycles in
    `Snapshot.targets` (scheduler/hetero.py)."""

    @property
    def interval_s(self) -> float: ...

    def solve(self, snap: Snapshot) -> Any: ...


@dataclass(frozen=True)
class Policies:
    """The policies of one profile. `max_examined` bounds the jobs a cycle looks at (Slurm's
    bf_max_job_test); `max_preemption_tries` bounds victim searches per cycle."""

    ordering: OrderingPolicy = field(default_factory=PriorityFairShare)
    admission: tuple[AdmissionCheck, ...] = (QuotaCheck(),)
    placement: PlacementPolicy = field(default_factory=TopologyBestFit)
    preemption: PreemptionPolicy = field(default_factory=PriorityReclaim)
    power: PowerPolicy | None = None  # used when the snapshot carries a PowerView
    backfill: bool = True
    flavor_order: FlavorOrder | None = None
    allocator: Allocator | None = None
    max_examined: int = 512
    max_preemption_tries: int = 2
    # A head blocked on several flavors reserves only the one where it starts first (deep
    # passes; `_Cycle.reserve`). Off: it reserves every flavor it is short on.
    reserve_earliest: bool = False


# A lean pass (explain=False) counts each blocked job by its first reason's code and reads the
# numbers of power reasons only (`power_blocks`): its capacity reasons are these two, built once
# (~45k built with their numbers in ten days of cortex-2024; RESULTS.md section 125).
_LEAN_INSUFFICIENT = Reason(Code.INSUFFICIENT_CAPACITY)
_LEAN_TOPOLOGY = Reason(Code.TOPOLOGY_UNAVAILABLE)


def _capacity_reason(st: ClusterState, f: int, need: int, lean: bool = False) -> Reason:
    free = st.free_gpus[f]
    if lean:
        return _LEAN_INSUFFICIENT if free < need else _LEAN_TOPOLOGY
    name = st.topo.flavors[f]
    if free < need:
        return Reason(Code.INSUFFICIENT_CAPACITY, need=need, flavor=name, free=free)
    largest = st.largest_free_pod_gpus(f) if need > st.gpn[f] else st.largest_free_node_gpus(f)
    return Reason(
        Code.TOPOLOGY_UNAVAILABLE,
        need=need,
        flavor=name,
        free=free,
        largest_block=largest,
        block="pod" if need > st.gpn[f] else "node",
    )


def _ramp_refuses(
    power: PowerPolicy, view: PowerView | None, room: Watts | None, job: Job, f: int
) -> bool:
    assert view is not None and room is not None
    return power.ramp_refuses(view, room, job, f, job.gpus)


class _Cycle:
    """The working set of one cycle: the statement, the plan and the reservations."""

    __slots__ = (
        "capacity_reasons",
        "deep",
        "every_flavor",
        "lean",
        "no_fit",
        "plan",
        "pol",
        "reserved",
        "snap",
        "st",
        "stmt",
        "tries",
        "watts_short",
    )

    def __init__(self, snap: Snapshot, pol: Policies, deep: bool, explain: bool = True) -> None:
        self.snap = snap
        self.pol = pol
        self.deep = deep
        self.lean = not explain
        self.st = snap.state
        self.stmt = Statement(snap.state, snap.power if pol.power is not None else None)
        self.plan = Plan()
        self.reserved: dict[int, Reservation] = {}
        self.tries = pol.max_preemption_tries
        self.every_flavor = tuple(range(len(snap.state.gpn)))
        self.capacity_reasons: dict[tuple[int, int, int], Reason] = {}
        # What placement said for (flavor, gang), and at which state version: behind a blocked
        # head, many jobs of one size ask again on a state nothing has changed since.
        self.no_fit: dict[tuple[int, int], tuple[int, Reason]] = {}
        # Set by try_flavor where it may have given a power reason (a refusal on watts, or any
        # admission check's), cleared by the walk when it reads it: a job whose reasons hold
        # none cannot stop the pass on watts (power_blocks), so the walk asks only after a set.
        self.watts_short = False

    def capacity_reason(self, f: int, alloc: int) -> Reason:
        """Shared by every job of this size while the free count stays the same."""
        key = (f, alloc, self.st.free_gpus[f])
        r = self.capacity_reasons.get(key)
        if r is None:
            r = self.capacity_reasons[key] = _capacity_reason(self.st, f, alloc, self.lean)
        return r

    def reserved_reason(self, f: int, res: Reservation) -> Reason:
        """Shared by every job the reservation holds back."""
        if res.reason is None:
            res.reason = Reason(
                Code.RESERVED_FOR_HEAD,
                head=res.head,
                shadow_s=res.shadow_s,
                flavor=self.st.topo.flavors[f],
            )
        return res.reason

    def exact_capacity_reason(self, f: int, alloc: int) -> Reason:
        """_capacity_reason, computed once per state version."""
        key = (f, -alloc)  # negative: never the key of a placement (gang >= 1) below
        v = self.st.version
        got = self.no_fit.get(key)
        if got is not None and got[0] == v:
            return got[1]
        r = _capacity_reason(self.st, f, alloc, self.lean)
        self.no_fit[key] = (v, r)
        return r

    def place(self, f: int, gang: int, alloc: int) -> Placement | Reason:
        """The placement policy's answer, or the capacity reason it failed with. A failure is
        remembered with the state version: placement is a pure function of the state."""
        st = self.st
        v = st.version
        got = self.no_fit.get((f, gang))
        if got is not None and got[0] == v:
            return got[1]
        policy = self.pol.placement
        placed = st.placed  # what power admission refused at this version (keep_refused)
        if placed[0] == v and placed[1] is policy:
            hit = placed[2].get((f, gang))
            if hit is not None:
                return hit
        placement = policy.place(st, f, gang)
        if placement is not None:
            return placement
        r = self.exact_capacity_reason(f, alloc)
        self.no_fit[(f, gang)] = (v, r)
        return r

    def keep_refused(self, f: int, gang: int, placement: Placement) -> None:
        """A gang of several nodes that power admission refused (the ramp window) is placed
        again, the same way, at each pass until the state moves: its placement is kept with the
        state version and the policy (`place` reads it; a start bumps the version, so a kept
        placement was never taken). Only refusals are kept: a placement that is started needs
        no keeping, and the default month (no power policy) pays the read alone."""
        st = self.st
        v = st.version
        policy = self.pol.placement
        placed = st.placed
        if placed[0] != v or placed[1] is not policy:
            placed = st.placed = (v, policy, {})
        placed[2][(f, gang)] = placement

    def try_flavor(
        self, job: Job, f: int, gang: int, reasons: list[Reason], short: list[int]
    ) -> bool:
        """Admit, guard the reservation and place `job` on flavor f with a gang of `gang`."""
        st = self.st
        snap = self.snap
        g = st.gpn[f]
        alloc = gang if gang <= g else -(-gang // g) * g  # alloc_size, inlined: hot
        free = st.free_gpus[f]
        res = self.reserved.get(f)
        if res is not None and alloc > free:
            # Fast path behind a blocked head: too few GPUs whatever else holds. The reason is
            # shared by every job of this size while the free count stays the same (by every
            # job in a lean pass).
            reasons.append(_LEAN_INSUFFICIENT if self.lean else self.capacity_reason(f, alloc))
            return False
        # 2. Backfill guard: a job may pass the head reserved on this flavor only if it ends
        #    before the head's start, or fits in what the head leaves over. Checked before
        #    admission because it is what stops most jobs behind a head, and cheaper.
        use_extra = False
        if res is not None and snap.now_s + snap.estimate_s(job, f, gang) > res.shadow_s:
            if alloc > res.extra_gpus:
                reasons.append(res.reason or self.reserved_reason(f, res))
                return False
            use_extra = True
        # 3. Admission checks (quota, later power).
        for check in self.pol.admission:
            r = check.check(snap, job, f, alloc)
            if r is not None:
                reasons.append(r)
                self.watts_short = True
                return False
        if alloc > free:
            reasons.append(
                _LEAN_INSUFFICIENT if self.lean else self.exact_capacity_reason(f, alloc)
            )
            if f not in short:
                short.append(f)
            return False
        # 4. A cheap power bound first: placement is the expensive step, and under a binding
        #    power budget most jobs fail on watts, not GPUs.
        #    The bound is read here without the call (with the driver's floor memo); a refusal's
        #    reason comes from the view's floor_short, given the increment read here (without
        #    numbers in a lean pass where they fit), as lower_bound_reason would give it.
        view = snap.power
        power = self.pol.power if view is not None else None
        room = self.stmt.watts
        if power is not None:
            assert view is not None and room is not None
            fw = view.floor_gpu_w
            if fw is None:
                r = view.lower_bound_reason(room, job, f, gang, self.lean)
                if r is not None:
                    reasons.append(r)
                    self.watts_short = True
                    return False
            else:
                inc = gang * fw(job.kind, f)
                if inc > room.site_w:  # the bound's refusal, from the increment it read
                    reasons.append(view.floor_short(room, inc, self.lean))
                    self.watts_short = True
                    return False
        # 5. Placement, all or nothing.
        placement = self.place(f, gang, alloc)
        if isinstance(placement, Reason):
            reasons.append(placement)
            if f not in short:
                short.append(f)
            return False
        # 6. Power: the projected draw must fit the site, hall and ramp budgets (maybe capped).
        cap_level = 0
        shape = None
        if power is not None:
            assert view is not None and room is not None
            got = power.admit(view, room, job, f, gang, placement)
            if isinstance(got, Reason):
                if gang > g:
                    self.keep_refused(f, gang, placement)
                reasons.append(got)
                self.watts_short = True
                return False
            self.stmt.spend_w(got.inc_w, got.halls_w)
            cap_level, shape = got.level, got.shape
        held = self.stmt.allocate(job, f, placement)
        if use_extra and res is not None:
            res.extra_gpus -= held
        self.plan.starts.append(Start(job, f, placement, gang, held, cap_level, shape))
        return True

    def try_preempt(self, job: Job, short: list[int]) -> bool:
        """5. Preemption (deep passes only): victims are computed on the statement and acted on
        by the driver. A job whose search failed waits for its backoff (set by the driver)."""
        if not (self.deep and self.tries > 0 and self.snap.now_s >= job.next_preempt_try_s):
            return False
        # Only heads preempt (Kueue nominates queue heads): a flavor that a job ahead of this one
        # already waits for is not this job's to take.
        short = [f for f in short if f not in self.reserved]
        if not short:
            return False
        self.stmt.keep_order = True  # evictions may follow: every move must be undoable
        searched = False
        # The statement holds watts only when a power policy runs with the driver's view
        # (__init__), so `room` decides whether power is in play; `view` is then set.
        view = self.snap.power
        room = self.stmt.watts
        if view is not None and room is not None and room.ramp_w < view.ramp_limit_w:
            # The ramp window is partly spent: a preemptor that would not fit in what is left
            # would evict its victims for nothing (the search is the costly part of a pass).
            need = min(view.floor_inc_w(job, f, job.gpus) for f in short)
            if need > room.ramp_w:
                return False
        power = self.pol.power if view is not None and room is not None else None
        for f in short:
            if power is not None and _ramp_refuses(power, view, room, job, f):
                # Whatever the search found, admission would undo it: it counts as a search
                # that ran (when the policy allows one here) without running it.
                alloc = alloc_size(job.gpus, self.st.gpn[f])
                searched = searched or self.pol.preemption.may_preempt(self.snap, job, f, alloc)
                continue
            mark = self.stmt.mark()
            got = _try_preempt(self.snap, self.pol, self.stmt, job, f, job.gpus)
            if isinstance(got, bool):
                searched = searched or got
                continue
            placement, victims = got
            cap_level = 0
            shape = None
            if power is not None:
                assert view is not None and room is not None
                # The victims' watts come back with their GPUs.
                credit = room.credit(view, victims)
                grant = power.admit(view, room, job, f, job.gpus, placement, credit)
                if isinstance(grant, Reason):
                    self.stmt.rollback(mark)
                    searched = True
                    continue
                self.stmt.spend_w(grant.inc_w, grant.halls_w)
                self.stmt.credit_w(victims, credit)
                cap_level, shape = grant.level, grant.shape
            self.tries -= 1  # one search, one try (a refused one counts below, once)
            held = self.stmt.allocate(job, f, placement)
            self.plan.starts.append(Start(job, f, placement, job.gpus, held, cap_level, shape))
            why = self.pol.preemption.name
            self.plan.preemptions.extend(
                Preemption(v, Reason(Code.PREEMPTED, by=job.id, why=why)) for v in victims
            )
            return True
        if searched:
            # Only a search that ran counts against this cycle's tries and backs the job off.
            self.tries -= 1
            self.plan.preempt_failed.append(job.id)
        return False

    def reserve(self, job: Job, short: list[int]) -> None:
        """6. The first job blocked by capacity on a flavor reserves it (EASY backfill); in a
        quick pass, or with backfill off, nothing may pass it. With `reserve_earliest` a deep
        pass reserves only the flavor where the reservation's shadow (a count walk, cut at
        SHADOW_WALK_MAX ends: a heuristic, not an exact earliest start; docs/hetero.md) is
        earliest, the first in flavor order on a tie; the rest stay open to the jobs behind it
        (bench/RESULTS.md sections 79, 84)."""
        deep = self.pol.backfill and self.deep
        got: list[tuple[float, int, int]] = []
        for f in short:
            if f in self.reserved:
                continue
            need = alloc_size(job.gpus, self.st.gpn[f])
            if deep:
                shadow, extra = _shadow(self.st, self.stmt, f, need, self.snap.now_s)
            else:
                shadow, extra = self.snap.now_s, 0
            got.append((shadow, f, extra))
        if self.pol.reserve_earliest and deep and len(got) > 1:
            got = [min(got, key=lambda x: x[0])]  # min keeps the first of equal shadows
        for shadow, f, extra in got:
            self.reserved[f] = Reservation(job.id, shadow, extra)


def schedule(
    snap: Snapshot, pol: Policies, *, deep: bool = True, commit: bool = False, explain: bool = True
) -> Plan:
    """One cycle: order the pending jobs, admit, place, preempt, backfill; explain the rest.

    A quick pass (`deep=False`, Slurm's main scheduler) stops once every flavor has a blocked
    head and lets nothing past it; a deep pass (Slurm's backfill) walks up to `max_examined`
    jobs and backfills those that do not delay the heads. Drivers run quick passes on events and
    deep passes at an interval, or deep passes only when the queue is short.

    The state is left as it was, unless `commit` is set and the statement's log is what the
    driver does with the plan, in its order (Statement.hand_over): then the starts' GPUs stay
    taken, the victims' given, and `plan.committed` says so; the driver records the runs
    (`ClusterState.adopt`, and `stop` of a victim in `state.given`) without taking them again.
    Undoing and redoing the same moves leaves every index exactly as committing them does.

    `explain=False` (the twin, which counts blockers by their first reason's code): a job that
    needs more GPUs than any flavor has free once every flavor has a reserved head is counted
    in `plan.capacity_blocked` and left out of `plan.blockers`; every decision is the same."""
    if snap.state.order_lost:
        raise RuntimeError(
            "the cluster state's index order was lost by a pass that failed without saving it"
            " (schedule with commit=True raised): placement ties would differ; rebuild the state"
        )
    c = _Cycle(snap, pol, deep, explain)
    c.plan.explained = explain
    if commit and (not deep or len(snap.pending) == 1):
        # This pass commits whatever it starts: a quick pass never evicts, and a lone job that
        # starts leaves nothing behind it that could (try_preempt turns the saves back on
        # before it evicts). So its starts save no key orders for a rollback.
        c.stmt.keep_order = False
    try:
        _walk(c, snap, pol, deep, explain)
    except BaseException:
        c.stmt.rollback()
        # The rollback restores every count and member, but without the saves not the order
        # of the indices that placement breaks ties by: the next pass would place differently
        # from a state that never saw this one. Say so to whoever schedules on it next.
        if c.stmt.order_unsaved:
            snap.state.order_lost = True
        raise
    plan = c.plan
    if c.stmt.watts is not None:
        plan.power_headroom_w = c.stmt.watts.site_w
    # Tries untouched means allocations only (every search spends one); else the moves are
    # kept where they are the driver's own, in its order (Statement.hand_over).
    if commit and c.stmt.hand_over(plan, c.tries == pol.max_preemption_tries):
        plan.committed = True
    else:
        # 7. Leave the state as it was; the driver applies the plan.
        c.stmt.rollback()
        if c.stmt.order_unsaved:  # never, by the rule above; if it were, the order is lost
            snap.state.order_lost = True
    return plan


def _skip(c: _Cycle, send: Any, req: list, judged: list[int], top: int, left: int) -> Job | None:
    """Send the order a skip request (scheduler/ordering.py; the walk sends them only without
    `explain`); the job it answers with, or None at its end. A deep pass walks on behind
    blocked heads (a quick one stops): its order may pass over what `first_blocked` stops too."""
    if c.deep:
        if len(req) == 3:
            order = c.pol.flavor_order
            codes = c.plan.first_codes
            req.extend(blocked_judge(c.snap, order, c.every_flavor, c.reserved, codes, judged))
        elif req[4] is not None:
            req[4]()  # the judge reads the free counts and extras again (shadow.blocked_judge)
    req[0], req[1], req[2] = top, left, 0
    judged[0] = 0
    try:
        job: Job = send(req)
    except StopIteration:
        return None
    return job


def _walk(c: _Cycle, snap: Snapshot, pol: Policies, deep: bool, explain: bool = True) -> None:
    """Steps 1-6 over the pending jobs, into c.plan, with tentative moves on c.stmt."""
    plan = c.plan
    st = c.st
    free = st.free_gpus
    gpn = st.gpn
    n_flavors = len(free)
    reserved = c.reserved
    blockers = plan.blockers
    first_codes = plan.first_codes
    every_flavor = c.every_flavor
    max_examined = pol.max_examined
    try_flavor = c.try_flavor
    capacity_reason = c.capacity_reason
    capacity_reasons = c.capacity_reasons
    short_of_gpus = _LEAN_INSUFFICIENT if c.lean else None  # a lean pass's, for every job
    estimate_s = snap.estimate_s
    now = snap.now_s
    flavor_order = pol.flavor_order
    # Free GPUs and reservations are read again only after a job that went past the fast path
    # below: only such a job moves them, and a deep pass walks hundreds of jobs blocked behind
    # reserved heads. The counters are locals, written back however the walk ends.
    any_free = True
    top_free = 0
    all_reserved = False
    moved = True
    examined = capacity_blocked = 0
    # 1. Walk pending jobs in the ordering policy's order. A generator may be sent a skip request
    # over jobs only counted (ordering.py, "Skip requests"); the job it answers is walked next.
    order = iter(pol.ordering.order(snap))
    send = getattr(order, "send", None)
    req: list = [0, 0, 0]
    ahead: Job | None = None
    judged = [0]  # jobs the order passed over on the judge's word (counted by their codes)
    try:
        while True:
            if ahead is None:
                job = next(order, None)
                if job is None:
                    break
            else:
                job, ahead = ahead, None
            if moved:
                any_free = any(free)
                top_free = max(free)
                all_reserved = len(reserved) == n_flavors
                moved = False
            if examined >= max_examined:
                plan.rest_reason = Reason(Code.NOT_EXAMINED, why="examined limit reached")
                break
            if not any_free and (c.tries <= 0 or not deep):
                plan.rest_reason = Reason(Code.NOT_EXAMINED, why="no free GPUs left")
                break
            examined += 1
            gpus = job.gpus
            emin = job.elastic_min
            smallest = emin or gpus
            if all_reserved and smallest > top_free:
                # Every flavor waits for its head and this job needs more than any has free.
                if not explain:
                    capacity_blocked += 1  # counted, without the reason
                    if send is not None:
                        # Nothing moves while jobs are only counted: the order passes over
                        # the next ones wider than top_free (a deep pass: or judged), to the limit.
                        ahead = _skip(c, send, req, judged, top_free, max_examined - examined)
                        examined += req[2]
                        capacity_blocked += req[2] - judged[0]
                        if ahead is None:
                            break
                    continue
                f0 = (
                    job.flavor_ids or every_flavor
                    if flavor_order is None
                    else flavor_order.flavors(snap, job)
                )[0]
                blockers[job.id] = [capacity_reason(f0, alloc_size(smallest, gpn[f0]))]
                continue
            flavors: Sequence[int] = (
                job.flavor_ids or every_flavor
                if flavor_order is None
                else flavor_order.flavors(snap, job)
            )
            gangs = (gpus, emin) if emin is not None and emin < gpus else (gpus,)
            if all_reserved and not explain:
                # Every flavor waits for its head: the two checks inlined below stop the job
                # on each flavor and gang unless one passes, and then nothing moves. Only its
                # first reason's code is counted, so no reasons are built for it.
                first = first_blocked(job, flavors, gangs, free, gpn, reserved, estimate_s, now)
                if first is not PASSES:
                    if first is not None:
                        first_codes[first] = first_codes.get(first, 0) + 1
                    if not deep:
                        plan.rest_reason = Reason(Code.NOT_EXAMINED, why="behind blocked heads")
                        break
                    if send is not None:  # as above
                        ahead = _skip(c, send, req, judged, top_free, max_examined - examined)
                        examined += req[2]
                        capacity_blocked += req[2] - judged[0]
                        if ahead is None:
                            break
                    continue
            moved = True
            reasons: list[Reason] = []
            short: list[int] = []  # flavors where capacity or topology blocked it
            started = False
            for f in flavors:
                res = reserved.get(f)
                for gang in gangs:
                    if res is not None:
                        # try_flavor's first two checks, inlined: they stop most jobs behind a
                        # reserved head, and a pass walks hundreds of such jobs.
                        g = gpn[f]
                        alloc = gang if gang <= g else -(-gang // g) * g
                        if alloc > free[f]:
                            r = short_of_gpus or capacity_reasons.get((f, alloc, free[f]))
                            reasons.append(capacity_reason(f, alloc) if r is None else r)
                            continue
                        if alloc > res.extra_gpus and now + estimate_s(job, f, gang) > res.shadow_s:
                            reasons.append(res.reason or c.reserved_reason(f, res))
                            continue
                    if try_flavor(job, f, gang, reasons, short):
                        started = True
                        break
                if started:
                    break
            if started or (deep and short and c.try_preempt(job, short)):
                continue
            if explain:
                blockers[job.id] = reasons
            elif reasons:
                code = reasons[0].code
                first_codes[code] = first_codes.get(code, 0) + 1
            if short:
                c.reserve(job, short)
            if c.watts_short:
                c.watts_short = False
                if snap.power is not None and _power_blocks(snap, plan, job, reasons):
                    break
            if not deep and len(reserved) == n_flavors:
                plan.rest_reason = Reason(Code.NOT_EXAMINED, why="behind blocked heads")
                break
    finally:
        plan.examined += examined
        plan.capacity_blocked += capacity_blocked
