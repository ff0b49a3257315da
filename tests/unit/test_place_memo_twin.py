"""Capacity.placed (full21: placements power admission refused, kept with the state version
across passes) in whole twin runs: a binding ramp window refuses gangs of several nodes, and
the runs also see node failures and repairs, lemon quarantine, preemptions, rolled-back
passes and two flavors whose nodes interleave. Each run's report is the report of the same run
with nothing kept (`_Cycle.keep_refused` a no-op), and the memo answers some placements."""

from __future__ import annotations

import json

import pytest

import cortex.scheduler.cycle as cycle_mod
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.sim.power import PowerConfig
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.sources import load_workload


def _group(flavor: str, nodes: int) -> dict:
    return {"flavor": flavor, "nodes": nodes, "gpus_per_node": 8, "nodes_per_pod": 4}


MIXED = build(
    parse_fleet(
        {
            "name": "mixed-ramp",
            "site": {"name": "lab", "power_cap_mw": 1.2, "pue": 1.2},
            "halls": [
                {"name": "h1", "groups": [_group("H100-SXM5", 8), _group("H200-SXM", 8)]},
                {"name": "h2", "groups": [_group("H100-SXM5", 8)]},
            ],
        },
        "test",
    )
)


def _report(topo: Topology, seed: int, policy: str, quarantine: bool) -> str:
    jobs = load_workload("synthetic", topo, days=5.0, seed=seed, load=4.0)
    cfg = SimConfig(
        days=5.0,
        seed=seed,
        policy=policy,
        failure_scale=50.0,
        quarantine=quarantine,
        power=PowerConfig(policy="full", ramp_limit_mw_per_min=0.001),
        debug=True,
    )
    r = build_report(Twin(topo, jobs, cfg).run(), "synthetic")
    r.pop("wall_s", None)
    r.pop("timing", None)
    return json.dumps(r, sort_keys=True, default=str)


@pytest.mark.parametrize(
    ("seed", "policy", "quarantine"), [(2, "priority", True), (2, "las", False), (1, "las", True)]
)
def test_kept_refused_placements_change_no_report(
    seed: int, policy: str, quarantine: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    place = cycle_mod._Cycle.place
    hits = 0

    def counted(self: cycle_mod._Cycle, f: int, gang: int, alloc: int) -> object:
        nonlocal hits
        placed = self.st.placed
        if placed[0] == self.st.version and placed[1] is self.pol.placement:
            hits += (f, gang) in placed[2]
        return place(self, f, gang, alloc)

    monkeypatch.setattr(cycle_mod._Cycle, "place", counted)
    kept = _report(MIXED, seed, policy, quarantine)
    assert hits > 0  # the memo answered placements in this run
    monkeypatch.setattr(cycle_mod._Cycle, "keep_refused", lambda self, f, gang, p: None)
    assert _report(MIXED, seed, policy, quarantine) == kept
