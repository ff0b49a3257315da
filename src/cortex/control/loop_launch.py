"""The scheduler loop's launch side: record a plan's intents (preemptions, admissions), claim
devices for admitted jobs, launch them and store their handles. A mixin of
`cortex.control.loop.SchedulerLoop`; every intent commits before the act it names."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import preemptions, store
from cortex.control.config import Settings
from cortex.control.db import Sessions
from cortex.control.envcrypt import EnvBox
from cortex.control.metrics import Metrics
from cortex.control.mirror import Mirror
from cortex.control.progress import ProgressBook, protocol_env
from cortex.drive import protection, runs
from cortex.fleet.topology import Topology
from cortex.scheduler.cycle import Policies
from cortex.scheduler.snapshot import Plan
from cortex.workload.job import Job
from cortex.workload.states import JobState

log = logging.getLogger("cortex.control")
# A running job's reason (the REASON column) from its claim until its processes run, then.
LAUNCHING, RUNNING = "launching on ", "running on "


class LaunchMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    settings: Settings
    sessions: Sessions
    executor: Any
    metrics: Metrics
    topo: Topology
    mirror: Mirror
    rules: runs.RunRules
    pol: Policies
    node_id: int
    node_name: str
    uses_gpus: bool
    launch_spec: Callable[..., Any]
    _new_alloc: dict[int, m.Allocation]
    env_box: EnvBox | None
    progress: ProgressBook
    tick_now: float
    # Launched runs whose executor has not yet said that they run (`is_running`).
    _starting: set[tuple[int, int]]
    _retry_memo: tuple[Plan, dict[int, float | None]] | None

    if TYPE_CHECKING:  # SchedulerLoop's, ExitsMixin's and FleetMixin's

        def _nodes_of(self, devices: list[int]) -> tuple[tuple[str, tuple[int, ...]], ...]: ...

        def estimate_s(self, job: Job, flavor: int, gang: int) -> float: ...
        def _release(self, s: Session, job_id: int, now: float) -> None: ...
        def _requeue(
            self,
            s: Session,
            row: m.Job,
            job: Job | None,
            reason: str,
            now: float,
            delay_s: float = 0,
        ) -> None: ...
        def _exit(self, s: Session, e: Any, now: float) -> None: ...

    def _retry_by(self, plan: Plan, now: float) -> dict[int, float | None]:
        """Each job of the plan's failed victim searches -> protection.retry_by_s: the moment
        the protected jobs it may evict hold its GPUs (None: none of them is protected). Kept
        for the plan: the pass's why record (loop._preempt_waits) and _persist both read it."""
        memo = self._retry_memo
        if memo is not None and memo[0] is plan:
            return memo[1]
        mi = self.mirror
        out: dict[int, float | None] = {}
        if plan.preempt_failed:  # the jobs still protected, as the twin keeps them
            placed = (job for jid in mi.placement if (job := mi.jobs.get(jid)) is not None)
            held = protection.protected(placed, mi.queues, now)
            may_evict = self.pol.preemption.may_evict
            for job_id in plan.preempt_failed:
                job = mi.jobs[job_id]
                out[job_id] = protection.retry_by_s(job, held, mi.queues, may_evict)
        self._retry_memo = (plan, out)
        return out

    def _persist(self, s: Session, plan: Plan, now: float) -> list[tuple[int, int, str]]:
        """Record the plan's intents; return the SIGTERMs to send once they are durable."""
        stops = []
        mi = self.mirror
        retry_by = self._retry_by(plan, now)
        for job_id in plan.preempt_failed:
            least = mi.queues.least_min_runtime_s
            runs.preempt_backoff(
                mi.jobs[job_id], now, least, self.settings.tick_s, self.rules, retry_by[job_id]
            )
        for p in plan.preemptions:
            job = p.job
            row = s.get(m.Job, job.id)
            assert row is not None
            launched = not mi.was_admitted(job.id)
            runs.evicted(job, p.reason.code)  # its queue's preemption budget counts these
            preemptions.on_preempt(
                s, row, p.reason, now, launched=launched, grace_s=self.settings.grace_s,
                progress=self.progress,
            )  # fmt: skip
            if not launched:
                # Admitted but not launched (waiting for an earlier victim's devices): there is
                # no process to stop, so it goes straight back to the queue.
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
                at=now,
            )
            # The preemptor is admitted onto these GPUs now; the victim's devices stay
            # taken (mirror.owner) until its process has exited.
            mi.stop(job)
            stops.append((job.id, row.attempt, "preempt"))
        for st in plan.starts:
            self._admit(s, st, now)
        return stops

    def _admit(self, s: Session, st: Any, now: float) -> None:
        job = st.job
        row = s.get(m.Job, job.id)
        assert row is not None
        self.mirror.dequeue(job)
        store.move(s, row, JobState.ADMITTED, "quota reserved", now)
        job.state = JobState.ADMITTED
        end = now + self.estimate_s(job, st.flavor, st.gang_gpus)
        runs.begin(job, now, st.flavor, st.gang_gpus, st.alloc_gpus, end)
        self.mirror.admit(job, st.flavor, st.placement)
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

    def _claim_launches(self, s: Session, now: float) -> list[tuple[int, int, Any]]:
        """Admitted jobs whose devices are free move to running with a new attempt number and
        their devices, in the caller's transaction; returns (job id, attempt, launch spec) to
        launch once that is committed."""
        out = []
        admitted = self.mirror.admitted
        for job_id in sorted(admitted, key=lambda j: admitted[j].key):
            devices = self.mirror.free_devices(job_id)
            if devices is not None:  # else preempted jobs still hold some of them
                out.append(self._claim(s, admitted[job_id], devices, now))
        return out

    def _claim(self, s: Session, job: Job, devices: list[int], now: float) -> tuple[int, int, Any]:
        row = s.get(m.Job, job.id)
        # Admitted in this transaction (not flushed yet), or in an earlier tick.
        alloc = self._new_alloc.pop(job.id, None) or store.active_allocation(s, job.id)
        assert row is not None and alloc is not None
        row.attempt += 1
        alloc.attempt = row.attempt
        alloc.devices = devices
        store.move(s, row, JobState.RUNNING, f"{LAUNCHING}{self.node_name} {devices}", now)
        if row.started_at is None:
            row.started_at = now
            self.metrics.queue_wait.observe(now - row.submitted_at)
            self.metrics.admission_wait.labels(row.team).observe(now - row.submitted_at)
        store.event(
            s,
            "start",
            f"attempt {row.attempt} on devices {devices}",
            job_id=row.id,
            team=row.team,
            at=now,
        )
        spec = self.launch_spec(
            job_id=row.id,
            attempt=row.attempt,
            command=list(row.command),
            # Still sealed: opened in _launch, where a failure is a run's. The protocol's
            # variables from the spec are plain (open() passes unsealed values through).
            env={**(row.env or {}), **protocol_env(row.spec)},
            working_dir=row.working_dir,
            devices=devices,
            nprocs=row.nprocs,
            uses_gpus=self.uses_gpus,
            checkpoint_dir=None,  # the executor's per-job directory, kept across attempts
            team=row.team,
            nodes=self._nodes_of(devices),
        )
        self.mirror.claim(job, row.attempt, devices)
        return job.id, row.attempt, spec

    def _launch(self, launches: list[tuple[int, int, Any]]) -> None:
        """Start the claimed runs, then store their handles (or their failures) in one commit,
        stamped with the tick's `now`."""
        now = self.tick_now
        handles: list[tuple[int, int, dict[str, Any]]] = []
        failed: list[LaunchFailure] = []
        for job_id, attempt, spec in launches:
            try:
                spec = dataclasses.replace(spec, env=store.open_env(spec.env, self.env_box))
                handles.append((job_id, attempt, self.executor.launch(spec).to_dict()))
            except Exception as err:
                log.exception("launch of job %s failed", job_id)
                failed.append(LaunchFailure(job_id, attempt, str(err)))
        # An executor whose runs start after launch returns (the Ray executor's gangs wait
        # for their placement) says when they run; the local one has started them by now.
        watch = hasattr(self.executor, "is_running")
        with self.sessions.begin() as s:
            for job_id, attempt, handle in handles:
                store.set_handle(s, job_id, attempt, handle)
                if watch:
                    self._starting.add((job_id, attempt))
                else:
                    self._mark_running(s, job_id, attempt)
            for f in failed:
                self._exit(s, f, now)

    def _check_started(self, s: Session) -> None:
        """Launched (or adopted) runs that run now get the reason "running on ..." (in the
        tick's transaction); one that ended or moved on first is forgotten. An executor
        without `is_running` started its runs when launch returned."""
        running = getattr(self.executor, "is_running", None)
        for key in list(self._starting):
            job_id, attempt = key
            if self.mirror.attempt.get(job_id) != attempt:
                self._starting.discard(key)
            elif running is None or running(job_id, attempt):
                self._starting.discard(key)
                self._mark_running(s, job_id, attempt)

    def _mark_running(self, s: Session, job_id: int, attempt: int) -> None:
        """The REASON column said "launching on ..." for a whole run: once its processes run
        it says "running on ..." (not a state change: no transition row)."""
        row = s.get(m.Job, job_id)
        if (
            row is not None
            and row.state == JobState.RUNNING.value
            and row.attempt == attempt
            and row.reason.startswith(LAUNCHING)
        ):
            row.reason = RUNNING + row.reason.removeprefix(LAUNCHING)


class LaunchFailure:
    """An exit record for a launch that raised: counted as a failed run."""

    outcome = "failed"
    exit_code = None

    def __init__(self, job_id: int, attempt: int, detail: str) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.detail = f"launch failed: {detail}"
