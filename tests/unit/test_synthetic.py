"""Synthetic workload: deterministic per seed, calibrated to the published bands, gang-safe."""

from __future__ import annotations

import math
from functools import cache

import pytest

from cortex.errors import InputError
from cortex.workload import synthetic
from cortex.workload.job import Job
from cortex.workload.spec import WorkloadKind
from cortex.workload.synthetic import describe, generate

FLEET_GPUS = 100_000
FIELDS = ("id", "name", "team", "gpus", "work_s", "priority_class", "flavors", "kind", "submit_s",
          "ckpt_write_s")  # fmt: skip


@cache
def _month(seed: int) -> tuple[Job, ...]:
    return tuple(generate(days=30, seed=seed, fleet_gpus=FLEET_GPUS))


def _key(jobs: list[Job] | tuple[Job, ...]) -> list[tuple[object, ...]]:
    return [tuple(getattr(j, f) for f in FIELDS) for j in jobs]


def test_same_seed_gives_identical_jobs() -> None:
    a = generate(days=3, seed=7, fleet_gpus=10_000)
    b = generate(days=3, seed=7, fleet_gpus=10_000)
    assert a and _key(a) == _key(b)


def test_different_seed_differs() -> None:
    assert _key(generate(days=3, seed=1, fleet_gpus=10_000)) != _key(
        generate(days=3, seed=2, fleet_gpus=10_000)
    )


def test_ids_are_dense_and_jobs_sorted_by_submit_time() -> None:
    jobs = _month(0)
    assert [j.id for j in jobs] == list(range(len(jobs)))
    submits = [j.submit_s for j in jobs]
    assert submits == sorted(submits)
    assert submits[0] >= 0 and submits[-1] < 30 * synthetic.DAY_S


def test_a_month_at_100k_gpus_has_at_least_50k_jobs() -> None:
    assert len(_month(0)) >= 50_000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calibration_within_published_bands(seed: int) -> None:
    stats = describe(list(_month(seed)), fleet_gpus=FLEET_GPUS)
    assert stats["share_jobs_1gpu"] > synthetic.META_SHARE_JOBS_1GPU_MIN
    assert stats["share_jobs_lt8"] > synthetic.META_SHARE_JOBS_LT8_MIN
    assert stats["gpu_time_share_lt8"] < synthetic.META_GPU_TIME_LT8_MAX
    lo, hi = synthetic.META_GPU_TIME_GE256
    assert lo <= stats["gpu_time_share_ge256"] <= hi
    # small-job runtimes: median between Helios's and Philly's, heavy-tailed mean
    median, mean = stats["small_median_runtime_s"], stats["small_mean_runtime_s"]
    assert synthetic.HELIOS_MEDIAN_RUNTIME_S <= median <= synthetic.PHILLY_MEDIAN_RUNTIME_S
    assert 10 * median < mean <= synthetic.PHILLY_MEAN_RUNTIME_S
    assert stats["offered_load"] == pytest.approx(0.85, abs=0.1)
    # big runs arrive spread over the month, roughly every 1-3 days
    assert 1.0 <= stats["big_run_interarrival_days"] <= 3.0


def test_diurnal_more_arrivals_in_afternoon_than_at_night() -> None:
    jobs = _month(0)
    hours = [int(j.submit_s % synthetic.DAY_S // 3600) for j in jobs]
    afternoon = sum(1 for h in hours if 12 <= h < 18)
    night = sum(1 for h in hours if h < 6)
    assert afternoon > 1.5 * night
    assert describe(list(jobs))["afternoon_to_night_arrivals"] == pytest.approx(afternoon / night)


@pytest.mark.parametrize("fleet_gpus", [1, 7, 16, 100, 1_000, 20_000])
def test_no_gang_larger_than_half_the_fleet(fleet_gpus: int) -> None:
    jobs = generate(days=60, seed=3, fleet_gpus=fleet_gpus)
    assert jobs
    assert max(j.gpus for j in jobs) <= max(1, fleet_gpus // 2)


def test_offered_load_scales_with_fleet_and_load() -> None:
    jobs = generate(days=60, seed=4, fleet_gpus=2_000, load=0.5)
    assert describe(jobs, fleet_gpus=2_000)["offered_load"] == pytest.approx(0.5, rel=0.35)


def test_job_mix() -> None:
    jobs = _month(0)
    kinds = {k.value for k in WorkloadKind}
    assert {j.kind for j in jobs} <= kinds
    assert {j.team for j in jobs} == {"fsd", "optimus", "research"}
    assert {j.priority_class for j in jobs} == {"production", "normal", "preemptible"}
    big = [j for j in jobs if j.gpus >= 4_096]
    assert big and all(j.priority_class == "production" for j in big)
    assert all(j.kind in ("fsd-video", "optimus-policy") for j in big)
    assert all(j.work_s >= synthetic.DAY_S for j in big)
    assert all(j.gpus % 8 == 0 for j in jobs if j.gpus >= 64)
    assert all(j.gpus in (1, 2, 4, 8) for j in jobs if j.gpus < 64)
    preemptible = [j for j in jobs if j.priority_class == "preemptible"]
    assert all(j.team == "research" or j.kind == "eval" for j in preemptible)
    assert not any(j.flavors for j in jobs)  # no fleet flavors given: any flavor


def test_checkpoint_time_only_for_large_jobs() -> None:
    for j in _month(0):
        if j.gpus >= synthetic.CKPT_MIN_GPUS:
            assert j.ckpt_write_s is not None and 5.0 < j.ckpt_write_s < 30.0
        else:
            assert j.ckpt_write_s is None
    # Llama 3 405B on 16,384 GPUs: ~6 TB of state at 2 TB/s is ~3 s of data
    assert synthetic._ckpt_write_s(16_384) == pytest.approx(synthetic.CKPT_FIXED_S + 3.04, abs=0.05)


def test_fleet_flavors_set_big_run_preferences() -> None:
    jobs = generate(days=10, seed=5, fleet_gpus=50_000, flavors=("H100-SXM5", "H200-SXM"))
    big = [j for j in jobs if j.priority_class == "production"]
    assert big and all(j.flavors == ("H200-SXM", "H100-SXM5") for j in big)
    assert all(j.flavors == () for j in jobs if j.priority_class != "production")
    dojo_only = generate(days=10, seed=5, fleet_gpus=50_000, flavors=("Dojo-D1",))
    assert all(j.flavors == () for j in dojo_only)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"days": 0}, "days"),
        ({"days": math.nan}, "days"),
        ({"fleet_gpus": 0}, "fleet_gpus"),
        ({"load": -0.1}, "load"),
        ({"flavors": ("A100",)}, "flavors"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"days": 1.0, "seed": 0, "fleet_gpus": 1_000, **kwargs}
    with pytest.raises(InputError) as err:
        generate(**args)
    assert err.value.field == field


def test_band_shares_add_up() -> None:
    shares = (synthetic.SMALL_GPU_TIME_SHARE, synthetic.MID_GPU_TIME_SHARE,
              synthetic.BIG_GPU_TIME_SHARE)  # fmt: skip
    assert all(0 < s < 1 for s in shares)
    assert sum(shares) == pytest.approx(1.0)


def test_describe_empty() -> None:
    assert describe([]) == {"jobs": 0.0}
