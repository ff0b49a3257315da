"""The twin's per-instant and per-start frames cut (bench/RESULTS.md section 126: the pending
count read rather than asked, the heap pushed without Twin._push, the job-failure pools popped
in place, a finish's compute without its method) against the methods they replaced, kept here
verbatim from 725be00: the same workloads (failures with retries, preemptions, power caps, a
ramp limit, heat) give the same reports, job books and, instant by instant, the same metrics
and pushed events."""

from __future__ import annotations

import bisect
import dataclasses
import json
import math
import random
import time

import pytest

from cortex.drive import run_estimate
from cortex.drive.runs import failures_in_a_row, requeue_reason, requeued
from cortex.scheduler.cycle import schedule
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import Placement
from cortex.sim import checkpoint as ckpt
from cortex.sim.engine import ARRIVAL, FAILURE, FINISH, JOBFAIL, REPAIR, RETRY, TICK
from cortex.sim.power import CapEvent, PowerConfig
from cortex.sim.report import build_report
from cortex.sim.twin import SHORT_QUEUE, SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.preempt_rule import on_preempt
from cortex.workload.states import JobState
from testkit import TINY


class _Reference(Twin):
    """The twin with 725be00's `_advance`, `_finish`, `_failure`, `_wake`, `_cycle`,
    `_arm_job_failure`, `_run_compute_s`, `_set_rate` and `_interrupt`, verbatim."""

    def _advance(self, t: float) -> None:
        if self.state.up_gpus != self.flavor_books.up_last:  # a node went down or came back
            self.flavor_books.up_changed(self.now, self.state.up_gpus)
        if self._power_dirty and self.pw is not None:
            fw = self._facility_w = self.pw.facility_w(self.pw.it_w(self.state), self.now)
            self.pw.record(self.now, fw)
            m = self.metrics
            if fw > m.peak_facility_w:  # noqa: PLR1730 (Metrics.peak inlined; most instants)
                m.peak_facility_w = fw
            self._power_dirty = False
        elif self._power_dirty:
            st = self.state
            up_frac = [
                u / n if n else 0.0 for u, n in zip(st.up_nodes, st.total_nodes, strict=True)
            ]
            it_w = self.power.it_power_w(st.busy_gpus, st.up_gpus, up_frac)
            cool = self._cooling
            self._facility_w = cool.facility_w(it_w, self._nameplate_w, cool.design_temp_c)
            self.metrics.peak(self._facility_w)
            self._power_dirty = False
        st = self.state
        waiting = len(self.pending) + len(self.waiting)  # a retry's backoff is a wait too
        self.metrics.advance(t, sum(st.busy_gpus), sum(st.up_gpus), waiting, self._facility_w)
        self.now = t

    def _finish(self, job: Job, epoch: int) -> None:
        if job.epoch != epoch or job.state is not JobState.RUNNING:
            return  # stale: the run it belonged to was preempted or interrupted
        compute = self._run_compute_s(job)
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
            self._push(self.now + down_s, REPAIR, REPAIR, node)
        self._changed()

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

    def _cycle(self) -> None:
        self._dirty = False
        if not self.pending:
            return
        deep = self.now >= self._deep_due or len(self.pending) <= SHORT_QUEUE
        view = None
        if self.pw is not None and self.pw.policy is not None:
            view = self.pw.pass_view(self.now)
        snap = self._allocation.snapshot(
            self.pol,
            Snapshot(
                self.now,
                self.state,
                self.pending,
                self._speed,
                self._estimate_s,
                view,
                lost_s=self._lost_s,
            ),
        )
        t0 = time.perf_counter()
        plan = schedule(snap, self.pol, deep=deep, commit=True, explain=False)
        self.metrics.cycle_s.append(time.perf_counter() - t0)
        self.metrics.cycles += 1
        self._apply(plan)
        if self.pw is not None and plan.rest_reason is not None:
            self._power_blocked(plan, deep)
        if deep:
            self._deep_due = self.now + self.backfill_interval_s
        elif self.pending:
            # Jobs behind blocked heads get a deep pass once the interval is over.
            self._wake(self._deep_due)

    def _arm_job_failure(self, job: Job) -> None:
        """Draw when this run fails for a cause of its own; push it if that is before the
        horizon (a run that ends first makes it stale)."""
        rate = self._job_rate(job, job.run_gpus)
        cum = self._job_cause_cum[job.priority_class == "production"]
        if rate <= 0 or not cum:
            return
        t = self.now + self._job_draw(exponential=True) / rate
        if t >= self.horizon_s:
            return
        ids = self._job_cause_ids[job.priority_class == "production"]
        k = ids[min(bisect.bisect_right(cum, self._job_draw() * cum[-1]), len(ids) - 1)]
        self._push(t, FAILURE, JOBFAIL, (job, len(self.causes) - len(self.job_causes) + k),
                   job.restarts)  # fmt: skip

    def _run_compute_s(self, job: Job) -> float:
        return job.remaining_s / job.run_speed

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
        if clock is None:
            clock = self._clock(self.now)
        # _run_elapsed's sum, with the clock read once
        job.run_vacc = job.run_vacc + job.run_k * (clock - job.run_vmark)
        job.run_vmark = clock
        job.run_k = k
        was = (job.est_end_s, job.id, job.alloc_gpus)
        job.est_end_s = self._end_time(job)
        if moved is None:
            ends = self.state.ends[job.run_flavor]
            ends.remove(was)
            ends.add((job.est_end_s, job.id, job.alloc_gpus))
        else:
            moved.append((job.run_flavor, was, (job.est_end_s, job.id, job.alloc_gpus)))
        job.epoch += 1
        self._push(job.est_end_s, FINISH, FINISH, job, job.epoch)

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
            self._push(self.now + requeue_in_s, ARRIVAL, RETRY, job, job.restarts)
        else:
            self.pending.add(job)
        return alloc.placement, hold


_JOB_FIELDS = (
    "state", "run_flavor", "run_gpus", "alloc_gpus", "run_start_s", "est_end_s", "run_tau_s",
    "run_dur_s", "epoch", "restarts", "first_start_s", "end_s", "done_s", "history",
)  # fmt: skip


def _plain(x: object) -> object:
    """An event with its jobs as ids (the two runs hold different Job objects)."""
    if isinstance(x, tuple):
        return tuple(_plain(y) for y in x)
    return x.id if isinstance(x, Job) else x


def _standing(events: list[tuple]) -> list[tuple]:
    """The pending events but superseded finishes (a moved or stopped run's): the twin drops
    them unhandled, and keeps a run's later end off the heap behind its earlier entry, where
    725be00's `_set_rate` pushed it (RESULTS section 134)."""
    return [
        ev
        for ev in events
        if ev[3] != FINISH or (ev[4].epoch == ev[5] and ev[4].state is JobState.RUNNING)
    ]


def _books(cls: type[Twin], cfg: SimConfig, seed: int) -> tuple[str, list[tuple], list]:
    rng = random.Random(seed)
    jobs = [
        Job(
            i, f"j{i}", rng.choice("ab"), rng.choice([1, 2, 4, 8, 12, 16, 20, 32, 64]),
            rng.uniform(0.2, 10.0) * 3600.0, priority_class=rng.choice(["normal", "production"]),
            kind="llm", submit_s=rng.uniform(0.0, cfg.days * 86400.0 * 0.8),
            ckpt_write_s=rng.choice([None, 60.0]),
        )
        for i in range(200)
    ]  # fmt: skip
    for j in jobs[::7]:  # elastic: a run's gang need not be the job's (job-failure rates)
        if j.gpus >= 4:
            j.elastic_min, j.elastic_max = j.gpus // 4, j.gpus
    jobs.sort(key=lambda j: j.submit_s)
    tw = cls(TINY, jobs, cfg)
    instants: list[tuple] = []
    real = cls._instant_over

    def spy(self: Twin) -> None:
        real(self)
        m = self.metrics
        instants.append(
            (
                self.now, m.alloc_gpu_s, m.energy_j, sum(m.queue_bins.tolist()), m.cycles,
                len(self.pending), self._deep_due,
                tuple(_plain(ev) for ev in _standing(self.engine.pending())[-4:]),
            )
        )  # fmt: skip

    tw._instant_over = spy.__get__(tw)  # type: ignore[method-assign]
    tw.run()
    report = build_report(tw)
    report.pop("wall_s", None)
    report.pop("timing", None)
    per_job = [tuple(getattr(j, k) for k in _JOB_FIELDS) for j in jobs]
    return json.dumps(report, sort_keys=True, default=str), per_job, instants


POWER = {
    "none": None,
    "cap": PowerConfig("full", site_cap_mw=0.07, temperature_c=20.0),
    "ramp": PowerConfig("full", site_cap_mw=1.0, temperature_c=20.0, ramp_limit_mw_per_min=0.01),
    "heat": PowerConfig("none", temperature_c=45.0),
    # the cap falls for six hours mid-run: running jobs' levels move (Twin._set_rate)
    "event": PowerConfig(
        "full", site_cap_mw=1.0, temperature_c=20.0, cap_events=(CapEvent(40000.0, 21600.0, 0.05),)
    ),
}


@pytest.mark.parametrize("power", sorted(POWER))
@pytest.mark.parametrize("seed", range(3))
def test_the_instant_and_start_paths_match_the_reference(power: str, seed: int) -> None:
    cfg = SimConfig(days=1.5, seed=seed, keep_history=True, power=POWER[power], failure_scale=40.0)
    got = _books(Twin, cfg, seed)
    want = _books(_Reference, dataclasses.replace(cfg), seed)
    assert got[2] == want[2]
    assert got[1] == want[1]
    assert got[0] == want[0]
    assert len(got[2]) > 100
    report = json.loads(got[0])
    assert report["events"] > len(got[2]) // 2


def test_a_pass_snapshot_holds_the_twin_s_own_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pass's Snapshot (its methods bound once, at the twin's start, and passed by
    position: RESULTS section 131) holds the running twin's `_speed`, `_estimate_s` and
    `_lost_s`, a subclass's where it overrides them, and no targets without an allocator."""
    import cortex.sim.twin as twin_mod

    seen: list[Snapshot] = []
    real = twin_mod.schedule

    def spy(snap: Snapshot, pol: object, **kw: object) -> object:
        seen.append(snap)
        return real(snap, pol, **kw)  # type: ignore[arg-type]

    class _Own(Twin):
        def _estimate_s(self, job: Job, flavor: int, gang: int) -> float:
            return super()._estimate_s(job, flavor, gang)

        def _lost_s(self, job: Job) -> float:
            return super()._lost_s(job)

    monkeypatch.setattr(twin_mod, "schedule", spy)
    cfg = SimConfig(days=0.5, seed=1, power=POWER["cap"], failure_scale=40.0)
    rng = random.Random(1)
    jobs = [
        Job(i, f"j{i}", "a", rng.choice([1, 4, 8]), 3600.0, kind="llm", submit_s=i * 60.0)
        for i in range(60)
    ]
    tw = _Own(TINY, jobs, cfg).run()
    assert len(seen) > 10
    for snap in seen:
        assert snap.speed == tw._speed
        assert snap.estimate_s == tw._estimate_s
        assert snap.lost_s == tw._lost_s
        assert snap.targets is None
        assert snap.state is tw.state and snap.pending is tw.pending
        assert snap.power is not None
