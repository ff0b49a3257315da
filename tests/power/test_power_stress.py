"""Seeded random runs under every enforcing policy with debug invariants after every event:
the site, hall and rack caps are never crossed and the power books always balance."""

from __future__ import annotations

import pytest

import testkit
from cortex.sim.power import CapEvent, PowerConfig
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.synthetic import generate

FLEET = testkit.stress_power_fleet(queues=True)


@pytest.mark.parametrize("policy", ["admit", "cap", "full"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_runs_never_cross_a_cap(policy: str, seed: int) -> None:
    jobs = generate(
        days=2.0, seed=seed, fleet_gpus=FLEET.total_gpus, flavors=FLEET.flavors, load=1.3
    )
    pc = PowerConfig(
        policy,
        rack_cap_kw=40.0,
        ramp_limit_mw_per_min=0.05 if policy == "full" else None,
        cap_events=(CapEvent(20 * 3600.0, 6 * 3600.0, 0.22),),
        heat_waves=((30 * 3600.0, 10 * 3600.0, 8.0),),
    )
    tw = Twin(FLEET, jobs, SimConfig(days=2.0, seed=seed, power=pc, debug=True)).run()
    assert tw.pw is not None
    assert len(tw.completed) > 10
    assert tw.pw.solves > 0 or policy == "admit"
