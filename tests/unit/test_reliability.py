"""Reliability check against Llama 3 405B: one 16,384-GPU job on the `llama3-16k` preset
(2,048 H100 nodes in service plus 32 hot spares) for 54 days saw 419 unexpected interruptions
(Llama 3 paper, Table 5), 148 of them faulty GPUs, 72 HBM3 and 54 software bugs, and kept
effective training time above 90%.

Tolerances come from Poisson noise. Over SEEDS runs the pooled count N is Poisson with mean
about SEEDS x 419 (~2,100), so the per-run mean has a relative standard deviation of
1 / sqrt(2,100) = 2.2%: the +-15% band is about 7 standard deviations wide, and fails only on
a real bias (a missed cause, failures landing off the job, spares not replacing failed nodes).
Given N, the count of one cause is binomial with the census share p; its share is checked to
within 4 standard deviations sqrt(p (1 - p) / N): about +-4.2 points for Faulty GPU (p = 35%),
+-3.3 for HBM3 (17%) and +-2.9 for software bugs (13%); a mix-up of two causes moves a share by
far more. The whole mix is also checked with Pearson's chi-square over the 18 causes against
the 99.9% point of chi-square with 17 degrees of freedom.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim.failures import load_causes
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.sources import load_workload

pytestmark = pytest.mark.slow

DAYS = 54
JOB_GPUS = 16_384
SEEDS = range(5)
LLAMA3_INTERRUPTIONS = 419
MAJOR = {"Faulty GPU (incl. NVLink)": 148, "GPU HBM3 memory": 72, "Software bug": 54}
SIGMAS = 4.0
CHI2_17DOF_999 = 40.790  # scipy.stats.chi2.ppf(0.999, 17)


def _run(seed: int) -> dict[str, Any]:
    topo = build(load_fleet_spec("llama3-16k"))
    jobs = load_workload(f"single:{JOB_GPUS}", topo, days=DAYS, seed=seed)
    return build_report(Twin(topo, jobs, SimConfig(days=DAYS, seed=seed)).run(), "single")


@pytest.fixture(scope="module")
def reports() -> list[dict[str, Any]]:
    return [_run(s) for s in SEEDS]


def _pooled(reports: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reports:
        for cause, n in r["interruptions"]["by_cause"].items():
            out[cause] = out.get(cause, 0) + n
    return out


def test_census_is_the_llama3_table() -> None:
    counts = {c.name: round(c.rate_per_gpu_s * JOB_GPUS * DAYS * 86_400) for c in load_causes()}
    assert sum(counts.values()) == LLAMA3_INTERRUPTIONS
    assert len(counts) == 18
    for cause, n in MAJOR.items():
        assert counts[cause] == n


def test_fleet_is_16k_in_service_plus_32_spare_nodes() -> None:
    topo = build(load_fleet_spec("llama3-16k"))
    assert topo.flavors == ("H100-SXM5",)
    assert topo.n_nodes == JOB_GPUS // 8 + 32
    assert topo.total_gpus == JOB_GPUS + 32 * 8


def test_interruptions_per_54_days_match_llama3(reports: list[dict[str, Any]]) -> None:
    for r in reports:
        (job,) = r["large_jobs"]
        assert job["gpus"] == JOB_GPUS
        assert job["interruptions"] == r["interruptions"]["unexpected"]
        assert job["preemptions"] == 0
        # A failure on a spare or on a node under repair interrupts nothing.
        assert r["interruptions"]["node_failures"] >= r["interruptions"]["unexpected"]
    mean = sum(r["interruptions"]["unexpected"] for r in reports) / len(reports)
    assert mean == pytest.approx(LLAMA3_INTERRUPTIONS, rel=0.15)


def test_interruptions_split_by_cause_as_the_census(reports: list[dict[str, Any]]) -> None:
    pooled = _pooled(reports)
    n = sum(pooled.values())
    census = {c.name: c.rate_per_gpu_s for c in load_causes()}
    total_rate = sum(census.values())
    assert set(pooled) <= set(census)
    for cause, count in MAJOR.items():
        p = count / LLAMA3_INTERRUPTIONS
        tol = SIGMAS * math.sqrt(p * (1 - p) / n)
        share = pooled.get(cause, 0) / n
        assert abs(share - p) <= tol, f"{cause}: share {share:.3f}, expected {p:.3f} +- {tol:.3f}"
    chi2 = 0.0
    for cause, rate in census.items():
        expected = n * rate / total_rate
        assert expected >= 5  # the chi-square approximation holds
        chi2 += (pooled.get(cause, 0) - expected) ** 2 / expected
    assert chi2 < CHI2_17DOF_999, f"chi-square {chi2:.1f} over 18 causes"


def test_effective_training_time_above_85_percent(reports: list[dict[str, Any]]) -> None:
    # Llama 3 reported more than 90%; hot spares keep the job running after each failure.
    for r in reports:
        (job,) = r["large_jobs"]
        assert 0.85 < job["effective_training_time"] <= 1.0
