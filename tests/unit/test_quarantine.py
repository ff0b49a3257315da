"""Lemon quarantine (sim/quarantine.py): strikes within a window, the repaired node's thinned
failures, and the twin holding a quarantined node out for its burn-in."""

from __future__ import annotations

import numpy as np
import pytest

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.sim.quarantine import Quarantine, QuarantineRules
from cortex.sim.twin import SimConfig, Twin

DAY = 86_400.0


def _q(mult: list[float], strikes: int = 2, window_s: float = 14 * DAY) -> Quarantine:
    rules = QuarantineRules(strikes, window_s, 2 * DAY)
    return Quarantine(rules, np.array(mult), np.random.default_rng(0))


def test_two_strikes_within_the_window_quarantine_and_older_ones_expire() -> None:
    q = _q([60.0, 0.3])
    assert not q.strike(0, 0.0)
    # 14 days later to the second the first strike has left the window (kept: t > now - w).
    assert not q.strike(0, 14 * DAY)
    assert q.strike(0, 14 * DAY + 1.0)  # two within 14 days: quarantined
    assert (q.quarantined, q.lemons_caught) == (1, 1)
    # Strikes start over after a quarantine: one more failure is not enough.
    assert not q.strike(0, 15 * DAY)
    # A typical node that happens to fail twice is quarantined too, but is no lemon.
    assert not q.strike(1, 0.0) and q.strike(1, DAY)
    assert (q.quarantined, q.lemons_caught) == (2, 1)


def test_a_repaired_node_fails_at_a_typical_rate() -> None:
    q = _q([50.0, 0.5, 1.0])
    q.strike(0, 0.0)
    q.strike(0, 1.0)
    q.strike(1, 0.0)
    q.strike(1, 1.0)
    # Node 0 was at 50x the mean: 1 in 50 of its drawn failures still happen. Node 1 was
    # better than typical: all of them still do. Node 2 was never quarantined.
    assert q.keep == {0: pytest.approx(1 / 50), 1: 1.0}
    n = 200_000
    kept = sum(q.happens(0) for _ in range(n))
    # Binomial(200,000, 0.02): mean 4,000, sd sqrt(200,000 x 0.02 x 0.98) = 62.6; +-5 sd.
    assert abs(kept - 4_000) < 5 * 62.6
    assert all(q.happens(1) for _ in range(1_000)) and all(q.happens(2) for _ in range(1_000))


@pytest.mark.parametrize(
    ("strikes", "window_s", "burn_in_s", "field"),
    [(0, 1.0, 1.0, "strikes"), (2, -1.0, 1.0, "window_s"), (2, 1.0, float("nan"), "burn_in_s")],
)
def test_bad_rules_name_the_field(
    strikes: int, window_s: float, burn_in_s: float, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        QuarantineRules(strikes, window_s, burn_in_s)


def test_the_shipped_rules_load() -> None:
    r = QuarantineRules.load()
    assert r.strikes >= 1 and r.window_s > 0 and r.burn_in_s > 0


def _down_gpu_s(tw: Twin) -> float:
    return tw.topo.total_gpus * tw.horizon_s - float(tw.metrics.up_bins.sum())


def _twin(quarantine: bool) -> Twin:
    # 64 nodes; failures at 2,000x the census for 20 days: about 64 x 8 x 2e-5/h x 480 h x 2,000
    # = 9,800 drawn node failures, so every lemon (1.2% of 64: 0-1 nodes, plus the lognormal
    # tail) strikes twice many times over.
    group = {"flavor": "H100-SXM5", "nodes": 64, "nodes_per_pod": 16}
    topo = build(parse_fleet({"name": "f", "halls": [{"name": "h", "groups": [group]}]}, "t"))
    cfg = SimConfig(days=20, seed=5, failure_scale=2000.0, quarantine=quarantine)
    return Twin(topo, [], cfg).run()


def test_quarantine_holds_nodes_out_and_thins_their_failures() -> None:
    off, on = _twin(False), _twin(True)
    assert off.quarantine is None
    q = on.quarantine
    assert q is not None and q.quarantined > 0
    # Every quarantine keeps its node down for the burn-in beyond its repair, within the
    # horizon: at most 8 GPUs x 2 days of extra down time each.
    assert 0 < q.out_gpu_s <= q.quarantined * 8 * q.rules.burn_in_s
    assert _down_gpu_s(on) >= q.out_gpu_s
    # Failures landing on a node held out (or thinned after repair) do not count: fewer node
    # failures happen than were drawn, and fewer than without quarantine.
    assert on.metrics.failures_total < off.metrics.failures_total
