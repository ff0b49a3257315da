"""Two queues that would thrash, through the twin: a production queue sends a whole-fleet job
every 2 hours that runs about 30 minutes, while a research queue's long job of the same size
waits in between. Without protection the research job is preempted at every arrival; its
queue's preemption budget and minimum runtime bound that, and it completes sooner."""

from __future__ import annotations

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job


def _fleet(research: dict) -> object:
    return build(
        parse_fleet(
            {
                "name": "thrash",
                "halls": [{"name": "h", "groups": [{"flavor": "H100-SXM5", "nodes": 2}]}],
                "queues": {
                    "min_runtime_s": 600,
                    "cluster_queues": [
                        {"name": "prod", "nominal_share": 0.5},
                        {"name": "research", "nominal_share": 0.5, **research},
                    ],
                },
            },
            "test",
        )
    )


def _run(research: dict) -> tuple[int, float]:
    """The research job's preemptions and end time."""
    topo = _fleet(research)
    # The research job: 16 GPUs, 20 hours of work, checkpoints every 30 min (written in 60 s).
    long = Job(0, "long", "research", 16, 20 * 3600.0, ckpt_interval_s=1800.0, ckpt_write_s=60.0)
    jobs = [long]
    for i in range(1, 11):  # production arrivals at 1 h, 3 h, ..., 19 h, each 30 min of work
        jobs.append(
            Job(
                i,
                f"prod-{i}",
                "prod",
                16,
                1800.0,
                priority_class="production",
                submit_s=3600.0 * (2 * i - 1),
            )
        )
    tw = Twin(topo, jobs, SimConfig(days=3, policy="priority", failures=False))
    tw.run()
    assert all(j.end_s > 0 for j in jobs), "every job completes within the horizon"
    return long.preemptions, long.end_s


def test_a_preemption_budget_and_a_minimum_runtime_stop_the_thrash() -> None:
    free_for_all, end_free = _run({})
    # Every production arrival finds the research job running (it restarts after each 30 min
    # production run, and 2 h later the next arrival evicts it): 10 preemptions.
    assert free_for_all == 10
    budget, end_budget = _run({"preemption_budget": 2})
    # Two preemptions, then the research job is no longer a victim: production jobs wait for it.
    assert budget == 2 and end_budget < end_free
    runtime, end_runtime = _run({"min_runtime_s": 3 * 3600})
    # Protected for 3 h after each start, and each production run takes 30 min: at most one
    # preemption per 3.5 h, so at most 20 h / 3.5 h < 6 while 20 h of work remain (fewer as
    # restarts and checkpoint writes add up), and never the first arrival at 1 h.
    assert 0 < runtime <= 5 and end_runtime < end_free
    none, _ = _run({"preemption_budget": 0})
    assert none == 0


def test_a_failed_victim_search_waits_by_the_shortest_queue_protection(monkeypatch) -> None:
    """The backoff after a failed victim search has a floor of half the minimum runtime that
    shields victims. The research queue's own minimum is 0 under the fleet's 600 s, so a victim
    there is free soonest: the first wait is the twin's 60 s pass interval, max(0, 0 x 0.5, 60),
    not half the fleet default (300 s), as it was. Its budget of 0 makes every search fail."""
    from cortex.drive import runs

    topo = _fleet({"min_runtime_s": 0, "preemption_budget": 0})
    research = Job(0, "long", "research", 16, 3000.0)
    prod = Job(1, "p", "prod", 16, 600.0, priority_class="production", submit_s=100.0)
    waits: list[tuple[float, float]] = []
    backoff = runs.preempt_backoff

    def spy(job: Job, now: float, *args: object) -> float:
        out = backoff(job, now, *args)
        waits.append((now, job.preempt_backoff_s))
        return out

    monkeypatch.setattr(runs, "preempt_backoff", spy)
    Twin(topo, [research, prod], SimConfig(days=1, policy="priority", failures=False)).run()
    assert research.preemptions == 0 and prod.end_s == 3000.0 + 600.0
    assert waits[:3] == [(100.0, 60.0), (180.0, 120.0), (300.0, 240.0)], waits
