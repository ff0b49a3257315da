"""The facility draw the twin books at every instant (`PowerBooks.it_w`, `facility_w`) keeps the
idle base and the cooling slope between instants: under random failures, repairs, job draws,
weather and model swaps it must give the very doubles the straightforward formula gives."""

from __future__ import annotations

import dataclasses
import random
from types import SimpleNamespace

from test_power_view import FLEET, HORIZON_S

from cortex.sim.power import PowerConfig, PowerRuntime


def _it_w(pw: PowerRuntime, st: SimpleNamespace) -> float:
    """The formula before the memo: healthy nodes idle plus the jobs' increments."""
    base = 0.0
    for f, a in enumerate(pw.topo.accelerators):
        n = st.total_nodes[f]
        base += st.up_gpus[f] * a.idle_w + pw.flavor_overhead_w[f] * (
            st.up_nodes[f] / n if n else 0.0
        )
    return base + pw.actual_total_w


def test_the_kept_draw_is_the_formula_under_random_sequences() -> None:
    rng = random.Random(11)
    for policy in ("none", "full"):
        pw = PowerRuntime.build(FLEET, PowerConfig(policy), HORIZON_S)
        nf = len(FLEET.flavors)
        gpn = list(FLEET.flavor_gpus_per_node)
        total = FLEET.flavor_nodes()
        # What it_w reads of a ClusterState, changed in place as the state's lists are.
        st = SimpleNamespace(
            up_gpus=[n * g for n, g in zip(total, gpn, strict=True)],
            up_nodes=list(total),
            total_nodes=list(total),
        )
        t = 0.0
        for _ in range(3000):
            r = rng.random()
            f = rng.randrange(nf)
            if r < 0.15 and st.up_nodes[f] > 0:  # a node fails
                st.up_nodes[f] -= 1
                st.up_gpus[f] -= gpn[f]
            elif r < 0.3 and st.up_nodes[f] < st.total_nodes[f]:  # one is repaired
                st.up_nodes[f] += 1
                st.up_gpus[f] += gpn[f]
            elif r < 0.35:  # the node count moves alone (read as it is, not as it follows)
                st.up_nodes[f] = rng.randrange(st.total_nodes[f] + 1)
            elif r < 0.38:  # and the GPU count alone
                st.up_gpus[f] = rng.randrange(st.total_nodes[f] * gpn[f] + 1)
            elif r < 0.4:
                st.total_nodes[f] = rng.choice([total[f], total[f] + 1, 0])
            elif r < 0.6:
                pw.actual_total_w = rng.uniform(0.0, 5e6)
            elif r < 0.63:  # another cooling model, or another nameplate
                pue = rng.choice([1.1, 1.25, 1.4])
                pw.cooling = dataclasses.replace(pw.cooling, pue=pue)
            elif r < 0.65:
                pw.nameplate_it_w = rng.choice([pw.nameplate_it_w, 2e7, 3.5e7])
            if rng.random() < 0.5:  # now, later in the tick, or in another tick
                t = rng.choice([t, t + 1.0, rng.uniform(0.0, HORIZON_S)])
            it = pw.it_w(st)  # type: ignore[arg-type]
            assert it == _it_w(pw, st)
            want = pw.cooling.facility_w(it, pw.nameplate_it_w, pw.temp_c(t))
            assert pw.facility_w(it, t) == want


def test_the_temperature_is_the_ticks_under_new_weather_and_ticks() -> None:
    """PowerRuntime.temp_c reads a list kept of the temps array: it must follow a new array
    (of the same length too) and a new tick length, and hold the last tick past the horizon."""
    rng = random.Random(7)
    pw = PowerRuntime.build(FLEET, PowerConfig("none"), HORIZON_S)
    for _ in range(3000):
        r = rng.random()
        if r < 0.02:
            pw.temps = pw.temps + rng.uniform(-5.0, 5.0)  # the same length, other values
        elif r < 0.03:
            pw.cfg = dataclasses.replace(pw.cfg, tick_s=rng.choice([300.0, 900.0, 3600.0]))
        n = len(pw.temps)
        edge = (n + rng.choice([-1, 0, 1])) * pw.cfg.tick_s  # the last tick and just past
        t = rng.choice([0.0, rng.uniform(0.0, 1.2 * HORIZON_S), edge + rng.uniform(0.0, 5e2)])
        assert pw.temp_c(t) == float(pw.temps[min(int(t / pw.cfg.tick_s), n - 1)])
    assert pw.temp_c(10 * HORIZON_S) == float(pw.temps[-1])
