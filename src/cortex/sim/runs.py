"""The twin's books for one run of a job: its clock under caps and heat, and what happens to
its GPU-seconds when it ends, fails or is preempted (checkpoints are analytic, never events).

A mixin of Twin, split out of sim/twin.py so that the event loop and the accounting can change
apart; it reads the twin's state, metrics and power runtime and owns no state of its own.
"""

from __future__ import annotations

import bisect
import itertools
from bisect import bisect_right
from typing import TYPE_CHECKING

import numpy as np

from cortex.compiled import mypyc_attr
from cortex.drive import run_estimate
from cortex.drive.runs import (
    Blame,
    RetryLimits,
    failures_in_a_row,
    judge_exit,
    requeue_reason,
    requeued,
    rules,
)
from cortex.sim import checkpoint as ckpt
from cortex.sim.engine import ARRIVAL, FAILURE, FINISH, JOBFAIL, RETRY, EventHeap
from cortex.sim.failures import Cause, JobCause, job_rate_per_s, load_causes, load_job_causes
from cortex.sim.flavor_books import (
    ALLOCATED,
    CAP_LOSS,
    CHECKPOINT,
    GANG_ROUNDING,
    HEAT_LOSS,
    IN_PROGRESS,
    PRODUCTIVE,
    RESTART,
    REWORK_FAILURE,
    REWORK_PREEMPT,
    UNALLOCATED_WRITE,
)
from cortex.workload.preempt_rule import cost_s, on_preempt
from cortex.workload.states import JobState

if TYPE_CHECKING:
    from cortex.scheduler.pending import PendingQueues
    from cortex.scheduler.state import ClusterState, Placement
    from cortex.sim.flavor_books import FlavorBooks
    from cortex.sim.metrics import Metrics
    from cortex.sim.power import PowerRuntime
    from cortex.sim.twin import SimConfig
    from cortex.workload.job import Job


@mypyc_attr(allow_interpreted_subclasses=True)  # the twin's subclasses (sim/twin.py)
class RunBooks:
    """Run clocks and the GPU-second books of runs (see Twin for the attributes)."""

    now: float
    state: ClusterState
    pending: PendingQueues
    metrics: Metrics
    flavor_books: FlavorBooks
    pw: PowerRuntime | None
    engine: EventHeap  # pushed to directly: no forwarding frame per start and stop (§126)
    # job: (the time of its run's entry on the heap that a parked end waits behind -- after a
    # park the earlier entry, after an unpark the unparked one -- and the epoch then)
    _fin_last: dict[int, tuple[float, int]]
    large_job_gpus: int
    large_productive_s: dict[int, float]
    grace_s: float
    preempt_overhead_s: float
    horizon_s: float
    _writes: dict[int, tuple[float, int]]
    _writes_until: float
    causes: tuple[Cause, ...]
    job_causes: tuple[JobCause, ...]
    _job_cause_ids: list[list[int]]
    _job_cause_cum: list[list[float]]
    _job_pools: list[list[float]]
    _job_rates: dict[tuple[int, str], float]  # _job_rate's, by (gang, priority class)
    job_rng: np.random.Generator
    restart_overhead_s: float
    _clock_v: list[float]
    _clock_k: list[float]
    _clock_tick: float  # the power tick the clock is kept at (1.0 without power)
    _power_dirty: bool
    _dirty: bool
    cfg: SimConfig
    retry_limits: RetryLimits
    failed: list[Job]  # failed for good: no retry left
    waiting: dict[int, Job]  # requeued, waiting out a retry backoff before they queue

    def _push(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        raise NotImplementedError

    def _changed(self) -> None:
        raise NotImplementedError

    # ---- the run clock ----------------------------------------------------------------------
    def _init_clock(self) -> None:
        """The global run clock at each power tick (heat slows it; empty when it never does),
        and the tick, read once here rather than through the books at every read."""
        self._clock_v = []
        self._clock_k = []
        power = self.cfg.power
        self._clock_tick = power.tick_s if power is not None else 1.0
        if self.pw is None or power is None:
            return
        ks = [self.pw.cooling.speed(float(t)) for t in self.pw.temps]
        if any(k != 1.0 for k in ks):
            v = 0.0
            for k in ks:
                self._clock_v.append(v)
                v += k * power.tick_s
            self._clock_k = ks

    def _clock(self, t: float) -> float:
        """The global run clock: wall time slowed by heat."""
        cv = self._clock_v
        if not cv:
            return t
        tick = self._clock_tick
        # Every start and stop reads the clock (twice for a stop): comparisons, not min/max.
        i = int(t / tick)
        if i >= len(cv):
            i = len(cv) - 1
        return cv[i] + self._clock_k[i] * (t - i * tick)

    def _clock_inv(self, v: float) -> float:
        cv = self._clock_v
        if not cv:
            return v
        tick = self._clock_tick
        i = bisect_right(cv, v) - 1
        if i < 0:  # noqa: PLR1730 (a comparison costs less than max)
            i = 0
        return i * tick + (v - cv[i]) / self._clock_k[i]

    def _run_elapsed(self, job: Job) -> float:
        """Seconds of the run's own clock done by now."""
        return job.run_vacc + job.run_k * (self._clock(self.now) - job.run_vmark)

    def _lost_s(self, job: Job) -> float:
        """What preempting a running job now costs it, in seconds of its gang (the victim
        search's cost; workload/preempt_rule.py, as `_interrupt` applies it)."""
        write = job.ckpt_write_s or 0.0
        done_f, saved_f = ckpt.progress(
            self._run_elapsed(job), job.run_overhead_s, job.run_tau_s, write
        )
        return cost_s(done_f, saved_f, write, self.grace_s, job.ckpt_on_signal)

    def _end_time(self, job: Job) -> float:
        left = job.run_dur_s - job.run_vacc
        return max(self._clock_inv(job.run_vmark + left / job.run_k), self.now)

    def _set_rate(
        self,
        job: Job,
        k: float,
        clock: float | None = None,
        moved: list[tuple[int, tuple, tuple]] | None = None,
    ) -> None:
        """A running job's cap changed: keep its progress, move its end. `clock`: the run clock
        now, when the caller has read it (a solve moves hundreds of jobs at one instant).
        `moved`: the caller moves the ends lists itself, all at once (_move_ends)."""
        now = self.now
        if clock is None:
            clock = self._clock(now)
        # _run_elapsed's sum, with the clock read once; then _end_time's, from the values just
        # set (a solve moves ~80 runs: each read once, no call)
        vacc = job.run_vacc + job.run_k * (clock - job.run_vmark)
        job.run_vacc = vacc
        job.run_vmark = clock
        job.run_k = k
        # _clock_inv's sum written out (a call per move cost ~700 instructions of its ~4k)
        end = clock + (job.run_dur_s - vacc) / k
        cv = self._clock_v
        if cv:
            i = bisect_right(cv, end) - 1
            if i < 0:  # noqa: PLR1730 (as _clock_inv)
                i = 0
            end = i * self._clock_tick + (end - cv[i]) / self._clock_k[i]
        if now > end:  # noqa: PLR1730 (max(end, now) exactly: end unless now is greater)
            end = now
        jid, gpus = job.id, job.alloc_gpus
        was = (job.est_end_s, jid, gpus)
        job.est_end_s = end
        if moved is None:
            ends = self.state.ends[job.run_flavor]
            ends.remove(was)
            ends.add((end, jid, gpus))
        else:
            moved.append((job.run_flavor, was, (end, jid, gpus)))
        epoch = job.epoch + 1
        job.epoch = epoch
        # An end no earlier than the run's entry last put on the heap waits parked behind it,
        # with the key a push now would give: that entry pops first and unparks it
        # (Twin._finish_stands). ~31% of `full`'s finish entries never go on the heap (§134).
        # `_fin_last` holds that entry's time while no start came since the last move; after
        # a start it is stale and the end just replaced (the start's pushed end) is that entry.
        last = self._fin_last.get(jid)
        at = last[0] if last is not None and last[1] == epoch - 1 else was[0]
        if end >= at:
            self.engine.park(jid, end, FINISH, FINISH, job, epoch)
        else:
            at = end
            self.engine.parked.pop(jid, None)  # a later end parked before: superseded
            self.engine.push(end, FINISH, FINISH, job, epoch)
        self._fin_last[jid] = (at, epoch)

    def _move_ends(self, moved: list[tuple[int, tuple, tuple]]) -> None:
        """Re-key the ends of the runs a solve moved: noted in the state, applied when the ends
        are next read (ClusterState.move_ends)."""
        self.state.move_ends(moved)

    def _power_stop(self, job: Job, elapsed_v: float, release: bool = True) -> None:
        """Split the run's lost throughput between caps and heat; release its watts."""
        real = self.now - job.run_start_s
        uncapped = self._clock(self.now) - self._clock(job.run_start_s)
        m = self.metrics
        cap = job.run_gpus * max(uncapped - elapsed_v, 0.0)
        heat = job.run_gpus * max(real - uncapped, 0.0)
        m.cap_loss_gpu_s += cap
        m.heat_loss_gpu_s += heat
        row = self.flavor_books.rows[job.run_flavor]
        row[CAP_LOSS] += cap
        row[HEAT_LOSS] += heat
        if self.pw is not None and release:
            self.pw.stop(job.id)

    # ---- books ------------------------------------------------------------------------------
    def _account_stop(
        self,
        job: Job,
        done_f: float,
        saved_f: float,
        elapsed: float,
        completed: bool = False,
        preempted: bool = False,
        real_s: float | None = None,
    ) -> None:
        """Split a run's allocated GPU-seconds into productive, rework, restart, checkpoint.
        `elapsed` is on the run's own clock; `real_s` the wall time held (power caps and heat
        make the two differ; _power_stop books the difference)."""
        m = self.metrics
        held = job.alloc_gpus
        gang = job.run_gpus
        real = elapsed if real_s is None else real_s
        overhead = min(elapsed, job.run_overhead_s)
        # Victims' writes on this gang's GPUs were booked when they were preempted; the time
        # this run held those GPUs meanwhile is not booked again.
        victims = job.run_wait_gpus * min(overhead, job.run_wait_s)
        writes = max(elapsed - overhead - done_f, 0.0)
        rounding = (held - gang) * real
        restart = gang * overhead - victims
        m.fragment_gpu_s += rounding
        m.restart_gpu_s += restart
        m.unallocated_write_gpu_s -= victims
        m.checkpoint_gpu_s += gang * writes
        m.productive_gpu_s += gang * saved_f
        # The same lines for the flavor the run held (sim/flavor_books.py).
        row = self.flavor_books.rows[job.run_flavor]
        row[GANG_ROUNDING] += rounding
        row[RESTART] += restart
        row[UNALLOCATED_WRITE] -= victims
        row[CHECKPOINT] += gang * writes
        row[PRODUCTIVE] += gang * saved_f
        row[ALLOCATED] += held * real
        if completed:
            pass
        elif preempted:
            m.rework_preempt_gpu_s += gang * (done_f - saved_f)
            row[REWORK_PREEMPT] += gang * (done_f - saved_f)
        else:
            m.rework_failure_gpu_s += gang * (done_f - saved_f)
            row[REWORK_FAILURE] += gang * (done_f - saved_f)
        job.attained_gpu_s += held * real
        if job.gpus >= self.large_job_gpus:
            self.large_productive_s[job.id] = self.large_productive_s.get(job.id, 0.0) + saved_f

    def _interrupt(
        self,
        job: Job,
        owed_s: float,
        via: JobState,
        why: str,
        requeue_in_s: float | None = 0.0,
        requeue_why: str = "back to queue",
    ) -> tuple[Placement, float]:
        """Stop a running job and requeue it, after `requeue_in_s` (a retry backoff: it waits
        out of the queues until a RETRY event), or, with None, leave it failed for good. A
        failed job keeps its checkpointed work; a preempted one what workload.preempt_rule
        says. Returns where it ran and how long its devices stay busy with its checkpoint
        write after the stop."""
        elapsed = self._run_elapsed(job)
        write = job.ckpt_write_s or 0.0
        done_f, saved_f = ckpt.progress(elapsed, job.run_overhead_s, job.run_tau_s, write)
        hold = 0.0
        if via is JobState.PREEMPTED:
            stop = on_preempt(done_f, saved_f, write, self.grace_s, job.ckpt_on_signal)
            saved_f, hold = stop.kept_s, stop.hold_s
            # A preemption spends no retry, but a run that kept work (a periodic checkpoint,
            # or one written on the signal) ends a run of failures, as judge_exit's would.
            job.failures_in_a_row = failures_in_a_row(
                job.failures_in_a_row,
                job.run_start_s,
                self._last_checkpoint_s(job, saved_f),
                self.now,
            )
        self._power_stop(job, elapsed)
        self._account_stop(
            job,
            done_f,
            saved_f,
            elapsed,
            preempted=via is JobState.PREEMPTED,
            real_s=self.now - job.run_start_s,
        )
        run_estimate.book_kept(job, saved_f, job.run_speed)  # the control plane's rule too
        alloc = self.state.stop(job, job.queue_idx)
        job.move(via, self.now, why)
        self._power_dirty = True
        if requeue_in_s is None:  # no retry left: its books are closed as any failed run's
            job.end_s = self.now
            self.failed.append(job)
            return alloc.placement, hold
        job.move(JobState.REQUEUED, self.now, requeue_reason(requeue_why, requeue_in_s))
        job.owed_overhead_s = owed_s
        requeued(job)
        if requeue_in_s > 0:
            self.waiting[job.id] = job
            self.engine.push(self.now + requeue_in_s, ARRIVAL, RETRY, job, job.restarts)
        else:
            self.pending.add(job)
        return alloc.placement, hold

    def _preempt(self, job: Job, why: str) -> None:
        """Preempt a running job. Its checkpoint write on the signal is booked at once as a
        checkpoint write on devices the state has already freed; a job started on them before
        the write ends waits for it (Twin._start), and that wait is not booked twice."""
        self.metrics.preemptions += 1
        job.preemptions += 1
        gang = job.run_gpus
        flavor = job.run_flavor
        placement, hold = self._interrupt(job, self.preempt_overhead_s, JobState.PREEMPTED, why)
        hold = min(hold, self.horizon_s - self.now)
        if hold <= 0:
            return
        held = sum(k for _, k in placement)
        m = self.metrics
        m.checkpoint_gpu_s += gang * hold
        m.unallocated_write_gpu_s += gang * hold
        row = self.flavor_books.rows[flavor]
        row[CHECKPOINT] += gang * hold
        row[UNALLOCATED_WRITE] += gang * hold
        until = self.now + hold
        for n, k in placement:
            # The gang's writers spread over its nodes; rounding GPUs of a gang do not write.
            # Two victims sharing a node at one instant: the later end, the writers of both.
            writers = k * gang // held
            prev = self._writes.get(n)
            if prev is not None and prev[0] > self.now:
                until_n, writers = max(prev[0], until), writers + prev[1]
            else:
                until_n = until
            self._writes[n] = (until_n, writers)
        self._writes_until = max(self._writes_until, until)

    def _victim_wait(self, placement: Placement, gang: int) -> tuple[float, int]:
        """(seconds until the victims' writes on these nodes end, GPUs of the gang waiting on
        a write); takes those GPU-seconds off the unallocated writes."""
        wait, gpus = 0.0, 0
        writes = self._writes
        if not writes:
            return 0.0, 0
        if self._writes_until <= self.now:
            # Every write has ended: each entry would be dropped when met, so drop them all
            # now rather than look each node of every later start up.
            writes.clear()
            return 0.0, 0
        for n, k in placement:
            got = writes.get(n)
            if got is None:
                continue
            until, writers = got
            if until <= self.now:
                del writes[n]
                continue
            use = min(k, writers, gang - gpus)
            if use > 0:
                gpus += use
                writes[n] = (until, writers - use)
            wait = max(wait, until - self.now)
        return wait, gpus

    # ---- failed runs: the control plane's rule (drive/runs.py judge_exit) -------------------
    def _init_retries(self, max_retries: int) -> None:
        """The retry rule's numbers: data/run_rules.csv's shared rows, `max_retries` given."""
        r = rules("twin")
        self.retry_limits = RetryLimits(
            max_retries, r.retry_backoff_base_s, r.retry_backoff_max_s, r.max_exit75_requeues
        )
        self.failed = []
        self.waiting = {}

    def _fail_run(self, job: Job, cause_idx: int, blame: Blame) -> Placement:
        """A running job's run failed for `cause_idx`: judged as the control plane judges an
        exit. Blamed on a node it is requeued at once and spends no retry; a failure of its own
        spends one and waits the retry backoff, and past max_retries the job fails for good.
        Returns where it ran."""
        cause = self.causes[cause_idx]
        _, saved_f = ckpt.progress(
            self._run_elapsed(job), job.run_overhead_s, job.run_tau_s, job.ckpt_write_s or 0.0
        )
        v = judge_exit(
            "failed", cause.name, cancel_requested=False,
            failures=job.failures_in_a_row, limits=self.retry_limits, blame=blame,
            run_start_s=job.run_start_s, last_checkpoint_s=self._last_checkpoint_s(job, saved_f),
            run_end_s=self.now,
        )  # fmt: skip
        job.failures += v.count_failure
        job.failures_in_a_row = v.in_a_row
        owed = cause.detect_s + cause.recover_s + self.restart_overhead_s
        requeue_in = None if v.requeue is None else v.delay_s
        placement, _ = self._interrupt(
            job, owed, JobState.FAILED, cause.name, requeue_in, v.requeue or ""
        )
        self.metrics.interrupt(self.now, cause_idx)
        job.interruptions += 1
        return placement

    def _last_checkpoint_s(self, job: Job, kept_f: float) -> float | None:
        """When the running job's last checkpoint of this run was written, None if it kept
        nothing (`kept_f`, the compute its checkpoints saved). Checkpoints are analytic, so
        this is the earliest it can have been: after the restart overhead and the compute it
        saved, on the run's own clock, which never runs ahead of the wall clock (nor past
        now, which a rounding of the sum must not undo: judge_exit takes a checkpoint after
        the run's end for none). It is later than the run's start exactly when the run kept
        work, which is all judge_exit asks."""
        if kept_f <= 0:
            return None
        return min(job.run_start_s + job.run_overhead_s + kept_f, self.now)

    def _retry(self, job: Job, run: int) -> None:
        """A failed job's retry backoff is over: it queues again."""
        if job.restarts != run or self.waiting.pop(job.id, None) is None:
            return
        self.pending.add(job)
        self._dirty = True

    # ---- job failures of their own ----------------------------------------------------------
    def _init_causes(self, failure_data: str | None) -> None:
        """Node causes (the census), then job causes of their own (sim/failures.py)."""
        self.job_causes = load_job_causes(failure_data)
        self.causes = load_causes() + tuple(
            Cause(c.name, c.category, 0.0, c.detect_s, c.recover_s, 0.0) for c in self.job_causes
        )
        self._job_cause_ids = [
            [i for i, c in enumerate(self.job_causes) if c.applies_to == cls]
            for cls in ("research", "production")
        ]
        self._job_cause_cum = [
            list(itertools.accumulate(self.job_causes[i].share for i in ids))
            for ids in self._job_cause_ids
        ]
        self._job_pools = [[], []]
        self._job_rates = {}

    def _job_rate(self, job: Job, gang: int) -> float:
        """Failures per second of a run for causes of the job's own (0 with failures off). Read
        at every start (twice: the draw and the checkpoint interval) and every estimate: kept
        per (gang, class), the same double (the config is frozen and never replaced)."""
        key = (gang, job.priority_class)
        got = self._job_rates.get(key)
        if got is None:
            cfg = self.cfg
            got = job_rate_per_s(gang, key[1], cfg.failure_scale) if cfg.failures else 0.0
            self._job_rates[key] = got
        return got

    def _arm_job_failure(self, job: Job) -> None:
        """Draw when this run fails for a cause of its own; push it if that is before the
        horizon (a run that ends first makes it stale)."""
        rate = self._job_rates.get((job.run_gpus, job.priority_class))  # _job_rate's, kept
        if rate is None:
            rate = self._job_rate(job, job.run_gpus)
        cum = self._job_cause_cum[job.priority_class == "production"]
        if rate <= 0 or not cum:
            return
        # _job_draw's pools popped here while they hold draws (twice per start; RESULTS §126)
        pools = self._job_pools
        x = pools[1].pop() if pools[1] else self._job_draw(exponential=True)
        t = self.now + x / rate
        if t >= self.horizon_s:
            return
        ids = self._job_cause_ids[job.priority_class == "production"]
        u = pools[0].pop() if pools[0] else self._job_draw()
        k = ids[min(bisect.bisect_right(cum, u * cum[-1]), len(ids) - 1)]
        cause = len(self.causes) - len(self.job_causes) + k
        self.engine.push(t, FAILURE, JOBFAIL, (job, cause), job.restarts)

    def _job_draw(self, exponential: bool = False) -> float:
        """The next standard exponential or uniform of the job-failure stream, drawn from
        pools of 4,096 (one numpy call per pool, not per start: this runs on every start)."""
        pools = self._job_pools
        i = 1 if exponential else 0
        if not pools[i]:
            rng = self.job_rng
            draw = rng.standard_exponential(4096) if exponential else rng.random(4096)
            pools[i] = draw.tolist()[::-1]
        return pools[i].pop()

    def _job_failure(self, a: tuple[Job, int], run: int) -> None:
        job, cause_idx = a
        if job.state is not JobState.RUNNING or job.restarts != run:
            return  # that run already ended
        self._fail_run(job, cause_idx, "job")  # the job's own code or software: no node's fault
        self._changed()

    def _close_running(self) -> None:
        """At the horizon: account the running jobs' time without ending them. Work done since
        the last checkpoint counts as productive (it is done; `in_progress_gpu_s` says how much
        of it a failure could still take)."""
        m = self.metrics
        for job in list(self.state.running.values()):
            elapsed = self._run_elapsed(job)
            done_f, saved_f = ckpt.progress(
                elapsed, job.run_overhead_s, job.run_tau_s, job.ckpt_write_s or 0.0
            )
            self._power_stop(job, elapsed, release=False)  # still running: keep its watts
            self._account_stop(
                job, done_f, done_f, elapsed, completed=True, real_s=self.now - job.run_start_s
            )
            m.in_progress_gpu_s += job.run_gpus * (done_f - saved_f)
            self.flavor_books.rows[job.run_flavor][IN_PROGRESS] += job.run_gpus * (done_f - saved_f)
