"""The digital twin: driver 1 of the scheduling cycle, on simulated time.

One loop: pop the next events, apply them through the transition table, and when the instant
is over, snapshot and call the same `schedule` the control plane calls, then apply the plan by
putting completions on the event heap. Events are ordered by (time, priority, sequence).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cortex.fleet.power import PowerModel
from cortex.fleet.topology import Topology
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.placement import alloc_size
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.registry import policies as build_policies
from cortex.scheduler.snapshot import Plan, Snapshot, Start
from cortex.scheduler.state import ClusterState
from cortex.sim import checkpoint as ckpt
from cortex.sim.failures import draw_failures, load_causes, load_defaults, rate_per_gpu_s
from cortex.sim.invariants import check_invariants
from cortex.sim.metrics import Metrics
from cortex.workload.job import Job
from cortex.workload.states import JobState
from cortex.workload.throughput import ThroughputTable

# Event priorities at one instant: capacity returns before anything asks for it.
REPAIR, FINISH, FAILURE, ARRIVAL, TICK = 0, 1, 2, 3, 4
# A queue this short gets a deep (backfill) pass on every event: it is cheap.
SHORT_QUEUE = 4
# Longest wait between two failed victim searches of one job.
PREEMPT_BACKOFF_MAX_S = 3600.0


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

    def __post_init__(self) -> None:
        if not self.days > 0:
            raise ValueError(f"days must be positive, got {self.days}")
        if self.n_bins < 1:
            raise ValueError(f"n_bins must be at least 1, got {self.n_bins}")
        if self.failure_scale < 0:
            raise ValueError(f"failure_scale must not be negative, got {self.failure_scale}")

    @property
    def horizon_s(self) -> float:
        return self.days * 86400.0


class Twin:
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
        self.causes = load_causes()
        defaults = load_defaults()
        self.restart_overhead_s = defaults["restart_overhead_s"]
        self.preempt_overhead_s = defaults["preempt_restart_overhead_s"]
        self.large_job_gpus = int(defaults["large_job_gpus"])
        self.backfill_interval_s = cfg.backfill_interval_s or defaults["backfill_interval_s"]
        self.fallback_tau_s = defaults["fallback_checkpoint_interval_s"]
        self.fail_rate = rate_per_gpu_s(cfg.failure_scale) if cfg.failures else 0.0
        table = ThroughputTable.load()
        kinds = {j.kind for j in jobs} | {"generic"}
        self.speeds = {
            (k, f): table.speed(k, name) for k in kinds for f, name in enumerate(topo.flavors)
        }
        self.metrics = Metrics(cfg.horizon_s, cfg.n_bins, len(self.causes))
        self.rng = np.random.default_rng(cfg.seed)
        self.heap: list[tuple] = []
        self.seq = 0
        self.now = 0.0
        self.rejected: list[tuple[Job, Reason]] = []
        self.completed: list[Job] = []
        self.large_productive_s: dict[int, float] = {}
        self.events = 0
        self.wall_s = 0.0
        self._facility_w = 0.0
        self._power_dirty = True
        self._dirty = False
        self._deep_due = 0.0
        self._ticks: set[float] = set()

    # ---- event heap -------------------------------------------------------------------------
    def _push(self, t: float, prio: int, kind: int, a: object, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, prio, self.seq, kind, a, b))

    def _seed_events(self) -> None:
        horizon = self.cfg.horizon_s
        for j in self.jobs:
            if j.submit_s < horizon:
                self.seq += 1
                self.heap.append((j.submit_s, ARRIVAL, self.seq, ARRIVAL, j, 0))
        if self.cfg.failures:
            node_gpus = np.array([self.state.gpn[f] for f in self.topo.node_flavor], dtype=float)
            times, nodes, kinds = draw_failures(
                self.rng, horizon, node_gpus, self.cfg.failure_scale
            )
            for t, n, c in zip(times.tolist(), nodes.tolist(), kinds.tolist(), strict=True):
                self.seq += 1
                self.heap.append((t, FAILURE, self.seq, FAILURE, n, c))
        heapq.heapify(self.heap)

    # ---- the loop ---------------------------------------------------------------------------
    def run(self, on_progress: Callable[[float], None] | None = None) -> Twin:
        """Simulate to the horizon."""
        wall0 = time.perf_counter()
        self._seed_events()
        heap = self.heap
        horizon = self.cfg.horizon_s
        handlers: dict[int, Callable[[Any, int], None]] = {
            ARRIVAL: self._arrival,
            FINISH: self._finish,
            FAILURE: self._failure,
            REPAIR: self._repair,
            TICK: self._tick,
        }
        debug = self.cfg.debug
        next_report = 0
        while heap and heap[0][0] <= horizon:
            t, _, _, kind, a, b = heapq.heappop(heap)
            if t > self.now:
                self._advance(t)
            handlers[kind](a, b)
            self.events += 1
            if not heap or heap[0][0] > t:
                if self._dirty:
                    self._cycle()
                if debug:
                    check_invariants(self)
            if on_progress is not None and self.events >= next_report:
                on_progress(t)
                next_report = self.events + 20000
        self._advance(horizon)
        self._close_running()
        self.wall_s = time.perf_counter() - wall0
        if on_progress is not None:
            on_progress(horizon)
        return self

    def _advance(self, t: float) -> None:
        if self._power_dirty:
            st = self.state
            up_frac = [
                u / n if n else 0.0 for u, n in zip(st.up_nodes, st.total_nodes, strict=True)
            ]
            it_w = self.power.it_power_w(st.busy_gpus, st.up_gpus, up_frac)
            self._facility_w = self.power.facility_w(it_w)
            self.metrics.peak(self._facility_w)
            self._power_dirty = False
        st = self.state
        self.metrics.advance(
            t, sum(st.busy_gpus), sum(st.up_gpus), len(self.pending), self._facility_w
        )
        self.now = t

    # ---- handlers ---------------------------------------------------------------------------
    def _reject(self, job: Job, reason: Reason) -> None:
        job.move(JobState.REJECTED, self.now, reason.code.value)
        self.rejected.append((job, reason))

    def _arrival(self, job: Job, _b: int) -> None:
        if self.cfg.keep_history:
            job.history = [(self.now, JobState.QUEUED, "submitted")]
        try:
            job.queue_idx = self.queues.index(job.team)
        except KeyError:
            self._reject(job, Reason(Code.UNKNOWN_QUEUE, team=job.team))
            return
        prio = self.queues.priority_classes.get(job.priority_class)
        if prio is None:
            self._reject(
                job,
                Reason(
                    Code.UNKNOWN_PRIORITY_CLASS,
                    priority_class=job.priority_class,
                    known=sorted(self.queues.priority_classes),
                ),
            )
            return
        job.priority = prio
        flavors = self.topo.flavors
        if job.flavors:
            job.flavor_ids = tuple(flavors.index(f) for f in job.flavors if f in flavors)
            if not job.flavor_ids:
                self._reject(job, Reason(Code.NO_FLAVOR, flavors=list(job.flavors)))
                return
        reason = self._never_fits(job)
        if reason is not None:
            self._reject(job, reason)
            return
        self.pending.add(job)
        self._dirty = True

    def _never_fits(self, job: Job) -> Reason | None:
        """A job no flavor could ever hold is rejected at submission, never left queued."""
        st = self.state
        smallest = job.elastic_min or job.gpus
        most = 0
        cq = self.queues.queues[job.queue_idx]
        for f in job.flavor_ids or range(len(st.gpn)):
            limit = cq.borrowing_limit[f]
            cap = (
                st.total_gpus[f] if limit is None else min(st.total_gpus[f], cq.nominal[f] + limit)
            )
            most = max(most, cap)
            if alloc_size(smallest, st.gpn[f]) <= cap:
                return None
        return Reason(Code.NEVER_FITS, need=smallest, most=most)

    def _finish(self, job: Job, epoch: int) -> None:
        if job.epoch != epoch or job.state is not JobState.RUNNING:
            return  # stale: the run it belonged to was preempted or interrupted
        compute = self._run_compute_s(job)
        self._account_stop(job, compute, compute, self.now - job.run_start_s, completed=True)
        job.done_s = job.work_s
        job.end_s = self.now
        job.move(JobState.COMPLETED, self.now, "work done")
        self.state.stop(job, job.queue_idx)
        self.completed.append(job)
        self._changed()

    def _failure(self, node: int, cause_idx: int) -> None:
        st = self.state
        if not st.node_up[node]:
            return
        cause = self.causes[cause_idx]
        self.metrics.failures_total += 1
        for job_id in st.jobs_on(node):
            job = st.running[job_id]
            self._interrupt(
                job,
                cause.detect_s + cause.recover_s + self.restart_overhead_s,
                JobState.FAILED,
                cause.name,
            )
            self.metrics.interrupt(self.now, cause_idx)
            job.interruptions += 1
        if cause.repair_s > 0:
            st.set_down(node)
            self._push(self.now + cause.repair_s, REPAIR, REPAIR, node)
        self._changed()

    def _repair(self, node: int, _b: int) -> None:
        self.state.set_up(node)
        self._changed()

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
            self._push(t, TICK, TICK, None)

    def _changed(self) -> None:
        self._dirty = True
        self._power_dirty = True

    # ---- runs -------------------------------------------------------------------------------
    def _run_compute_s(self, job: Job) -> float:
        return job.remaining_s / job.run_speed

    def _account_stop(
        self,
        job: Job,
        done_f: float,
        saved_f: float,
        elapsed: float,
        completed: bool = False,
        preempted: bool = False,
    ) -> None:
        """Split a run's allocated GPU-seconds into productive, rework, restart, checkpoint."""
        m = self.metrics
        held = job.alloc_gpus
        gang = job.run_gpus
        overhead = min(elapsed, job.run_overhead_s)
        writes = max(elapsed - overhead - done_f, 0.0)
        m.fragment_gpu_s += (held - gang) * elapsed
        m.restart_gpu_s += gang * overhead
        m.checkpoint_gpu_s += gang * writes
        m.productive_gpu_s += gang * saved_f
        if completed:
            pass
        elif preempted:
            m.rework_preempt_gpu_s += gang * (done_f - saved_f)
        else:
            m.rework_failure_gpu_s += gang * (done_f - saved_f)
        job.attained_gpu_s += held * elapsed
        if job.gpus >= self.large_job_gpus:
            self.large_productive_s[job.id] = self.large_productive_s.get(job.id, 0.0) + saved_f

    def _interrupt(self, job: Job, owed_s: float, via: JobState, why: str) -> None:
        """Stop a running job that keeps only its checkpointed work, and requeue it."""
        elapsed = self.now - job.run_start_s
        done_f, saved_f = ckpt.progress(
            elapsed, job.run_overhead_s, job.run_tau_s, job.ckpt_write_s or 0.0
        )
        self._account_stop(job, done_f, saved_f, elapsed, preempted=via is JobState.PREEMPTED)
        job.done_s = min(job.done_s + saved_f * job.run_speed, job.work_s)
        self.state.stop(job, job.queue_idx)
        job.move(via, self.now, why)
        job.move(JobState.REQUEUED, self.now, "back to queue")
        job.owed_overhead_s = owed_s
        job.est_cache = None
        job.restarts += 1
        self.pending.add(job)
        self._power_dirty = True

    def _start(self, s: Start) -> None:
        job = s.job
        self.pending.remove(job)
        job.move(JobState.ADMITTED, self.now, "quota reserved")
        job.move(JobState.RUNNING, self.now, "placed")
        f = s.flavor
        speed, tau, dur = self._run_shape(job, f, s.gang_gpus, s.alloc_gpus)
        job.run_speed = speed
        job.run_flavor = f
        job.run_gpus = s.gang_gpus
        job.alloc_gpus = s.alloc_gpus
        job.run_overhead_s = job.owed_overhead_s
        job.owed_overhead_s = 0.0
        job.run_tau_s = tau
        job.run_start_s = self.now
        job.est_end_s = self.now + dur
        job.epoch += 1
        job.preempt_backoff_s = 0.0
        job.next_preempt_try_s = 0.0
        if job.first_start_s < 0:
            job.first_start_s = self.now
        self.state.start(job, job.queue_idx, f, s.placement)
        self._push(job.est_end_s, FINISH, FINISH, job, job.epoch)

    # ---- the scheduling cycle ---------------------------------------------------------------
    def _run_shape(
        self, job: Job, flavor: int, gang: int, alloc: int
    ) -> tuple[float, float, float]:
        """(speed, checkpoint interval, wall duration) of a run that starts now."""
        speed = self.speeds[(job.kind, flavor)] * gang / job.gpus
        write = job.ckpt_write_s or 0.0
        fixed = job.ckpt_interval_s
        if fixed is None:
            fixed = self.cfg.checkpoint_interval_s
        if not write:
            tau = math.inf  # no checkpoint cost given: the job does not checkpoint
        elif fixed is not None:
            tau = float(fixed)
        elif self.fail_rate > 0:
            tau = ckpt.daly_interval_s(write, 1.0 / (self.fail_rate * alloc))
        else:
            tau = self.fallback_tau_s
        dur = ckpt.run_duration_s(job.remaining_s / speed, job.owed_overhead_s, tau, write)
        return speed, tau, dur

    def _estimate_s(self, job: Job, flavor: int, gang: int) -> float:
        cache = job.est_cache
        if cache is None:
            cache = job.est_cache = {}
        est = cache.get((flavor, gang))
        if est is None:
            alloc = alloc_size(gang, self.state.gpn[flavor])
            est = cache[(flavor, gang)] = self._run_shape(job, flavor, gang, alloc)[2]
        return est

    def _speed(self, kind: str, flavor: int) -> float:
        return self.speeds[(kind, flavor)]

    def _cycle(self) -> None:
        self._dirty = False
        if not self.pending:
            return
        deep = self.now >= self._deep_due or len(self.pending) <= SHORT_QUEUE
        snap = Snapshot(self.now, self.state, self.pending, self._speed, self._estimate_s)
        t0 = time.perf_counter()
        plan = schedule(snap, self.pol, deep=deep)
        self.metrics.cycle_s.append(time.perf_counter() - t0)
        self.metrics.cycles += 1
        self._apply(plan)
        if deep:
            self._deep_due = self.now + self.backfill_interval_s
        elif self.pending:
            # Jobs behind blocked heads get a deep pass once the interval is over.
            self._wake(self._deep_due)

    def _apply(self, plan: Plan) -> None:
        blocked = self.metrics.blocked
        for reasons in plan.blockers.values():
            if reasons:
                code = reasons[0].code.value
                blocked[code] = blocked.get(code, 0) + 1
        for job_id in plan.preempt_failed:
            # Exponential backoff from half the minimum runtime up to an hour.
            job = self._by_id[job_id]
            job.preempt_backoff_s = min(
                max(
                    job.preempt_backoff_s * 2,
                    self.queues.min_runtime_s / 2,
                    self.backfill_interval_s,
                ),
                PREEMPT_BACKOFF_MAX_S,
            )
            job.next_preempt_try_s = self.now + job.preempt_backoff_s
            self._wake(job.next_preempt_try_s)
        for p in plan.preemptions:
            self.metrics.preemptions += 1
            p.job.preemptions += 1
            self._interrupt(p.job, self.preempt_overhead_s, JobState.PREEMPTED, p.reason.code.value)
        for s in plan.starts:
            self._start(s)
        if plan.starts or plan.preemptions:
            self._power_dirty = True

    def _close_running(self) -> None:
        """At the horizon: account the running jobs' time without ending them."""
        m = self.metrics
        for job in list(self.state.running.values()):
            elapsed = self.now - job.run_start_s
            done_f, saved_f = ckpt.progress(
                elapsed, job.run_overhead_s, job.run_tau_s, job.ckpt_write_s or 0.0
            )
            self._account_stop(job, done_f, saved_f, elapsed, completed=True)
            m.in_progress_gpu_s += job.run_gpus * (done_f - saved_f)
            if job.gpus >= self.large_job_gpus:
                self.large_productive_s[job.id] += done_f - saved_f
