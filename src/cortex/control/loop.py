"""The scheduler loop: driver 2 of the scheduling cycle, on the wall clock.

Each tick reads facts (new submissions, cancel requests, process exits), applies them through
the transition table, snapshots, calls the same `schedule` the twin calls, persists the plan and
only then applies it through the executor. The store is the source of truth: every step commits
its intent before it acts (an allocation row before a launch, `stopping` before a SIGTERM), so
that recovery after a kill -9 can finish or undo whatever was in flight.

Only this loop changes the state of a job that has been submitted; the API inserts jobs and sets
`cancel_requested`, then wakes the loop.

Lock discipline (docs/control-plane.md): the scheduler thread alone owns the in-memory state;
other threads read the immutable `LoopView` it publishes after each tick and reach it only
through non-blocking commands (wake, cancel hints, dirty flags), so no thread ever waits for the
loop while holding the store's write lock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import preemptions, store
from cortex.control.clock import SYSTEM, Clock
from cortex.control.config import Settings
from cortex.control.db import Sessions
from cortex.control.envcrypt import EnvBox
from cortex.control.fleet import local_fleet, queues_spec
from cortex.control.loop_burnin import BurnInMixin
from cortex.control.loop_exits import (
    ExitsMixin,
)
from cortex.control.loop_fleet import FleetMixin, FleetView, node_devices_of
from cortex.control.loop_gates import GatesMixin
from cortex.control.loop_health import HealthMixin
from cortex.control.loop_launch import LaunchMixin
from cortex.control.loop_limits import LimitsMixin
from cortex.control.loop_power import LivePower
from cortex.control.metrics import Metrics
from cortex.control.mirror import Mirror
from cortex.control.progress import ProgressBook
from cortex.control.recovery import RecoveryMixin
from cortex.control.why import WhyBook
from cortex.drive import intake, run_estimate, runs
from cortex.drive.allocation import Allocation
from cortex.executors.base import Executor
from cortex.fleet.spec import FleetSpec
from cortex.fleet.topology import Topology, build
from cortex.scheduler.cycle import schedule
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.reasons import Reason
from cortex.scheduler.registry import policies as build_policies
from cortex.scheduler.snapshot import Plan, Snapshot
from cortex.workload.job import Job
from cortex.workload.spec import JobSpec
from cortex.workload.states import JobState
from cortex.workload.throughput import ThroughputTable

log = logging.getLogger("cortex.control")

# A deep pass also runs without events this often while jobs wait: preemption floors and
# backfill reservations depend on time passing.
IDLE_CYCLE_S = 1.0
# Progress files read before a pass, for the victim search's cost: each running job's at most
# this often, and at most this many a tick (a bounded read each: control/progress.py).
CHECKPOINT_READ_S = 30.0
CHECKPOINT_READS = 64
HEARTBEAT_S = 5.0
MIN_TICK_S = 0.01
# A tick that raises is retried after tick_s, 2 tick_s, 4 tick_s ... up to this; after
# UNHEALTHY_AFTER failures in a row the loop reports itself unhealthy (/healthz reads it).
FAIL_BACKOFF_MAX_S = 30.0
UNHEALTHY_AFTER = 5
DRAIN_S = 10.0  # at stop, the longest wait for the executor's queued calls (Ray teardowns)


@dataclass(frozen=True)
class LoopView:
    """What the loop publishes for other threads after each tick: immutable, replaced whole
    (one attribute store, atomic in CPython), so a reader needs no lock."""

    devices: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # running job's devices
    usage: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # queue: (GPUs, pending)
    gpus_used: int = 0
    ticks: int = 0


def _speeds(flavor: str) -> dict[str, float]:
    """Per job kind, the throughput of this machine's accelerator."""
    table = ThroughputTable.load()
    speeds: dict[str, float] = {}
    for kind in table.kinds():
        try:
            speeds[kind] = table.speed(kind, flavor)
        except KeyError:
            speeds[kind] = 1.0  # a GPU the table does not know: take estimates as given
    return speeds


def _spec_types(
    launch_spec: Callable[..., Any] | None,
    handle_from_dict: Callable[[dict[str, Any]], Any] | None,
) -> tuple[Callable[..., Any], Callable[[dict[str, Any]], Any]]:
    """The executor's launch spec and handle reader, the executor interface's by default."""
    from cortex.executors.spec import LaunchSpec
    from cortex.executors.spec import handle_from_dict as from_dict

    return launch_spec or LaunchSpec, handle_from_dict or from_dict


class SchedulerLoop(
    LimitsMixin, LaunchMixin, ExitsMixin, RecoveryMixin, FleetMixin, HealthMixin, GatesMixin,
    BurnInMixin,
):  # fmt: skip
    """Drives the scheduler against the store and the executor. Holds the in-memory mirror of
    what the store says (control/mirror.py), rebuilt from the store by `recover()`
    (control/recovery.py)."""

    def __init__(
        self,
        settings: Settings,
        sessions: Sessions,
        executor: Executor,
        *,
        flavor: str,
        devices: list[int],
        uses_gpus: bool,
        node_name: str,
        metrics: Metrics | None = None,
        launch_spec: Callable[..., Any] | None = None,
        handle_from_dict: Callable[[dict[str, Any]], Any] | None = None,
        fleet: FleetSpec | None = None,
        node_names: list[str] | None = None,
        retry_backoff_base_s: float | None = None,
        retry_backoff_max_s: float | None = None,
        max_exit75_requeues: int | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.clock = clock
        self.rules = runs.rules("control")
        self._set_retry(retry_backoff_base_s, retry_backoff_max_s, max_exit75_requeues)
        self.settings = settings
        self.sessions = sessions
        self.executor = executor
        self.flavor = flavor
        self.all_devices = list(devices)
        self.uses_gpus = uses_gpus
        self.node_name = node_name
        self.metrics = metrics or Metrics()
        self.launch_spec, self.handle_from_dict = _spec_types(launch_spec, handle_from_dict)
        # The local machine is one node; benchmarks pass a modelled multi-node `fleet` whose
        # node n owns device ids n*g .. n*g+g-1.
        self.topo: Topology = build(fleet or local_fleet(flavor, len(devices), node_name))
        if fleet is None:
            self.node_devices = [list(devices)]
        else:
            self.node_devices = node_devices_of(self.topo)
            self.all_devices = [d for ds in self.node_devices for d in ds]
        # An executor's fleet names its nodes (LaunchSpec.nodes); a modelled one is numbered.
        numbered = [f"{node_name}-{n}" for n in range(self.topo.n_nodes)]
        self.node_names = [node_name] if fleet is None else list(node_names or numbered)
        self.nodes_down: set[int] = set()  # nodes the executor lost (loop_fleet.py)
        # An executor's fleet with no node yet (loop_fleet.py): a placeholder topology, never
        # scheduled on, until the executor's first fleet replaces it.
        self.fleet_pending = fleet is not None and node_names is not None and not node_names
        if self.fleet_pending:
            self.node_names, self.all_devices = [], []
        self.fleet_version: int | None = getattr(executor, "fleet_version", None)
        self.fleet_view = FleetView()  # published by _sync_fleet (GET /v1/nodes reads it)
        self._init_health(settings.hot_spares)  # strikes, drains, hot spares (loop_health.py)
        self._init_burn_in()  # diagnostic runs of nodes back from a drain (loop_burnin.py)
        self.pol = build_policies(settings.policy)
        self.speeds = _speeds(flavor)
        self.mirror = Mirror(
            self.topo,
            self.node_devices,
            QueueConfig.build(queues_spec([], settings.min_runtime_s), self.topo),
            self.pol.ordering.key,
        )
        self.allocation = Allocation()  # the allocator's periodic solve (hetero profile)
        self.node_id = 0
        self.schedulable = True
        # Held by the scheduler thread for a whole tick (and by recovery): never taken by a
        # request handler. `lock` only guards the `schedulable` flag the API may set; no one
        # holds it across I/O.
        self.tick_lock = threading.RLock()
        self.lock = threading.Lock()
        self.view = LoopView()
        self.why = WhyBook()  # the last pass's blockers, for GET /v1/jobs/{id}/why
        self.progress = ProgressBook(executor)  # metrics files and API reports
        self._ckpt_read: dict[int, float] = {}  # job id -> when its progress file was read
        self.env_box: EnvBox | None = None  # set by the service: env values are stored sealed
        self.wake_event = threading.Event()
        self.queues_dirty = self.dirty = True
        self._init_gates_and_limits()
        self.tick_now = 0.0  # the running tick's clock reading (one per tick)
        self._last_cycle = 0.0
        self._last_beat = 0.0
        self._last_cancel_scan = 0.0
        self.cancel_hint: set[int] = set()  # API threads add; the loop takes them all at once
        self._hint_lock = threading.Lock()
        self._new_alloc: dict[int, m.Allocation] = {}
        self._starting: set[tuple[int, int]] = set()
        self._preempt_wait: dict[int, float] = {}  # see _preempt_waits
        self._retry_memo: tuple[Plan, dict[int, float | None]] | None = None  # see _retry_by
        self.on_error: Callable[[], object] | None = None  # set by the service: recovery
        self.db_lock_check: Callable[[], bool] | None = None  # set by the service
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self._init_liveness()
        # None without a power policy (loop_power.py); attached at the first fleet if pending.
        self.power = None if self.fleet_pending else LivePower.attach(self)
        if self.spares is not None:
            self.spares.hold(self.mirror.state)

    def _init_liveness(self) -> None:
        """Liveness, for /healthz: when the last tick finished, and how many ticks in a row
        have raised since."""
        self.last_tick_monotonic = self.clock.monotonic()
        self.tick_failures = 0
        self.healthy = True
        self.tick_errors = Counter(
            "cortex_scheduler_tick_failures",
            "Scheduler ticks that raised",
            registry=self.metrics.registry,
        )

    def _set_retry(self, base_s: float | None, max_s: float | None, exit75: int | None) -> None:
        """The retry parameters: drive/data/run_rules.csv's, unless the settings give them."""
        r = self.rules
        base_s = r.retry_backoff_base_s if base_s is None else base_s
        max_s = r.retry_backoff_max_s if max_s is None else max_s
        exit75 = r.max_exit75_requeues if exit75 is None else exit75
        if base_s < 0 or max_s < 0:
            raise ValueError("retry_backoff_base_s, retry_backoff_max_s: must be >= 0")
        if exit75 < 0:
            raise ValueError("max_exit75_requeues: must be >= 0")
        self.retry_backoff_base_s = float(base_s)
        self.retry_backoff_max_s = float(max_s)
        self.max_exit75_requeues = int(exit75)

    # ---- wiring ---------------------------------------------------------------------------
    def wake(self) -> None:
        self.wake_event.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cortex-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake_event.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # An executor that queues work off the tick (the Ray executor's teardowns) finishes it
        # before the service exits: a gang torn down by the last tick would otherwise keep its
        # placement group and agents until the next start's sweep, or for good.
        drain = getattr(self.executor, "drain", None)
        if callable(drain):
            drain(DRAIN_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake_event.wait(self.settings.tick_s)
            # Let events that arrive together share a tick (a burst of submissions, say).
            time.sleep(MIN_TICK_S)
            self.wake_event.clear()
            try:
                self.tick()
            except Exception as err:
                self._tick_failed(err)

    def _tick_failed(self, err: Exception) -> None:
        """Report, count and back off. The tick's transaction rolled back, but its in-memory
        changes did not: rebuild the mirror from the store, the way a restart would."""
        self.tick_failures += 1
        self.tick_errors.inc()
        log.exception("scheduler tick failed (%d in a row); resynchronizing", self.tick_failures)
        if self.tick_failures >= UNHEALTHY_AFTER and self.healthy:
            self.healthy = False
            log.error("scheduler unhealthy: %d ticks in a row failed", self.tick_failures)
        try:
            with self.sessions.begin() as s:
                store.event(
                    s, "tick", f"scheduler tick failed: {err!r}"[:1000], at=self.clock.time()
                )
        except Exception:
            log.exception("could not record the failed tick")
        delay = min(self.settings.tick_s * 2 ** min(self.tick_failures, 20), FAIL_BACKOFF_MAX_S)
        if self._stop.wait(delay):
            return
        if self.on_error is not None:
            try:
                self.on_error()
            except Exception:
                log.exception("resynchronization failed")

    def _init_gates_and_limits(self) -> None:
        self.init_gates()  # loop_gates.py: holds, dependencies, arrays
        self.init_limits()  # loop_limits.py: time limits

    def reset(self) -> None:
        """Forget the in-memory mirror (recovery rebuilds it from the store)."""
        self.mirror.reset()
        self.parked.clear()
        self._new_alloc.clear()
        self.queues_dirty = True
        self._last_cancel_scan = 0.0  # hints taken by a failed tick: the next tick scans all

    # ---- model helpers --------------------------------------------------------------------
    def speed(self, kind: str, _flavor: int) -> float:
        return self.speeds.get(kind, 1.0)

    def estimate_s(self, job: Job, flavor: int, gang: int) -> float:
        """Backfill's runtime estimate, by the twin's rule (drive/run_estimate.py): the job's
        spec gives its work, checkpoint writes (or its checkpoint's size over the fleet's
        bandwidth: `mem_job`) and interval; its ended runs the work they kept and the restart
        overhead it owes (booked as each ends, loop_exits.py `_book_run`). The loop models no
        failures, so a job without an interval of its own checkpoints at the shared fallback
        interval."""
        speed = run_estimate.run_speed(job, self.speed(job.kind, flavor), gang)
        tau = run_estimate.interval_s(job, None, None, self.rules.fallback_checkpoint_interval_s)
        return run_estimate.estimate_s(job, speed, tau)

    def mem_job(self, row: Any) -> Job:
        """A scheduler Job from a jobs row (an ORM object or a Row with the same columns; a new
        submission's row names no work done or overhead owed: none yet)."""
        spec = JobSpec.model_validate(row.spec)
        job = Job.from_spec(row.id, spec, 0, spec.write_s(self.topo.spec.storage_write_gbps))
        job.submit_s = row.submitted_at
        job.state = JobState(row.state)
        job.restarts = row.failures + row.preemptions
        job.done_s = min(getattr(row, "work_done_s", 0.0) or 0.0, job.work_s)
        job.owed_overhead_s = getattr(row, "restart_owed_s", 0.0) or 0.0
        return job

    def _resolve(self, job: Job) -> Reason | None:
        """Set the queue index, priority and eligible flavors; why the job can never be queued
        (drive/intake.py, as the twin and the API decide it), if so."""
        mi = self.mirror
        return intake.admit(job, mi.queues, self.topo.flavors, mi.state.gpn, mi.state.total_gpus)

    def rebuild(self, s: Session) -> None:
        """Rebuild the cluster state after the queues changed (their count sizes the state)."""
        # Cleared before the read: a change the API commits after this read sets it again, and
        # the next tick rebuilds (cleared after, that change would wait for another one).
        self.queues_dirty = False
        queues = QueueConfig.build(
            queues_spec(store.queues(s), self.settings.min_runtime_s), self.topo
        )
        self.mirror.rebuild(queues, self._resolve)
        self.dirty = True

    # ---- the tick -------------------------------------------------------------------------
    def tick(self) -> None:
        with self.tick_lock:
            self._tick()
            self.publish()
        self.tick_failures = 0
        self.healthy = True
        self.last_tick_monotonic = self.clock.monotonic()

    def _tick(self) -> None:
        self.ticks += 1
        if not self._fleet_ready():  # no fleet yet (loop_fleet.py): jobs stay queued
            return
        # The one `now` of this tick: every row it writes carries it.
        now = self.tick_now = self.clock.time()
        stops: list[tuple[int, int, str]] = []
        # Read new submissions and cancel requests without the write lock: only this loop
        # changes a submitted job's state, so what it reads here cannot change under it.
        with self.sessions() as r:
            unseen = store.unseen_jobs(r)
            cancels = self._cancel_candidates(r, now)
        new = [(row, self.mem_job(row)) for row in unseen if row.state == "queued"]
        exits = self.executor.poll()
        # Every intent of this tick commits in one transaction (one WAL flush); the signals
        # and launches it records happen only after that commit.
        # No autoflush: the unit of work flushes once, at commit, in batches, instead of
        # before every lookup (most of a busy tick's cost otherwise).
        with self.sessions.begin() as s, s.no_autoflush:
            if self.queues_dirty:
                self.rebuild(s)
            if unseen:
                self._ingest(s, [row.id for row in unseen], new, now)
            stops += self._cancels(s, cancels, now)
            exits = self._burn_in_exits(s, exits, now)  # the jobs' exits (loop_burnin.py)
            for e in exits:
                self._exit(s, e, now)
            if self._starting:
                self._check_started(s)
            self._tell_unattributed(s, now)
            self._sync_fleet(s, now)
            self._sync_health(s, now)
            evacuate = self._evacuate(now)  # jobs on nodes drained with a near deadline
            if evacuate.preemptions:
                stops += self._persist(s, evacuate, now)
            self.run_gates(s, now, [e.job_id for e in exits] + cancels)
            stops += self.run_limits(s, now)
            if self.mirror.due(now):
                self.dirty = True  # a retry delay ended
            due = self.mirror.pending and now - self._last_cycle >= IDLE_CYCLE_S
            # A pass also when the only waiting jobs wait out a retry backoff: it starts
            # nothing, but its record is what their start estimates are made from.
            waits = self.mirror.pending or self.mirror.backoff
            if self.schedulable and (self.dirty or due) and waits:
                self._refresh_checkpoints(now)
                stops += self._persist(s, self._schedule(now), now)
            if self.power is not None:  # pauses when the power budget shrinks
                stops += self._persist(s, self.power.rebalance(now), now)
            launches = self._claim_launches(s, now)
            # Published before the commit: a reader that sees a job `running` in the store
            # then finds its devices in the view (the API shows them only for running jobs).
            self.publish()
        self._new_alloc.clear()
        for jid, attempt, why in stops:
            self._terminate(jid, attempt, why)
        if launches:
            self._launch(launches)
        self._burn_in_act()
        if now - self._last_beat >= HEARTBEAT_S:
            self._heartbeat(now)

    def _ingest(self, s: Session, ids: list[int], new: list[tuple[Any, Job]], now: float) -> None:
        store.mark_seen(s, ids)
        # Only jobs with a gate row need the lookup. A hold whose row came after `unseen` was
        # read was asked for before its commit (api/holds.py): run_gates parks the job.
        gated = self.park_gated(s, [job for row, job in new if row.gated])
        for _row, job in new:
            reason = self._resolve(job)
            if reason is not None:
                # Also a job the API took but that cannot fit the queues as they are now (its
                # quota cut since, or stored by an API process with an older view).
                row = s.get(m.Job, job.id)
                assert row is not None
                why = intake.describe(reason)
                store.move(s, row, JobState.REJECTED, why, now)
                row.ended_at = now
                store.event(s, "rejected", why, job_id=row.id, team=row.team, at=now)
                continue
            if job.id not in gated:
                self.mirror.enqueue(job)
        self.dirty = True

    def _tell_unattributed(self, s: Session, now: float) -> None:
        """An event, once per job, for a metrics file whose lines name neither `ts` nor
        `attempt`: they are ignored (control/progress.py), which went unsaid."""
        for job_id, n in self.progress.take_unattributed().items():
            row = s.get(m.Job, job_id)
            if row is None:
                continue
            msg = (
                f"progress: {n} line(s) of the metrics file name neither ts nor attempt and "
                "are ignored; write attempt (from CORTEX_ATTEMPT) or ts (said once per job)"
            )
            store.event(s, "progress", msg, job_id=job_id, team=row.team, at=now)
            self.metrics.progress_unattributed.inc()

    def _preempt_waits(self, plan: Plan, now: float) -> dict[int, float]:
        """Waiting jobs whose last victim search found none -> when their protected possible
        victims hold them (the retry_by_s _persist hands preempt_backoff), kept across the
        passes that skip their search (backing off) until it passes or the job starts."""
        waits = self._preempt_wait
        for jid, by in self._retry_by(plan, now).items():
            if by is None:
                waits.pop(jid, None)
            else:
                waits[jid] = by
        started = {st.job.id for st in plan.starts}
        jobs = self.mirror.jobs
        for jid in [j for j, t in waits.items() if t <= now or j in started or j not in jobs]:
            del waits[jid]
        return dict(waits)

    def _schedule(self, now: float) -> Plan:
        view = self.power.view(now) if self.power is not None else None
        mi = self.mirror
        progress, grace_s = self.progress, self.settings.grace_s

        def lost_s(job: Job) -> float:
            return preemptions.lost_s(job, now, progress.known_checkpoint_at(job.id), grace_s)

        snap = self.allocation.snapshot(
            self.pol,
            Snapshot(now, mi.state, mi.pending, self.speed, self.estimate_s, view, lost_s=lost_s),
        )
        t0 = time.perf_counter()
        plan = schedule(snap, self.pol, deep=True)
        waits = {j: mi.jobs[j] for j in mi.backoff if j in mi.jobs}  # for start estimates
        self.why.record(snap, plan, mi.backoff, self._preempt_waits(plan, now), waits)
        if self.power is not None:
            self.power.booked(plan, now)
        self.metrics.cycle.observe(time.perf_counter() - t0)
        self._last_cycle = now
        self.dirty = False
        return plan

    def _refresh_checkpoints(self, now: float) -> None:
        """Before a pass: read the progress files of the running jobs whose preemption cost is
        the work since their last checkpoint (they do not checkpoint on SIGTERM within the
        grace period), each at most every CHECKPOINT_READ_S and at most CHECKPOINT_READS a
        tick, so that the victim search compares what they would lose, not whatever someone
        last looked at."""
        mi, grace_s = self.mirror, self.settings.grace_s
        due: list[tuple[int, int, float]] = []
        for jid, attempt in mi.attempt.items():
            job = mi.jobs.get(jid)
            if job is None or (job.ckpt_on_signal and (job.ckpt_write_s or 0.0) <= grace_s):
                continue
            if now - self._ckpt_read.get(jid, -math.inf) >= CHECKPOINT_READ_S:
                due.append((jid, attempt, job.run_start_s))
                if len(due) == CHECKPOINT_READS:
                    break
        for jid, _, _ in due:
            self._ckpt_read[jid] = now
        if len(self._ckpt_read) > 4 * max(len(mi.attempt), 256):
            self._ckpt_read = {j: t for j, t in self._ckpt_read.items() if j in mi.attempt}
        self.progress.refresh(due, now)

    def _heartbeat(self, now: float) -> None:
        with self.sessions.begin() as s:
            self.schedulable = store.node_heartbeat(s, self.node_id, now)
        self._last_beat = now
        # One service per PostgreSQL database (control/homelock.py): its lock can be lost
        # with its connection, and another service take the database; none of this one's
        # starts then, until the lock is its own again (checked at each beat).
        if self.db_lock_check is not None and not self.db_lock_check():
            log.error("another service holds the database's lock: this one starts no job")
            self.schedulable = False

    # ---- read side (API, metrics): the published view, no lock ------------------------------
    def publish(self) -> None:
        """Replace the view other threads read (called by the scheduler thread)."""
        mi = self.mirror
        self.view = LoopView(
            devices=mi.devices_by_job(),
            usage=mi.usage(),
            gpus_used=len(mi.owner),
            ticks=self.ticks,
        )

    def gpus_by_flavor(self) -> dict[str, tuple[int, int]]:
        return {self.flavor: (self.view.gpus_used, len(self.all_devices))}

    def devices_of(self, job_id: int) -> list[int] | None:
        devs = self.view.devices.get(job_id)
        return list(devs) if devs else None

    def usage(self) -> dict[str, tuple[int, int]]:
        """Per queue name: (GPUs held, jobs pending)."""
        return dict(self.view.usage)
