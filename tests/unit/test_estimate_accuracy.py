"""The start-estimate accuracy measurement (control/estimate_accuracy.py): the score's
arithmetic by hand, and a small seeded twin run where nothing the estimator cannot know
happens (one batch at time 0, no failures), so its forward run must give every start exactly."""

from __future__ import annotations

from typing import Any

import pytest
from test_twin_estimate import mixed_jobs

from cortex.control import estimate_accuracy as ea
from cortex.control.estimate_accuracy import Prediction, measure, score
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.scheduler.placement import alloc_size
from cortex.sim.twin import SimConfig
from cortex.workload.job import Job
from cortex.workload.synthetic import generate
from testkit import MIXED


def test_the_score_is_the_median_error_over_the_wait_of_jobs_that_waited() -> None:
    preds = [
        Prediction(1, 0.0, 100.0, 300.0),  # starts 120: waited 120; |20|/120, |180|/120
        Prediction(2, 10.0, 500.0, 900.0),  # starts 410: waited 400; 90/400, 490/400
        Prediction(3, 0.0, 30.0, 30.0),  # starts 30: waited 30 < 60: not scored
        Prediction(4, 0.0, None, 50.0),  # no Cortex estimate
        Prediction(5, 0.0, 70.0, 80.0),  # never started
        Prediction(6, 0.0, 1000.0, 1000.0),  # starts 1000: exact for both
    ]
    starts: dict[int, float | None] = {1: 120.0, 2: 410.0, 3: 30.0, 4: 90.0, 5: None, 6: 1000.0}
    got = score(preds, starts, min_wait_s=60.0)
    assert (got["predicted"], got["scored"]) == (6, 3)
    assert (got["no_estimate"], got["never_started"], got["short_wait"]) == (1, 1, 1)
    assert (got["cortex_none"], got["slurm_none"]) == (1, 0)
    # Cortex: [0.1667, 0.225, 0] -> median 0.1667; Slurm-style: [1.5, 1.225, 0] -> 1.225.
    assert got["cortex_median_rel_error"] == 0.1667
    assert got["slurm_median_rel_error"] == 1.225
    assert got["median_wait_s"] == 400.0  # of 120, 400, 1000
    empty = score([], {}, 60.0)
    assert empty["scored"] == 0 and empty["cortex_median_rel_error"] is None


def _batch_run() -> dict:
    topo = build(load_fleet_spec("tiny"))
    jobs = generate(days=10, seed=2, fleet_gpus=topo.total_gpus, flavors=topo.flavors, load=1.5)
    for j in jobs:  # one batch: no arrival after the predictions
        j.submit_s = 0.0
    cfg = SimConfig(days=10, seed=2, failures=False, backfill_interval_s=1.0)
    return measure(topo, jobs, cfg, warmup_s=0.0, every=1, max_predictions=40, details=True)


def test_a_seeded_batch_is_predicted_exactly_by_the_forward_run() -> None:
    out = _batch_run()
    rows = out["predictions"]
    assert len(rows) == out["predicted"] >= 20  # of the 29 jobs the seed gives
    assert out["predicted"] == (
        out["scored"] + out["no_estimate"] + out["never_started"] + out["short_wait"]
    )
    assert all(at == 0.0 for _, at, *_ in rows)  # predicted on arrival
    both = [r for r in rows if r[2] is not None and r[4] is not None]
    assert both, "some predictions must be comparable"
    # Nothing happened that the estimator could not know: its point estimate is the start.
    assert all(ours == actual for _, _, ours, _, actual in both)
    if out["scored"]:
        assert out["cortex_median_rel_error"] == 0.0
    # The Slurm-style runtimes (twice the true ones) push waiting starts later.
    late = [r for r in both if r[3] is not None and r[4] > 0]
    assert all(slurm >= actual for _, _, _, slurm, actual in late)
    out.pop("prediction_cpu_s")
    again = _batch_run()
    again.pop("prediction_cpu_s")
    assert out == again  # seeded: the same predictions and starts


@pytest.mark.parametrize(
    "kw",
    [{"every": 0}, {"max_predictions": -1}, {"min_wait_s": -1.0}, {"requested_over_actual": 0}],
)
def test_bad_parameters_are_refused(kw: dict) -> None:
    topo = build(load_fleet_spec("tiny"))
    with pytest.raises(ValueError):
        measure(topo, [], SimConfig(days=1), warmup_s=0.0, **kw)


def test_the_forward_runs_estimates_are_fresh_for_a_victim_that_kept_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The forward run (control/estimate.py `_simulate`) lets a preempted victim's copy keep the
    work it did, then queues it again and asks the twin's estimator, which keeps estimates on the
    job (est_cache, est_gang_s): the copy shared the live job's, made for the work left before,
    and was answered with those (~5% of the asks here, review20). Every estimate asked in the
    twin and in its forward runs must equal a fresh computation for the job as it is then."""
    seen = {"asked": 0, "stale": 0}
    plain = ea._ObservedTwin._estimate_s

    def checked(tw: Any, job: Job, f: int, g: int) -> float:
        got = plain(tw, job, f, g)
        seen["asked"] += 1
        seen["stale"] += got != tw._run_shape(job, f, g, alloc_size(g, tw.state.gpn[f]))[2]
        return got

    monkeypatch.setattr(ea._ObservedTwin, "_estimate_s", checked)
    days = 1.0
    cfg = SimConfig(days=days, seed=4, failure_scale=50.0, backfill_interval_s=10.0)
    out = measure(MIXED, mixed_jobs(2, 150, days), cfg, warmup_s=0.0, max_predictions=40)
    assert out["scored"] > 5 and seen["asked"] > 5000 and seen["stale"] == 0, seen
