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

# The books (sim/books.py): these parts are what allocated time (plus the victims' writes on
# devices already freed) was spent on; `in_progress_at_end` is a memo line inside productive.
PARTS = ("productive", "rework_after_failures", "rework_after_preemptions", "restart_overhead",
         "checkpoint_writes", "lost_to_power_caps", "lost_to_heat", "gang_rounding")  # fmt: skip


def _report(power: PowerConfig | None) -> dict:
    topo = build(load_fleet_spec("tiny"))
    jobs = load_workload("synthetic", topo, days=2.0, seed=3, load=3.0)
    cfg = SimConfig(days=2.0, seed=3, failure_scale=50.0, power=power)
    return build_report(Twin(topo, jobs, cfg).run(), "synthetic")


def _check(r: dict) -> None:
    gh = r["gpu_hours"]
    assert gh["allocated"] > 0 and gh["rework_after_failures"] + gh["rework_after_preemptions"] > 0
    spent = gh["installed"] - gh["idle"] - gh["down"]
    assert sum(gh[k] for k in PARTS) == pytest.approx(spent, rel=1e-5)
    # Each line is rounded to 6 significant digits: `spent` comes from installed - idle - down,
    # whose rounding (idle ~2,000 h: up to 0.005 h) is up to ~5e-6 of ~900 h spent.
    assert gh["allocated"] <= spent * (1 + 1e-5)
    assert 0 < gh["in_progress_at_end"] <= gh["productive"]
    assert r["goodput"] == pytest.approx(gh["productive"] / gh["allocated"], rel=1e-5)


def test_parts_sum_to_the_allocated_total_without_power_modelling() -> None:
    _check(_report(None))


def test_parts_sum_to_the_allocated_total_with_the_default_power_model() -> None:
    """Was a strict xfail: runs slowed by heat held GPUs in no part of the breakdown; the
    books now carry it as lost_to_heat."""
    r = _report(PowerConfig())
    assert r["gpu_hours"]["lost_to_heat"] > 0
    _check(r)
