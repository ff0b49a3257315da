"""The books keep each cap class's sums as its jobs start and stop (drive/power_jobs.py
kept_classes), and a solve reads them instead of adding every running job (solve_kept). The plan
must be the one solve_caps makes from the running jobs themselves (levels in order, pauses,
targets), with and without a pending head, after any sequence of starts, stops and level moves.
That holds only because the sums are exact integers (cap_solver.quantize): the solver's answer
may not depend on the order in which watts were added."""

from __future__ import annotations

import math
import random

import pytest

import testkit
from cortex.drive import power_jobs
from cortex.scheduler.cap_solver import CapJob, CapPlan, hall_ladder, quantize, solve_caps
from cortex.sim.power import CapEvent, PowerConfig, PowerRuntime
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.synthetic import generate

# Two halls of two pods each under a site cap that binds, rack budgets under the racks' TDP
# (finite node caps: ladders differ within a class), gangs that span halls.
FLEET = testkit.two_hall_power_fleet("kept-sums")
KINDS = ("llm", "fsd-video", "generic")
SPEED = {(k, 0): g for k, g in zip(KINDS, (1.0, 1.3, 0.7), strict=True)}


def _same(a: CapPlan, b: CapPlan) -> bool:
    # The levels as a mapping: the kept solve lists them class by class, and no reader depends
    # on their order (PowerBooks.cap_moves orders a plan's moves by start itself).
    return (
        a.levels == b.levels
        and a.paused == b.paused
        and list(a.target.items()) == list(b.target.items())
    )


def _per_job(pw: PowerRuntime, running: dict, head: CapJob | None, site: float, halls: list):
    jobs = pw.cap_jobs(running, SPEED)
    return solve_caps([*jobs, head] if head else jobs, site, halls, len(pw.levels))


@pytest.mark.parametrize("seed", range(6))
def test_kept_sums_solve_as_the_running_jobs_do(seed: int) -> None:
    rng = random.Random(seed)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=30.0), 86400.0)
    running: dict[int, Job] = {}
    top = 0.0
    for i in range(400):
        op = rng.random()
        if op < 0.5 or len(running) < 3:
            nodes = rng.sample(range(16), rng.randint(1, 3))
            job, placement, gang = testkit.books_job(
                rng, 1000 + i, nodes, KINDS, priority_class=["preemptible", "normal", "production"]
            )
            job.run_flavor, job.run_gpus, job.run_start_s = 0, gang, float(rng.randrange(50))
            pw.start(job, 0, gang, placement, rng.randrange(len(pw.levels)), 10.0 * i)
            running[job.id] = job
        elif op < 0.8:
            pw.stop(running.pop(rng.choice(list(running))).id)
        else:
            job = running[rng.choice(list(running))]
            pw.relevel(job, rng.randrange(len(pw.levels)))
        top = max(top, pw.inc_total_w)
        if i % 5:
            continue
        # Budgets from loose to tight (pauses), halls at times below the site's share.
        site = top * rng.choice([0.2, 0.5, 0.8, 1.5])
        halls = [site * rng.choice([0.3, 0.6, math.inf]) for _ in range(2)]
        got = pw.solve_kept(running, SPEED, site, halls)
        assert _same(got, _per_job(pw, running, None, site, halls))
        head = pw.head_cap_job(
            Job(1, "h", "a", 16, 3600.0, kind="llm", priority_class="production"), 0, 1.0, 0.0
        )
        got = pw.solve_kept(running, SPEED, site, halls, head)
        assert _same(got, _per_job(pw, running, head, site, halls))
        _capjobs_as_made_whole(pw, running)


def _capjobs_as_made_whole(pw: PowerRuntime, running: dict[int, Job]) -> None:
    """The books build a run's CapJob with its ladder quantized from their class sums' memo:
    it must be the CapJob made from the run alone, ladder quantized afresh."""
    for jid, cj in zip(running, pw.cap_jobs(running, SPEED), strict=True):
        job = running[jid]
        _, inc, kept = pw.ladder(job, job.run_flavor, job.run_gpus, pw.jobs[jid].node_cap_w)
        gain = SPEED[(job.kind, job.run_flavor)]
        fresh = CapJob(
            jid,
            pw.jobs[jid].key,
            job.priority,
            job.run_start_s,
            job.run_gpus,
            gain,
            kept,
            inc,
            tuple(pw.jobs[jid].halls.items()),
        )
        assert cj == fresh
        assert cj.q == fresh.q == quantize(inc, kept, float(job.run_gpus * gain))
        assert cj.qh == fresh.qh


@pytest.mark.parametrize(
    "halls",
    [((1, 1.0),), ((0, 0.25),), ((0, 0.5), (1, 0.5)), ((0, 0.25), (1, 0.75))],
)
def test_a_capjobs_hall_ladders(halls: tuple[tuple[int, float], ...]) -> None:
    # A hall holding all its GPUs adds the site ladder's watts there; a share, its part of each
    # level's watts. The same with the ladder given quantized (the books') as made here.
    inc, kept = (900.0, 700.5, 333.3), (1.0, 0.9, 0.55)
    q = quantize(inc, kept, 8 * 1.3)
    want = tuple((h, q[:3] if s == 1.0 else hall_ladder(inc, s)) for h, s in halls)
    for given in ((), q):
        cj = CapJob(7, ("llm", 0, 1, 1), 1, 0.0, 8, 1.3, kept, inc, halls, given)
        assert cj.q == q and cj.qh == want


def test_every_solve_of_a_twin_run_reads_the_kept_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every solve of a twin run under a binding site cap, a cap event and a heat wave (the
    # weather tick's and the shortage re-solves with their head) against solve_caps over the
    # running jobs at that moment.
    seen = {"solves": 0, "heads": 0, "kept": 0}
    kept = PowerRuntime.solve_kept

    def spy(self, running, speed, site, halls, head=None):
        got = kept(self, running, speed, site, halls, head)
        jobs = self.cap_jobs(running, speed)
        want = solve_caps([*jobs, head] if head else jobs, site, halls, len(self.levels))
        assert _same(got, want)
        seen["solves"] += 1
        seen["heads"] += head is not None
        seen["kept"] += any(c.made is not None for c in self._classes.values())
        return got

    monkeypatch.setattr(PowerRuntime, "solve_kept", spy)
    fleet = testkit.stress_power_fleet()
    jobs = generate(days=2.0, seed=1, fleet_gpus=fleet.total_gpus, flavors=fleet.flavors, load=1.3)
    pc = PowerConfig(
        "full",
        rack_cap_kw=40.0,
        ramp_limit_mw_per_min=0.05,
        cap_events=(CapEvent(20 * 3600.0, 6 * 3600.0, 0.22),),
        heat_waves=((30 * 3600.0, 10 * 3600.0, 8.0),),
    )
    Twin(fleet, jobs, SimConfig(days=2.0, seed=1, power=pc, debug=True)).run()
    # (heads: the books test above; this run's shortages are all below running priorities)
    assert seen["solves"] > 20 and seen["kept"] > 0


def test_the_plan_does_not_depend_on_the_order_watts_are_added() -> None:
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 in doubles added in that order and 0.6 in the other;
    # a budget of 0.6 W fitted one order and paused a job in the other. Exact sums fit both.
    def job(i: int, w: float) -> CapJob:
        return CapJob(i, ("t", 0, 0, 0), 0, float(i), 1, 1.0, (1.0,), (w,), ((0, 1.0),))

    up = [job(1, 0.1), job(2, 0.2), job(3, 0.3)]
    for jobs in (up, up[::-1]):
        plan = solve_caps(jobs, 0.6, [math.inf], 1)
        assert plan.paused == []
        assert plan.levels == {1: 0, 2: 0, 3: 0}


def test_the_plan_lists_every_booked_job_at_its_class_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # solve_kept's levels assembled from the raise's class levels, whatever they are: each
    # class at every level in turn (the month's ladders rarely leave one at 1-4).
    rng = random.Random(7)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=30.0), 86400.0)
    running: dict[int, Job] = {}
    for i in range(40):
        nodes = rng.sample(range(16), rng.randint(1, 3))
        placement = tuple((n, rng.choice([8, 8, 4])) for n in nodes)
        gang = sum(k for _, k in placement)
        prio = rng.choice(["preemptible", "normal", "production"])
        job = Job(1000 + i, "j", "a", gang, 3600.0, kind=rng.choice(KINDS), priority_class=prio)
        job.run_flavor, job.run_gpus, job.run_start_s = 0, gang, float(i)
        pw.start(job, 0, gang, placement, 0, 10.0 * i)
        running[job.id] = job
    n = len(pw.levels)
    for shift in range(n):

        def levels_by_class(classes: list, *_: object, shift: int = shift) -> tuple:
            return [(c + shift) % n for c in range(len(classes))], {}

        monkeypatch.setattr(power_jobs, "raise_classes", levels_by_class)
        plan = pw.solve_kept(running, SPEED, math.inf, [math.inf, math.inf])
        assert len(set(plan.target.values())) > 1
        assert plan.levels == {j: plan.target[jp.key] for j, jp in pw.jobs.items()}
