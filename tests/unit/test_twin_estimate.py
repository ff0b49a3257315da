"""The twin's backfill estimate cache (`Twin._estimate_s`, per (flavor, gang)): every
(flavor, gang) a job is asked for, in any order and asked again, gets the estimate of that
flavor and gang, as a fresh computation gives it (speeds differ by flavor, runs by gang)."""

from __future__ import annotations

import random

from cortex.scheduler.placement import alloc_size
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.spec import JobSpec
from testkit import MIXED


def _job(job_id: int) -> Job:
    spec = JobSpec.model_validate(
        {
            "name": "j",
            "team": "fsd",
            "gpus": 8,
            "kind": "llm",
            "duration_s": 3600,
            "checkpoint_write_s": 60,
            "elastic": {"min_gpus": 1, "max_gpus": 8},
        }
    )
    return Job.from_spec(job_id, spec, 0, spec.checkpoint_write_s)


def test_each_flavor_and_gang_gets_its_own_estimate_in_any_order() -> None:
    tw = Twin(MIXED, [_job(99)], SimConfig(days=1, failures=False))  # its kind sets the speeds
    n_f = len(tw.state.gpn)
    assert n_f == 2
    asks = [(f, g) for f in range(n_f) for g in range(1, 9)]
    fresh = {}
    for f, g in asks:
        job = _job(1)
        fresh[(f, g)] = tw._run_shape(job, f, g, alloc_size(g, tw.state.gpn[f]))[2]
    # The flavors' speeds differ, and so do some gangs' runs: a key that left either out, or
    # mixed them up, would answer one with another's.
    assert fresh[(0, 8)] != fresh[(1, 8)] and fresh[(0, 1)] != fresh[(0, 2)]
    rng = random.Random(5)
    for _ in range(20):
        job = _job(1)
        order = asks * 2
        rng.shuffle(order)
        for f, g in order:
            assert tw._estimate_s(job, f, g) == fresh[(f, g)], (f, g)


def test_the_whole_gang_row_holds_each_flavors_estimate_and_goes_with_the_cache() -> None:
    """`Job.est_gang_s` (the deep pass's judge reads it instead of calling the estimate): after
    any asks in any order, each flavor's entry is None or that flavor's estimate of the whole
    gang (never a smaller gang's), and a requeued job loses it with est_cache (its remaining
    work moved: a kept row would answer the judge with the old estimate)."""
    from cortex.drive.runs import requeued

    tw = Twin(MIXED, [_job(99)], SimConfig(days=1, failures=False))
    n_f = len(tw.state.gpn)
    fresh = {
        (f, g): tw._run_shape(_job(1), f, g, alloc_size(g, tw.state.gpn[f]))[2]
        for f in range(n_f)
        for g in range(1, 9)
    }
    asks = list(fresh)
    rng = random.Random(11)
    filled = 0
    for _ in range(40):
        job = _job(1)
        order = rng.sample(asks, rng.randint(1, len(asks)))
        for f, g in order:
            tw._estimate_s(job, f, g)
        row = job.est_gang_s
        asked_whole = {f for f, g in order if g == job.gpus}
        if row is None:
            assert not asked_whole
            continue
        assert len(row) == n_f
        for f in range(n_f):
            assert row[f] == (fresh[(f, job.gpus)] if f in asked_whole else None), (f, order)
            filled += row[f] is not None
        requeued(job)
        assert job.est_gang_s is None and job.est_cache is None
    assert filled > 20


def test_every_kept_estimate_is_the_fresh_one_at_every_pass_of_a_run() -> None:
    """A run that moves jobs' remaining work and overhead while they wait again (failures at 50
    times the rate, requeues, preemptions by priority, quarantine, hot spares; elastic jobs and
    jobs naming a flavor, on two flavors whose nodes differ): at every pass, each waiting job's
    kept estimates (est_cache and the whole-gang row the deep pass's judge reads instead of
    asking) equal a fresh computation for the job as it is then (review20)."""
    days = 2.0
    jobs = mixed_jobs(1, 300, days)
    seen = {"kept": 0, "stale": 0}

    class Checked(Twin):
        def _cycle(self) -> None:
            gpn = self.state.gpn
            for lst in self.pending.lists:
                for _, job in lst:
                    kept = [(f, job.gpus, v) for f, v in enumerate(job.est_gang_s or ())]
                    kept += [(f, g, v) for (f, g), v in (job.est_cache or {}).items()]
                    for f, g, v in kept:
                        if v is not None:
                            seen["kept"] += 1
                            seen["stale"] += (
                                v != self._run_shape(job, f, g, alloc_size(g, gpn[f]))[2]
                            )
            super()._cycle()

    cfg = SimConfig(days=days, seed=4, failure_scale=50.0, quarantine=True, hot_spares_per_pod=1)
    tw = Checked(MIXED, jobs, cfg).run()
    assert tw.metrics.preemptions > 0 and sum(j.restarts for j in jobs) > 10
    assert seen["kept"] > 10_000 and seen["stale"] == 0, seen


def mixed_jobs(seed: int, n: int, days: float) -> list[Job]:
    """`n` jobs for MIXED arriving over the first 70% of `days`: sizes 1 to 48 GPUs, some
    elastic, some naming a flavor, priorities and classes mixed (preemptions, failures' rates)."""
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        g = rng.choice([1, 2, 4, 8, 8, 16, 24, 32, 48])
        emin = rng.choice([None, None, None, max(1, g // 2)])
        jobs.append(
            Job(
                i,
                f"j{i}",
                rng.choice(["a", "b", "c"]),
                g,
                rng.uniform(600, 40000),
                priority=rng.choice([0, 0, 1, 5]),
                priority_class=rng.choice(["normal", "production"]),
                flavors=rng.choice([(), (), (), ("H100-SXM5",), ("H200-SXM",)]),
                kind=rng.choice(["generic", "llm"]),
                submit_s=rng.uniform(0, days * 86400 * 0.7),
                ckpt_write_s=rng.choice([None, 30.0]),
                elastic_min=emin,
                elastic_max=g if emin else None,
            )
        )
    jobs.sort(key=lambda j: j.submit_s)
    return jobs
