"""The digital twin: driver 1 of the scheduling cycle, on simulated time.

One loop: pop the next events, apply them through the transition table, and when the instant
is over, snapshot and call the same `schedule` the control plane calls, then apply the plan by
putting completions on the event heap (sim/engine.py: time, priority, sequence).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from cortex.compiled import mypyc_attr
from cortex.drive import intake, protection, run_estimate, runs
from cortex.drive.allocation import Allocation
from cortex.fleet.power import PowerModel
from cortex.fleet.topology import Topology
from cortex.power.cooling import CoolingModel
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.placement import alloc_size
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.registry import policies as build_policies
from cortex.scheduler.snapshot import Plan, Snapshot, Start
from cortex.scheduler.state import ClusterState, Placement
from cortex.sim.engine import (
    ARRIVAL,
    FAILURE,
    FINISH,
    JOBFAIL,
    POWER,
    POWER_PRIO,
    REPAIR,
    RETRY,
    STAGGER,
    TICK,
    EventHeap,
    gc_for_the_run,
)
from cortex.sim.failures import (
    Cause,
    draw_failures,
    load_defaults,
    node_multipliers,
    rate_per_gpu_s,
)
from cortex.sim.flavor_books import FlavorBooks
from cortex.sim.invariants import check_invariants
from cortex.sim.metrics import Metrics
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.sim.quarantine import Quarantine, QuarantineRules
from cortex.sim.spares import SparePool, swap_speedup
from cortex.sim.twin_power import TwinPower
from cortex.workload.job import Job
from cortex.workload.states import JobState
from cortex.workload.throughput import ThroughputTable

_CODE_VALUE = {c: c.value for c in Code}
# Read at every finish entry's pop (_finish_stands): `JobState.RUNNING` costs ~800 instructions
# more a read than a module constant on CPython 3.11 (an enum's member through its class; §134).
_RUNNING = JobState.RUNNING
_POWER_CAP = Code.POWER_CAP
# A queue this short gets a deep (backfill) pass on every event: it is cheap.
SHORT_QUEUE = 4


@dataclass(frozen=True)
class SimConfig:
    """What to simulate and how. `checkpoint_interval_s` None means Young/Daly per job."""

    days: float
    seed: int = 0
    policy: str = "priority"
    backfill: bool = True
    failures: bool = True
    failure_scale: float = 1.0
    checkpoint_interval_s: float | None = None
    n_bins: int = 720
    debug: bool = False
    keep_history: bool = False
    policies: Policies | None = None  # overrides `policy` (tests, research)
    default_checkpoint_write_s: float | None = None  # for jobs that give none (traces)
    backfill_interval_s: float | None = None  # deep-pass interval; None: sim/data/defaults.csv
    power: PowerConfig | None = None  # None: the basic busy/idle accounting, no power policy
    failure_data: str | None = None  # job-failure causes CSV; None: sim/data/job_failures.csv
    quarantine: bool = False  # lemon quarantine (sim/quarantine.py)
    hot_spares_per_pod: int = 0  # hot spares (sim/spares.py)
    max_retries: int = runs.rules("twin").max_retries  # a job's own failures requeued at most

    def __post_init__(self) -> None:
        if not self.days > 0:
            raise ValueError(f"days must be positive, got {self.days}")
        if self.n_bins < 1:
            raise ValueError(f"n_bins must be at least 1, got {self.n_bins}")
        if self.failure_scale < 0:
            raise ValueError(f"failure_scale must not be negative, got {self.failure_scale}")
        if self.hot_spares_per_pod < 0:
            raise ValueError(f"hot_spares_per_pod must be >= 0, got {self.hot_spares_per_pod}")
        if not 0 <= self.max_retries <= runs.MAX_RETRIES_LIMIT:
            raise ValueError(f"max_retries must be in 0..{runs.MAX_RETRIES_LIMIT}")

    @property
    def horizon_s(self) -> float:
        return self.days * 86400.0


# control/estimate_accuracy.py subclasses the twin: the compiled core must allow it
@mypyc_attr(allow_interpreted_subclasses=True)
class Twin(TwinPower):
    """Runs the scheduler on a modelled fleet. Build, `run()`, then read the attributes or
    `cortex.sim.report.build_report`."""

    def __init__(self, topo: Topology, jobs: list[Job], cfg: SimConfig) -> None:
        self.topo = topo
        self.cfg = cfg
        self.jobs = jobs
        if cfg.default_checkpoint_write_s is not None:
            for j in jobs:
                if j.ckpt_write_s is None:
                    j.ckpt_write_s = cfg.default_checkpoint_write_s
        self._by_id = {j.id: j for j in jobs}
        self.queues = QueueConfig.build(topo.spec.queues, topo, (j.team for j in jobs))
        self.state = ClusterState(topo, self.queues)
        self.pol = cfg.policies or build_policies(cfg.policy, backfill=cfg.backfill)
        self.pending = PendingQueues(len(self.queues.queues), self.pol.ordering.key)
        self.power = PowerModel.for_topology(topo)
        # One facility model (power/cooling.py), at the design temperature when power is off.
        self._cooling = CoolingModel.for_pue(topo.spec.site.pue)
        self._nameplate_w = self.power.peak_it_w(topo.flavor_gpus())
        self._init_causes(cfg.failure_data)
        self._init_retries(cfg.max_retries)
        defaults = load_defaults()
        self.restart_overhead_s = defaults["restart_overhead_s"]
        self.preempt_overhead_s = defaults["preempt_restart_overhead_s"]
        self.grace_s = runs.rules("twin").preempt_grace_s  # the control plane's default too
        self.horizon_s = cfg.horizon_s
        self.large_job_gpus = int(defaults["large_job_gpus"])
        self.backfill_interval_s = cfg.backfill_interval_s or defaults["backfill_interval_s"]
        self.rules = runs.rules("twin")
        self.fallback_tau_s = self.rules.fallback_checkpoint_interval_s
        self._protection = protection.ProtectionEnds(self.queues)  # when failed searches retry
        self.fail_rate = rate_per_gpu_s(cfg.failure_scale) if cfg.failures else 0.0
        table = ThroughputTable.load()
        kinds = {j.kind for j in jobs} | {"generic"}
        self.speeds = {
            (k, f): table.speed(k, name) for k in kinds for f, name in enumerate(topo.flavors)
        }
        self.metrics = Metrics(cfg.horizon_s, cfg.n_bins, len(self.causes))
        self.rng = np.random.default_rng(cfg.seed)
        self.job_rng = np.random.default_rng((cfg.seed, 2))  # job failures: their own stream
        self.node_mult = node_multipliers(np.random.default_rng((cfg.seed, 3)), topo.n_nodes)
        self.quarantine: Quarantine | None = None
        if cfg.quarantine and cfg.failures:
            rng = np.random.default_rng((cfg.seed, 4))  # its own stream: others stay as they were
            self.quarantine = Quarantine(QuarantineRules.load(), self.node_mult, rng)
        self.spares: SparePool | None = None
        if cfg.hot_spares_per_pod > 0:
            self.spares = SparePool(cfg.hot_spares_per_pod, topo)
            self.spares.hold(self.state)
        self.flavor_books = FlavorBooks(self.state.up_gpus)  # after the spares leave service
        # Gangs hit by a node failure: when it happened; on their next start, the time they
        # took to recover (the queue wait plus the overhead owed) joins gang_recover_s.
        self._failed_at: dict[int, float] = {}
        self.gang_recover_s: list[float] = []
        self.engine = EventHeap()
        self._fin_last = {}  # (RunBooks._set_rate)
        self.now = 0.0
        self.rejected: list[tuple[Job, Reason]] = []
        self.completed: list[Job] = []
        self.large_productive_s: dict[int, float] = {}
        self.events = 0
        self.superseded = 0  # finishes dropped unhandled: not in `events` (_finish_stands)
        self.wall_s = 0.0
        self._facility_w = 0.0
        self._power_dirty = True
        self._dirty = False
        self._deep_due = 0.0
        self._ticks: set[float] = set()
        self._writes: dict[int, tuple[float, int]] = {}  # node: (victim's write ends, GPUs)
        self._writes_until = 0.0  # the latest end among _writes
        self.pw: PowerRuntime | None = None
        self._power_retry = False
        self._power_next_try_s = 0.0
        self._allocation = Allocation()  # the allocator's periodic solve (hetero profile)
        # What every pass's Snapshot reads of the twin, bound once: three bound methods made
        # at each pass cost ~1,500 instructions of its ~6,100-instruction frame (RESULTS §131).
        self._pass_fns = (self._speed, self._estimate_s, self._lost_s)
        if cfg.power is not None:
            self.pw = PowerRuntime.build(topo, cfg.power, cfg.horizon_s)
            if self.pw.policy is not None:
                self.pol = dataclasses.replace(self.pol, power=self.pw.policy)
        self._init_clock()

    # ---- event heap (sim/engine.py) -----------------------------------------------------
    def _push(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        self.engine.push(t, prio, kind, a, b)

    def _seed_events(self) -> None:
        horizon = self.cfg.horizon_s
        add = self.engine.add
        for j in self.jobs:
            if j.submit_s < horizon:
                add(j.submit_s, ARRIVAL, ARRIVAL, j)
        if self.cfg.failures:
            node_gpus = np.array([self.state.gpn[f] for f in self.topo.node_flavor], dtype=float)
            times, nodes, kinds = draw_failures(
                self.rng, horizon, node_gpus, self.cfg.failure_scale, self.node_mult
            )
            for t, n, c in zip(times.tolist(), nodes.tolist(), kinds.tolist(), strict=True):
                add(t, FAILURE, FAILURE, n, c)
        if self.pw is not None:
            for t in self.pw.event_times(horizon):
                add(t, POWER_PRIO, POWER, None)
        self.engine.ready()

    # ---- the loop ---------------------------------------------------------------------------
    def run(self, on_progress: Callable[[float], None] | None = None) -> Twin:
        """Simulate to the horizon."""
        wall0 = time.perf_counter()
        horizon = self.cfg.horizon_s
        handlers: dict[int, Callable[[Any, int], None]] = {
            ARRIVAL: self._arrival,
            FINISH: self._finish,
            FAILURE: self._failure,
            REPAIR: self._repair,
            TICK: self._tick,
            POWER: self._power_event,
            STAGGER: self._stagger,
            JOBFAIL: self._job_failure,
            RETRY: self._retry,
        }
        # A finish superseded by its run's cap move or stop is no event of the modelled world:
        # the engine drops it without stopping the clock (RESULTS §134).
        stands: dict[int, Callable[[Any, int], bool]] = {FINISH: self._finish_stands}
        with gc_for_the_run(prepare=self._seed_events):
            self.events += self.engine.run(
                horizon, self.now, handlers, self._advance, self._instant_over, on_progress, stands
            )
        self.superseded = self.engine.dropped
        self._advance(horizon)
        self._close_running()
        if self.spares is not None:
            self.spares.close(horizon)
        self.wall_s = time.perf_counter() - wall0
        if on_progress is not None:
            on_progress(horizon)
        return self

    def _instant_over(self) -> None:
        """The last event of an instant is handled: run the scheduling cycle if anything
        changed."""
        if self._dirty:
            self._cycle()
        if self.cfg.debug:
            check_invariants(self)

    def _advance(self, t: float) -> None:
        st = self.state
        up = st.up_gpus
        if up != self.flavor_books.up_last:  # a node went down or came back
            self.flavor_books.up_changed(self.now, up)
        if self._power_dirty:
            pw = self.pw
            if pw is not None:
                fw = self._facility_w = pw.facility_w(pw.it_w(st), self.now)
                pw.record(self.now, fw)
                m = self.metrics
                if fw > m.peak_facility_w:  # noqa: PLR1730 (Metrics.peak inlined; most instants)
                    m.peak_facility_w = fw
            else:
                up_frac = [
                    u / n if n else 0.0 for u, n in zip(st.up_nodes, st.total_nodes, strict=True)
                ]
                it_w = self.power.it_power_w(st.busy_gpus, up, up_frac)
                cool = self._cooling
                self._facility_w = cool.facility_w(it_w, self._nameplate_w, cool.design_temp_c)
                self.metrics.peak(self._facility_w)
            self._power_dirty = False
        # a retry's backoff is a wait too; the pending count read, not asked through __len__
        # (a call per instant, as in _cycle: PendingQueues keeps it in `_n`; RESULTS §126)
        waiting = self.pending._n + len(self.waiting)
        # The GPU counts summed as doubles (exact below 2**53: the same values), which
        # Metrics.advance multiplies with less work than an int by a double.
        self.metrics.advance(t, sum(st.busy_gpus, 0.0), sum(up, 0.0), waiting, self._facility_w)
        self.now = t

    # ---- handlers ---------------------------------------------------------------------------
    def _reject(self, job: Job, reason: Reason) -> None:
        job.move(JobState.REJECTED, self.now, reason.code.value)
        self.rejected.append((job, reason))

    def _arrival(self, job: Job, _b: int) -> None:
        if self.cfg.keep_history:
            job.history = [(self.now, JobState.QUEUED, "submitted")]
        st = self.state
        reason = intake.admit(job, self.queues, self.topo.flavors, st.gpn, st.total_gpus)
        if reason is None and self.pw is not None and self.pw.policy is not None:
            reason = self.pw.never_fits(job, job.flavor_ids)  # (): any flavor
        if reason is not None:
            self._reject(job, reason)
            return
        self.pending.add(job)
        self._dirty = True

    def _finish_stands(self, job: Job, epoch: int) -> bool:
        """Whether a finish entry still stands when it pops: it is the live run's. A cap move
        gives the run a new end under a new epoch; a run that stopped (completed at an earlier
        end, preempted, failed) is no longer RUNNING, and a restart bumps the epoch. A cap
        move's later end waits parked behind the entry on the heap (RunBooks._set_rate): it
        goes on the heap when that entry pops, superseded, if it is still the live run's."""
        if job.epoch == epoch:
            return job.state is _RUNNING
        engine = self.engine
        ev = engine.parked.get(job.id)
        if ev is not None:
            if ev[5] == job.epoch and job.state is _RUNNING:
                engine.unpark(job.id)
                self._fin_last[job.id] = (ev[0], job.epoch)
            else:
                del engine.parked[job.id]  # its run is over
        return False

    def _finish(self, job: Job, _epoch: int) -> None:
        # Only the live run's finish comes here: the engine drops the others (_finish_stands).
        compute = job.remaining_s / job.run_speed
        elapsed = job.run_dur_s
        self._power_stop(job, elapsed)
        self._account_stop(
            job, compute, compute, elapsed, completed=True, real_s=self.now - job.run_start_s
        )
        job.done_s = job.work_s
        job.end_s = self.now
        job.move(JobState.COMPLETED, self.now, "work done")
        self.state.stop(job, job.queue_idx)
        self.completed.append(job)
        self._changed()

    def _failure(self, node: int, cause_idx: int) -> None:
        st = self.state
        q = self.quarantine
        if not st.node_up[node] or (q is not None and not q.happens(node)):
            return
        cause = self.causes[cause_idx]
        self.metrics.failures_total += 1
        down_s = cause.repair_s
        if q is not None and q.strike(node, self.now):
            down_s = max(down_s, q.rules.burn_in_s)
            h = self.horizon_s
            extra_s = min(self.now + down_s, h) - min(self.now + cause.repair_s, h)
            q.out_gpu_s += extra_s * st.gpn[self.topo.node_flavor[node]]
        for job_id in st.jobs_on(node):
            job = st.running[job_id]
            shape = (job.run_flavor, job.run_gpus, st.allocations[job_id].gpus, self._level(job))
            placement = self._fail_run(job, cause_idx, "node")  # requeued at once, no retry spent
            if len(placement) > 1:
                self._failed_at[job_id] = self.now
                if self.spares is not None and down_s > 0:  # a node left in service: requeue
                    self._swap_in(job, placement, node, cause, shape)
        if down_s > 0:
            st.set_down(node)
            self.engine.push(self.now + down_s, REPAIR, REPAIR, node)
        self._changed()

    def _repair(self, node: int, _b: int) -> None:
        if self.spares is not None:
            self.spares.repaired(self.state, node, self.now)
        else:
            self.state.set_up(node)
        self._changed()

    def _swap_in(
        self, job: Job, placement: Placement, failed: int, cause: Cause, shape: tuple[int, ...]
    ) -> None:
        """A gang that lost a node restarts at once with a hot spare of that pod in its place
        (sim/spares.py), owing its recovery and restart overhead over the standby speed-up."""
        assert self.spares is not None
        new = self.spares.swap(self.state, placement, failed, self.now)
        if new is None:
            return
        flavor, gang, alloc, level = shape
        slow = cause.recover_s + self.restart_overhead_s
        job.owed_overhead_s = cause.detect_s + slow / swap_speedup()
        self._start(Start(job, flavor, new, gang, alloc, level))

    def _tick(self, _a: object, _b: int) -> None:
        self._ticks.discard(self.now)
        self._dirty = True

    def _wake(self, t: float) -> None:
        """Run a cycle at t, rounded up to the backfill interval's grid so that wake-ups of
        many jobs share one event."""
        grid = self.backfill_interval_s
        t = math.ceil(t / grid) * grid
        if t <= self.now:
            t += grid  # never wake at this very instant: the cycle has just run
        if t not in self._ticks:
            self._ticks.add(t)
            self.engine.push(t, TICK, TICK, None)

    def _changed(self) -> None:
        self._dirty = True
        self._power_dirty = True

    # ---- runs -------------------------------------------------------------------------------
    def _start(self, s: Start, committed: bool = False) -> None:
        # Once per start: the instant, the power books and the push read once into locals,
        # the heap pushed without Twin._push's extra frame (RESULTS §119).
        job = s.job
        now = self.now
        pw = self.pw
        self.pending.remove(job)
        job.move(JobState.ADMITTED, now, "quota reserved")
        job.move(JobState.RUNNING, now, "placed")
        f = s.flavor
        gang = s.gang_gpus
        # Devices a victim still writes its checkpoint on are launched on once it is done
        # (none written since the last start cleared them: most starts, without the call).
        if self._writes:
            job.run_wait_s, job.run_wait_gpus = self._victim_wait(s.placement, gang)
        else:
            job.run_wait_s, job.run_wait_gpus = 0.0, 0
        job.owed_overhead_s += job.run_wait_s
        kept, waves = 1.0, 1
        if pw is not None:
            shape = s.power_shape
            if (
                shape is None
                and committed
                and len(s.placement) > 2
                and pw.min_node_cap_w == math.inf
            ):
                # No admission read the placement (no power policy): a whole-node gang's
                # halls from the pods its take counted, not a look-up per node; no rack caps,
                # so its node cap is inf (placement_shape's answer; RESULTS §145).
                halls = self.state.hall_gpus(job.id)
                if halls is not None:
                    shape = (math.inf, sum(halls.values()), halls)
            kept, waves = pw.start(job, f, gang, s.placement, s.cap_level, now, shape, True)
            # A staggered gang is not productive until its last wave is up.
            job.owed_overhead_s += 60.0 * (waves - 1)
        speed, tau, dur = self._run_shape(job, f, gang, s.alloc_gpus)
        job.run_speed = speed
        job.run_overhead_s = job.owed_overhead_s
        job.owed_overhead_s = 0.0
        job.run_tau_s = tau
        job.run_dur_s = dur
        job.run_k = kept
        job.run_vacc = 0.0
        job.run_vmark = self._clock(now)
        end = self._end_time(job) if (kept != 1.0 or self._clock_v) else now + dur
        runs.begin(job, now, f, gang, s.alloc_gpus, end)
        self._protection.started(job, now)
        job.epoch += 1
        if job.first_start_s < 0:
            job.first_start_s = now
        failed_at = self._failed_at.pop(job.id, None)
        if failed_at is not None:
            self.gang_recover_s.append(now - failed_at + job.run_overhead_s)
        if committed:
            self.state.adopt(job)
        else:
            self.state.start(job, job.queue_idx, f, s.placement)
        push = self.engine.push
        push(job.est_end_s, FINISH, FINISH, job, job.epoch)
        if pw is not None:  # its first wave drew at its books' start (fill=True)
            for i in range(1, waves):
                push(now + 60.0 * i, POWER_PRIO, STAGGER, job, job.restarts)
        self._arm_job_failure(job)

    # ---- the scheduling cycle ---------------------------------------------------------------
    def _run_shape(
        self, job: Job, flavor: int, gang: int, alloc: int
    ) -> tuple[float, float, float]:
        """(speed, checkpoint interval, wall duration) of a run that starts now: the rule the
        control plane's backfill estimate follows too (drive/run_estimate.py)."""
        speed = run_estimate.run_speed(job, self.speeds[(job.kind, flavor)], gang)
        # Young/Daly's failure rate, summed only when the job's interval is not given.
        rate = partial(self._run_rate, job, gang, alloc) if self.fail_rate > 0 else None
        tau = run_estimate.interval_s(
            job, self.cfg.checkpoint_interval_s, rate, self.fallback_tau_s
        )
        return speed, tau, run_estimate.estimate_s(job, speed, tau)

    def _run_rate(self, job: Job, gang: int, alloc: int) -> float:
        """Failures per second of a run: its allocation's nodes' and the job's own causes."""
        return self.fail_rate * alloc + self._job_rate(job, gang)

    def _estimate_s(self, job: Job, flavor: int, gang: int) -> float:
        cache = job.est_cache
        if cache is None:
            cache = job.est_cache = {}
        est = cache.get((flavor, gang))
        if est is None:
            alloc = alloc_size(gang, self.state.gpn[flavor])
            est = cache[(flavor, gang)] = self._run_shape(job, flavor, gang, alloc)[2]
            if gang == job.gpus:  # and by flavor for the deep pass's judge (shadow.py)
                row = job.est_gang_s
                if row is None:
                    row = job.est_gang_s = [None] * len(self.state.gpn)
                row[flavor] = est
        return est

    def _speed(self, kind: str, flavor: int) -> float:
        return self.speeds[(kind, flavor)]

    def _cycle(self) -> None:
        self._dirty = False
        n_pending = self.pending._n
        if not n_pending:
            return
        deep = self.now >= self._deep_due or n_pending <= SHORT_QUEUE
        view = None
        if self.pw is not None and self.pw.policy is not None:
            view = self.pw.pass_view(self.now)
        speed, estimate_s, lost_s = self._pass_fns
        # By position (no targets: the allocation's snapshot adds them): keywords cost ~1,100
        # instructions a pass through the dataclass's __init__.
        snap = Snapshot(self.now, self.state, self.pending, speed, estimate_s, view, None, lost_s)
        snap = self._allocation.snapshot(self.pol, snap)
        t0 = time.perf_counter()
        plan = schedule(snap, self.pol, deep=deep, commit=True, explain=False)
        self.metrics.cycle_s.append(time.perf_counter() - t0)
        self.metrics.cycles += 1
        self._apply(plan)
        rest = plan.rest_reason
        # _power_blocked acts on a site stop only when a re-solve is due (_resolve_due); it
        # returned at once for the others (RESULTS.md section 153: 34.5k of `full`'s 34.8k a
        # month), which are not asked.
        if (
            rest is not None
            and self.pw is not None
            and (rest.code is not _POWER_CAP or self._resolve_due(deep))
        ):
            self._power_blocked(plan, deep)
        if deep:
            self._deep_due = self.now + self.backfill_interval_s
        elif self.pending._n:
            # Jobs behind blocked heads get a deep pass once the interval is over.
            self._wake(self._deep_due)

    def _apply(self, plan: Plan) -> None:
        blocked = self.metrics.blocked
        # The pass (explain=False) counted its blockers by first code; new codes land in
        # `blocked` in the order they first appeared, as one add per job would put them.
        for c, n in plan.first_codes.items():
            code = _CODE_VALUE[c]  # an enum's .value is slow, and this is hot
            blocked[code] = blocked.get(code, 0) + n
        if plan.capacity_blocked:
            code = _CODE_VALUE[Code.INSUFFICIENT_CAPACITY]
            blocked[code] = blocked.get(code, 0) + plan.capacity_blocked
        held = self._protection.protected(self.now) if plan.preempt_failed else []
        for job_id in plan.preempt_failed:
            job = self._by_id[job_id]
            by = protection.retry_by_s(job, held, self.queues, self.pol.preemption.may_evict)
            least = self.queues.least_min_runtime_s
            self._wake(
                runs.preempt_backoff(job, self.now, least, self.backfill_interval_s, self.rules, by)
            )
        for p in plan.preemptions:
            runs.evicted(p.job, p.reason.code)
            self._preempt(p.job, p.reason.code.value)
        for s in plan.starts:
            self._start(s, plan.committed)
        if plan.starts or plan.preemptions:
            self._power_dirty = True
