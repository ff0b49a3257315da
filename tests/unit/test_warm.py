"""A warm fleet: synthetic runs start from steady state (synthetic.warm_start)."""

from __future__ import annotations

import numpy as np
import pytest

from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.sources import load_workload
from cortex.workload.synthetic import (
    MID_MEDIAN_RUNTIME_S,
    MID_RUNTIME_CLIP_S,
    MID_RUNTIME_SIGMA,
    generate,
)

LOAD = 0.85
FLAVORS = ("H100-SXM5", "H200-SXM")


def _first_hour_load(warm: bool) -> tuple[float, dict]:
    topo = build(load_fleet_spec("cortex-2024"))
    jobs = load_workload("synthetic", topo, days=1.0, seed=0, load=LOAD, warm=warm)
    tw = Twin(topo, jobs, SimConfig(days=1.0, seed=0, n_bins=24)).run()
    return float(tw.metrics.alloc_bins[0]) / (topo.total_gpus * 3600.0), build_report(tw)


def test_warm_day_on_cortex_2024_carries_the_offered_load_from_its_first_hour() -> None:
    warm, report = _first_hour_load(True)
    assert warm >= 0.9 * LOAD
    assert report["jobs"]["warm_start"] > 100 and report["config"]["warm_start"] is True
    # The warm jobs are in the books, not in JCT: no completed job's JCT exceeds the horizon
    # by the work it did before the run.
    assert report["jobs"]["jct_s"]["p99"] <= 86_400.0
    cold, _ = _first_hour_load(False)
    assert cold < 0.3 * LOAD  # what the warm start fixes: an empty fleet filling up


def test_warm_jobs_come_first_and_leave_the_stream_unchanged() -> None:
    cold = generate(days=2, seed=4, fleet_gpus=20_000, load=LOAD, flavors=FLAVORS)
    warm = generate(days=2, seed=4, fleet_gpus=20_000, load=LOAD, flavors=FLAVORS, warm=True)
    n = sum(j.warm for j in warm)
    assert n > 0 and all(j.warm for j in warm[:n]) and not any(j.warm for j in warm[n:])
    assert [(j.submit_s, j.gpus, j.work_s) for j in warm[n:]] == [
        (j.submit_s, j.gpus, j.work_s) for j in cold
    ]
    assert [j.id for j in warm] == list(range(len(warm)))
    for j in warm[:n]:
        assert j.submit_s == 0.0 and 1.0 <= j.done_s <= j.work_s - 1.0


def test_warm_jobs_are_length_biased_with_uniform_age() -> None:
    jobs = generate(days=0.01, seed=2, fleet_gpus=2_000_000, load=LOAD, flavors=FLAVORS, warm=True)
    mid = [j for j in jobs if j.warm and 64 <= j.gpus <= 2048]
    assert len(mid) > 2000
    work = np.array([j.work_s for j in mid])
    age = np.array([j.done_s for j in mid]) / work
    # Uniform age: mean 1/2, and a quarter of the jobs in each quartile (+-3 points: ~6 sd).
    assert age.mean() == pytest.approx(0.5, abs=0.02)
    assert np.histogram(age, bins=4, range=(0, 1))[0] / age.size == pytest.approx(
        [0.25] * 4, abs=0.03
    )
    # Length bias: the mean of the durations under way is E[D^2] / E[D] of the band's law,
    # here from a large sample of the clipped lognormal.
    rng = np.random.default_rng(0)
    d = np.clip(rng.lognormal(np.log(MID_MEDIAN_RUNTIME_S), MID_RUNTIME_SIGMA, 10**6),
                *MID_RUNTIME_CLIP_S)  # fmt: skip
    assert work.mean() == pytest.approx(float((d**2).mean() / d.mean()), rel=0.05)
    assert work.mean() > 1.3 * d.mean()  # far from an unbiased draw
