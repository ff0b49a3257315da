"""The report's GPU-hour breakdown: the parts of the allocated total must sum to it
(docs/ARCHITECTURE.md, "Metrics"), and goodput is productive over allocated."""

from __future__ import annotations

import pytest

from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim.power import PowerConfig
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.sources import load_workload

PARTS = ("productive", "rework_after_failures", "rework_after_preemptions", "restart_overhead",
         "checkpoint_writes", "gang_rounding", "in_progress_at_end")  # fmt: skip


def _report(power: PowerConfig | None) -> dict:
    topo = build(load_fleet_spec("tiny"))
    jobs = load_workload("synthetic", topo, days=2.0, seed=3, load=3.0)
    cfg = SimConfig(days=2.0, seed=3, failure_scale=50.0, power=power)
    return build_report(Twin(topo, jobs, cfg).run(), "synthetic")


def _check(r: dict) -> None:
    gh = r["gpu_hours"]
    assert gh["allocated"] > 0 and gh["rework_after_failures"] + gh["rework_after_preemptions"] > 0
    assert sum(gh[k] for k in PARTS) == pytest.approx(gh["allocated"], rel=1e-5)
    assert r["goodput"] == pytest.approx(gh["productive"] / gh["allocated"], rel=1e-5)


def test_parts_sum_to_the_allocated_total_without_power_modelling() -> None:
    _check(_report(None))


@pytest.mark.xfail(
    strict=True,
    reason="bug (sim accounting, found by this suite): with the power model on (the CLI's "
    "default, --power-policy none), runs slowed by heat or caps hold GPUs longer than their "
    "compute, and that time is in no part of the breakdown, so the parts sum to about 1% less "
    "than the allocated total",
)
def test_parts_sum_to_the_allocated_total_with_the_default_power_model() -> None:
    _check(_report(PowerConfig()))
