"""The scheduler loop: driver 2 of the scheduling cycle, on the wall clock.

Each tick reads facts (new submissions, cancel requests, process exits), applies them through
the transition table, snapshots, calls the same `schedule` the twin calls, persists the plan and
only then applies it through the executor. The store is the source of truth: every step commits
its intent before it acts (an allocation row before a launch, `stopping` before a SIGTERM), so
that recovery after a kill -9 can finish or undo whatever was in flight.

Only this loop changes the state of a job that has been submitted; the API inserts jobs and sets
`cancel_requested`, then wakes the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store
from cortex.control.config import Settings
from cortex.control.db import Sessions
from cortex.control.fleet import local_fleet, queues_spec
from cortex.control.metrics import Metrics
from cortex.fleet.spec import FleetSpec
from cortex.fleet.topology import Topology, build
from cortex.scheduler.cycle import schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.registry import policies as build_policies
from cortex.scheduler.snapshot import Plan, Snapshot
from cortex.scheduler.state import ClusterState, Placement
from cortex.workload.job import Job
from cortex.workload.spec import JobSpec
from cortex.workload.states import PENDING, TERMINAL, JobState
from cortex.workload.throughput import ThroughputTable

log = logging.getLogger("cortex.control")

# A deep pass also runs without events this often while jobs wait: preemption floors and
# backfill reservations depend on time passing.
IDLE_CYCLE_S = 1.0
HEARTBEAT_S = 5.0
PREEMPT_BACKOFF_MAX_S = 300.0
CANCEL_SCAN_S = 30.0
MIN_TICK_S = 0.01


class ExecutorLike(Protocol):
    """What the loop needs from an executor (cortex.control.executor.LocalExecutor)."""

    def launch(self, spec: Any) -> Any: ...
    def terminate(self, job_id: int, attempt: int, reason: str = ...) -> None: ...
    def poll(self) -> list[Any]: ...
    def adopt(self, handle: Any) -> bool: ...
    def kill(self, handle: Any) -> None: ...
    def live_handles(self) -> list[Any]: ...
    def log_paths(self, job_id: int, attempt: int) -> tuple[Path, Path]: ...


class SchedulerLoop:
    """Holds the in-memory mirror (ClusterState, PendingQueues, Job objects) of what the store
    says, rebuilt from the store at start by `cortex.control.recovery`."""

    def __init__(
        self,
        settings: Settings,
        sessions: Sessions,
        executor: ExecutorLike,
        *,
        flavor: str,
        devices: list[int],
        uses_gpus: bool,
        node_name: str,
        metrics: Metrics | None = None,
        launch_spec: Callable[..., Any] | None = None,
        handle_from_dict: Callable[[dict[str, Any]], Any] | None = None,
        fleet: FleetSpec | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.executor = executor
        self.flavor = flavor
        self.all_devices = list(devices)
        self.uses_gpus = uses_gpus
        self.node_name = node_name
        self.metrics = metrics or Metrics()
        if launch_spec is None or handle_from_dict is None:
            from cortex.control.executor import Handle, LaunchSpec

            launch_spec = launch_spec or LaunchSpec
            handle_from_dict = handle_from_dict or Handle.from_dict
        self.launch_spec = launch_spec
        self.handle_from_dict = handle_from_dict
        # The local machine is one node; benchmarks pass a modelled multi-node `fleet` whose
        # node n owns device ids n*g .. n*g+g-1.
        self.topo: Topology = build(fleet or local_fleet(flavor, len(devices), node_name))
        if fleet is None:
            self.node_devices = [list(devices)]
        else:
            gpn = self.topo.flavor_gpus_per_node
            self.node_devices, first = [], 0
            for f in self.topo.node_flavor:
                self.node_devices.append(list(range(first, first + gpn[f])))
                first += gpn[f]
            self.all_devices = [d for ds in self.node_devices for d in ds]
        self.pol = build_policies(settings.policy)
        table = ThroughputTable.load()
        self.speeds: dict[str, float] = {}
        for kind in table.kinds():
            try:
                self.speeds[kind] = table.speed(kind, flavor)
            except KeyError:
                self.speeds[kind] = 1.0  # a GPU the table does not know: take estimates as given
        self.queues: QueueConfig = QueueConfig.build(
            queues_spec([], settings.min_runtime_s), self.topo
        )
        self.state = ClusterState(self.topo, self.queues)
        self.pending = PendingQueues(len(self.queues.queues), self.pol.ordering.key)
        self.jobs: dict[int, Job] = {}  # every job not yet final
        self.placement: dict[int, Placement] = {}  # jobs holding capacity in self.state
        self.admitted: dict[int, Job] = {}  # placed, waiting for their devices to free up
        self.stopping: set[int] = set()  # preempted, process still exiting; not in self.state
        self.attempt: dict[int, int] = {}  # running jobs: current attempt
        self.owner: dict[int, int] = {}  # device -> job id holding it now
        self.node_id = 0
        self.schedulable = True
        self.lock = threading.RLock()
        self.wake_event = threading.Event()
        self.queues_dirty = True
        self.dirty = True
        self._last_cycle = 0.0
        self._last_beat = 0.0
        self._last_cancel_scan = 0.0
        self.cancel_hint: set[int] = set()  # API threads add; the loop takes them all at once
        self._hint_lock = threading.Lock()
        self._new_alloc: dict[int, m.Allocation] = {}
        self.on_error: Callable[[], object] | None = None  # set by the service: recovery
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.last_tick_monotonic = time.monotonic()  # end of the last tick that succeeded

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

    def _run(self) -> None:
        while not self._stop.is_set():
            self.wake_event.wait(self.settings.tick_s)
            # Let events that arrive together share a tick (a burst of submissions, say).
            time.sleep(MIN_TICK_S)
            self.wake_event.clear()
            try:
                self.tick()
            except Exception:
                # The tick's transaction rolled back, but its in-memory changes did not: rebuild
                # the mirror from the store, the way a restart would.
                log.exception("scheduler tick failed; resynchronizing from the store")
                time.sleep(self.settings.tick_s)
                if self.on_error is not None:
                    try:
                        self.on_error()
                    except Exception:
                        log.exception("resynchronization failed")

    def reset(self) -> None:
        """Forget the in-memory mirror (recovery rebuilds it from the store)."""
        self.jobs.clear()
        self.placement.clear()
        self.admitted.clear()
        self.stopping.clear()
        self.attempt.clear()
        self.owner.clear()
        self._new_alloc.clear()
        self.queues_dirty = True
        self._last_cancel_scan = 0.0  # hints taken by a failed tick: the next tick scans all

    # ---- model helpers --------------------------------------------------------------------
    def speed(self, kind: str, _flavor: int) -> float:
        return self.speeds.get(kind, 1.0)

    def estimate_s(self, job: Job, flavor: int, gang: int) -> float:
        return job.remaining_s * job.gpus / gang / self.speed(job.kind, flavor)

    def mem_job(self, row: Any) -> Job:
        """A scheduler Job from a jobs row (an ORM object or a Row with the same columns)."""
        spec = JobSpec.model_validate(row.spec)
        job = Job.from_spec(row.id, spec, 0, spec.checkpoint_write_s)
        job.submit_s = row.submitted_at
        job.state = JobState(row.state)
        job.restarts = row.failures + row.preemptions
        return job

    def _resolve(self, job: Job) -> str | None:
        """Set the queue index and priority; the reason the job cannot be queued, if any."""
        try:
            job.queue_idx = self.queues.index(job.team)
        except KeyError:
            return f"UnknownQueue: team {job.team} has no queue"
        prio = self.queues.priority_classes.get(job.priority_class)
        if prio is None:
            return f"UnknownPriorityClass: {job.priority_class}"
        job.priority = prio
        if job.flavors:
            job.flavor_ids = tuple(i for i, f in enumerate(self.topo.flavors) if f in job.flavors)
            if not job.flavor_ids:
                return f"NoEligibleFlavor: {', '.join(job.flavors)}"
        return None

    def rebuild(self, s: Session) -> None:
        """Rebuild the cluster state after the queues changed (their count sizes the state)."""
        # Cleared before the read: a change the API commits after this read sets it again, and
        # the next tick rebuilds (cleared after, that change would wait for another one).
        self.queues_dirty = False
        self.queues = QueueConfig.build(
            queues_spec(store.queues(s), self.settings.min_runtime_s), self.topo
        )
        self.state = ClusterState(self.topo, self.queues)
        self.pending = PendingQueues(len(self.queues.queues), self.pol.ordering.key)
        for job in self.jobs.values():
            self._resolve(job)
        for jid, pl in self.placement.items():
            job = self.jobs[jid]
            self.state.start(job, job.queue_idx, 0, pl)
        for job in self.jobs.values():
            if job.state in PENDING and job.queue_idx >= 0:
                self.pending.add(job)
        self.dirty = True

    # ---- the tick -------------------------------------------------------------------------
    def tick(self) -> None:
        with self.lock:
            self.ticks += 1
            now = time.time()
            stops: list[tuple[int, int, str]] = []
            # Read new submissions and cancel requests without the write lock: only this loop
            # changes a submitted job's state, so what it reads here cannot change under it.
            with self.sessions() as r:
                unseen = r.execute(
                    select(
                        m.Job.id,
                        m.Job.state,
                        m.Job.spec,
                        m.Job.submitted_at,
                        m.Job.failures,
                        m.Job.preemptions,
                    )
                    .where(m.Job.seen.is_(False))
                    .order_by(m.Job.id)
                ).all()
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
                for e in exits:
                    self._exit(s, e, now)
                due = self.pending and now - self._last_cycle >= IDLE_CYCLE_S
                if self.schedulable and (self.dirty or due) and self.pending:
                    stops += self._persist(s, self._schedule(now), now)
                launches = self._claim_launches(s, now)
            self._new_alloc.clear()
            for jid, attempt, why in stops:
                self._terminate(jid, attempt, why)
            if launches:
                self._launch(launches)
            if now - self._last_beat >= HEARTBEAT_S:
                self._heartbeat(now)
            self.last_tick_monotonic = time.monotonic()

    def _terminate(self, job_id: int, attempt: int, why: str) -> None:
        try:
            self.executor.terminate(job_id, attempt, reason=why)
        except Exception:
            log.exception("terminate job %s attempt %s", job_id, attempt)

    def _ingest(self, s: Session, ids: list[int], new: list[tuple[Any, Job]], now: float) -> None:
        s.execute(update(m.Job).where(m.Job.id.in_(ids)).values(seen=True))
        for _row, job in new:
            why = self._resolve(job)
            if why is not None:
                row = s.get(m.Job, job.id)
                assert row is not None
                store.move(s, row, JobState.REJECTED, why, now)
                row.ended_at = now
                store.event(s, "rejected", why, job_id=row.id, team=row.team)
                continue
            self.jobs[job.id] = job
            self.pending.add(job)
        self.dirty = True

    def request_cancel(self, job_id: int) -> None:
        """The API recorded a cancel request: look at it on the next tick."""
        with self._hint_lock:
            self.cancel_hint.add(job_id)
        self.wake()

    def _cancel_candidates(self, r: Session, now: float) -> list[int]:
        """Jobs with a cancel request still to act on. The API's hint names them; a full scan
        now and then covers requests recorded by an API process other than this one.
        The hints are taken before the query: the API commits its request before it adds the
        hint, so the query sees every request taken, and a hint added later waits for the next
        tick instead of being cleared unread."""
        with self._hint_lock:
            hint, self.cancel_hint = self.cancel_hint, set()
        q = select(m.Job.id).where(
            m.Job.cancel_requested.is_(True),
            m.Job.state.in_([*(st.value for st in PENDING), "admitted", "running"]),
            or_(m.Job.stopping.is_(None), m.Job.stopping != "cancel"),
        )
        if now - self._last_cancel_scan >= CANCEL_SCAN_S:
            self._last_cancel_scan = now
        elif hint:
            q = q.where(m.Job.id.in_(sorted(hint)))
        else:
            return []
        return list(r.scalars(q).all())

    def _cancels(self, s: Session, ids: list[int], now: float) -> list[tuple[int, int, str]]:
        if not ids:
            return []
        rows = s.scalars(select(m.Job).where(m.Job.id.in_(ids))).all()
        stops = []
        for row in rows:
            job = self.jobs.get(row.id)
            if row.state == JobState.RUNNING.value:
                row.stopping = "cancel"
                stops.append((row.id, row.attempt, "cancel"))
                store.event(s, "stop", "SIGTERM: cancel", job_id=row.id, team=row.team)
                continue
            if row.state not in ("queued", "requeued", "admitted"):
                continue
            if job is not None and job.state in PENDING:
                self.pending.remove(job)
            elif job is not None and row.id in self.admitted:
                self._release(s, row.id, now)
                del self.admitted[row.id]
            store.move(s, row, JobState.CANCELLED, "cancelled before it ran", now)
            row.ended_at = now
            self.jobs.pop(row.id, None)
            self.dirty = True
        return stops

    def _release(self, s: Session, job_id: int, now: float) -> None:
        """Give back capacity and devices and close the allocation rows."""
        job = self.jobs.get(job_id)
        if job_id in self.placement and job is not None:
            self.state.stop(job, job.queue_idx)
            del self.placement[job_id]
        self.stopping.discard(job_id)
        self.attempt.pop(job_id, None)
        for d in [d for d, j in self.owner.items() if j == job_id]:
            del self.owner[d]
        s.execute(
            update(m.Allocation)
            .where(and_(m.Allocation.job_id == job_id, m.Allocation.active.is_(True)))
            .values(active=False, released_at=now)
        )
        self.dirty = True

    def _requeue(self, s: Session, row: m.Job, job: Job | None, reason: str, now: float) -> None:
        store.move(s, row, JobState.REQUEUED, reason, now)
        row.stopping = None
        if job is not None:
            job.state = JobState.REQUEUED
            job.restarts += 1
            job.est_cache = None
            self.pending.add(job)

    def _exit(self, s: Session, e: Any, now: float) -> None:
        row = s.get(m.Job, e.job_id)
        if row is None or row.attempt != e.attempt or row.state != JobState.RUNNING.value:
            log.info("stale exit %s", e)
            return
        job = self.jobs.get(row.id)
        self._release(s, row.id, now)
        row.exit_code = e.exit_code
        detail = f"{e.outcome}: {e.detail}" if e.detail else e.outcome
        store.event(s, "exit", f"attempt {e.attempt} {detail}", job_id=row.id, team=row.team)
        if row.cancel_requested or e.outcome == "cancelled":
            store.move(s, row, JobState.CANCELLED, detail, now)
            row.ended_at = now
            self.jobs.pop(row.id, None)
        elif e.outcome == "completed":
            store.move(s, row, JobState.COMPLETED, detail, now)
            row.ended_at = now
            self.jobs.pop(row.id, None)
        elif e.outcome == "preempted":
            store.move(s, row, JobState.PREEMPTED, detail, now)
            row.preemptions += 1
            self._requeue(s, row, job, "back to queue after preemption", now)
        else:
            store.move(s, row, JobState.FAILED, detail, now)
            row.failures += 1
            if row.failures <= self.settings.max_retries:
                self._requeue(
                    s, row, job, f"retry {row.failures} of {self.settings.max_retries}", now
                )
            else:
                row.ended_at = now
                row.stopping = None
                self.jobs.pop(row.id, None)
        if row.state in TERMINAL or row.state == JobState.FAILED.value:
            row.stopping = None

    def _schedule(self, now: float) -> Plan:
        snap = Snapshot(now, self.state, self.pending, self.speed, self.estimate_s)
        t0 = time.perf_counter()
        plan = schedule(snap, self.pol, deep=True)
        self.metrics.cycle.observe(time.perf_counter() - t0)
        self._last_cycle = now
        self.dirty = False
        return plan

    def _persist(self, s: Session, plan: Plan, now: float) -> list[tuple[int, int, str]]:
        """Record the plan's intents; return the SIGTERMs to send once they are durable."""
        stops = []
        for job_id in plan.preempt_failed:
            job = self.jobs[job_id]
            job.preempt_backoff_s = min(
                max(job.preempt_backoff_s * 2, self.settings.tick_s), PREEMPT_BACKOFF_MAX_S
            )
            job.next_preempt_try_s = now + job.preempt_backoff_s
        for p in plan.preemptions:
            job = p.job
            row = s.get(m.Job, job.id)
            assert row is not None
            if job.id in self.admitted:
                # Admitted but not launched (waiting for an earlier victim's devices): there is
                # no process to stop, so it goes straight back to the queue.
                del self.admitted[job.id]
                self._new_alloc.pop(job.id, None)
                self._release(s, job.id, now)
                self._requeue(s, row, job, f"preempted before launch ({p.reason.code.value})", now)
                continue
            row.stopping = "preempt"
            store.event(
                s,
                "stop",
                f"SIGTERM: preempted ({p.reason.code.value})",
                job_id=job.id,
                team=job.team,
            )
            # The preemptor is admitted onto these GPUs now; the victim's devices stay
            # taken (self.owner) until its process has exited.
            self.state.stop(job, job.queue_idx)
            del self.placement[job.id]
            self.stopping.add(job.id)
            stops.append((job.id, row.attempt, "preempt"))
        for st in plan.starts:
            job = st.job
            row = s.get(m.Job, job.id)
            assert row is not None
            self.pending.remove(job)
            store.move(s, row, JobState.ADMITTED, "quota reserved", now)
            job.state = JobState.ADMITTED
            job.run_start_s = now
            job.run_flavor = st.flavor
            job.run_gpus = st.gang_gpus
            job.alloc_gpus = st.alloc_gpus
            job.est_end_s = now + self.estimate_s(job, st.flavor, st.gang_gpus)
            job.preempt_backoff_s = 0.0
            job.next_preempt_try_s = 0.0
            self.state.start(job, job.queue_idx, st.flavor, st.placement)
            self.placement[job.id] = st.placement
            self.admitted[job.id] = job
            self._new_alloc[job.id] = alloc = m.Allocation(
                job_id=job.id,
                attempt=row.attempt + 1,
                node_id=self.node_id,
                flavor=self.topo.flavors[st.flavor],
                gpus=st.alloc_gpus,
                devices=None,
                handle=None,
                active=True,
                created_at=now,
            )
            s.add(alloc)
        return stops

    def _claim_launches(self, s: Session, now: float) -> list[tuple[int, int, Any]]:
        """Admitted jobs whose devices are free move to running with a new attempt number and
        their devices, in the caller's transaction; returns (job id, attempt, launch spec) to
        launch once that is committed."""
        out = []
        for job_id in sorted(self.admitted, key=lambda j: self.admitted[j].key):
            job = self.admitted[job_id]
            devices: list[int] = []
            for node, k in self.placement[job_id]:
                free = [d for d in self.node_devices[node] if d not in self.owner]
                if len(free) < k:
                    break  # preempted jobs still hold these devices
                devices += free[:k]
            else:
                out.append(self._claim(s, job, devices, now))
        return out

    def _claim(self, s: Session, job: Job, devices: list[int], now: float) -> tuple[int, int, Any]:
        row = s.get(m.Job, job.id)
        # Admitted in this transaction (not flushed yet), or in an earlier tick.
        alloc = self._new_alloc.pop(job.id, None) or store.active_allocation(s, job.id)
        assert row is not None and alloc is not None
        row.attempt += 1
        alloc.attempt = row.attempt
        alloc.devices = devices
        store.move(s, row, JobState.RUNNING, f"launching on {self.node_name} {devices}", now)
        if row.started_at is None:
            row.started_at = now
            self.metrics.queue_wait.observe(now - row.submitted_at)
        store.event(
            s, "start", f"attempt {row.attempt} on devices {devices}", job_id=row.id, team=row.team
        )
        spec = self.launch_spec(
            job_id=row.id,
            attempt=row.attempt,
            command=list(row.command),
            env=dict(row.env),
            working_dir=row.working_dir,
            devices=devices,
            nprocs=row.nprocs,
            uses_gpus=self.uses_gpus,
            checkpoint_dir=None,  # the executor's per-job directory, kept across attempts
        )
        job.state = JobState.RUNNING
        del self.admitted[job.id]
        self.attempt[job.id] = row.attempt
        for d in devices:
            self.owner[d] = job.id
        return job.id, row.attempt, spec

    def _launch(self, launches: list[tuple[int, int, Any]]) -> None:
        """Start the claimed runs, then store their handles (or their failures) in one commit."""
        handles: list[tuple[int, int, dict[str, Any]]] = []
        failed: list[_LaunchFailure] = []
        for job_id, attempt, spec in launches:
            try:
                handles.append((job_id, attempt, self.executor.launch(spec).to_dict()))
            except Exception as err:
                log.exception("launch of job %s failed", job_id)
                failed.append(_LaunchFailure(job_id, attempt, str(err)))
        with self.sessions.begin() as s:
            for job_id, attempt, handle in handles:
                s.execute(
                    update(m.Allocation)
                    .where(m.Allocation.job_id == job_id, m.Allocation.attempt == attempt)
                    .values(handle=handle)
                )
            for f in failed:
                self._exit(s, f, time.time())

    def _heartbeat(self, now: float) -> None:
        with self.sessions.begin() as s:
            s.execute(
                update(m.Node).where(m.Node.id == self.node_id).values(last_seen=now, healthy=True)
            )
            node = s.get(m.Node, self.node_id)
            self.schedulable = bool(node.schedulable) if node is not None else True
        self._last_beat = now

    # ---- read side (API, metrics) -----------------------------------------------------------
    def gpus_by_flavor(self) -> dict[str, tuple[int, int]]:
        with self.lock:
            return {self.flavor: (len(self.owner), len(self.all_devices))}

    def devices_of(self, job_id: int) -> list[int] | None:
        with self.lock:
            devs = sorted(d for d, j in self.owner.items() if j == job_id)
        return devs or None

    def usage(self) -> dict[str, tuple[int, int]]:
        """Per queue name: (GPUs held, jobs pending)."""
        with self.lock:
            out: dict[str, tuple[int, int]] = {}
            for q in self.queues.queues:
                used = sum(self.state.usage[q.index])
                out[q.name] = (used, len(self.pending.lists[q.index]))
            return out


class _LaunchFailure:
    """An exit record for a launch that raised: counted as a failed run."""

    outcome = "failed"
    exit_code = None

    def __init__(self, job_id: int, attempt: int, detail: str) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.detail = f"launch failed: {detail}"
