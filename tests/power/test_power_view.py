"""PowerBooks.view reads the budgets once per call (drive/power_books.py): every field must
equal what the books' own budget methods say at that moment, whatever the driver reserved,
whatever steps the ramp window holds, at any time of the run."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.sim.power import PowerConfig, PowerRuntime

HORIZON_S = 3 * 86400.0
# Two halls with finite limits (one by its IT cap, one by cooling), so that hall budgets and
# the driver's hall reservations show in the view.
FLEET = build(
    parse_fleet(
        {
            "name": "two-halls",
            "site": {"name": "lab", "power_cap_mw": 1.2, "pue": 1.2},
            "halls": [
                {
                    "name": "h1",
                    "power_cap_mw": 0.3,
                    "groups": [{"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}],
                },
                {
                    "name": "h2",
                    "cooling_mw": 0.4,
                    "groups": [{"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}],
                },
            ],
        },
        "test",
    )
)


def _books(policy: str) -> PowerRuntime:
    # Austin's weather (no fixed temperature): budgets and the ramp limit move tick by tick.
    return PowerRuntime.build(FLEET, PowerConfig(policy), HORIZON_S)


@given(
    policy=st.sampled_from(["full", "cap", "none"]),
    t=st.floats(0.0, HORIZON_S),
    steps=st.lists(st.tuples(st.floats(-200.0, 30.0), st.floats(0.0, 5e4)), max_size=6),
    reserved_w=st.sampled_from([0.0, 1234.5, 2e4]),
    reserved_hall_w=st.sampled_from([{}, {0: 777.25}, {1: 0.0}, {0: 10.0, 1: 20.5}]),
    inc_w=st.floats(0.0, 3e5),
)
@settings(max_examples=120, deadline=None)
def test_the_view_says_what_the_budget_methods_say(
    policy: str,
    t: float,
    steps: list[tuple[float, float]],
    reserved_w: float,
    reserved_hall_w: dict[int, float],
    inc_w: float,
) -> None:
    pw = _books(policy)
    for dt, w in sorted(steps):
        pw.add_step(t + dt, w)  # some within the last minute (they count), some older
    pw.reserved_w = reserved_w
    pw.reserved_hall_w = dict(reserved_hall_w)
    pw.inc_total_w = inc_w
    pw.hall_inc_w = [inc_w * 0.5, inc_w * 0.25]
    v = pw.view(t)
    site = pw.site_budget_w(t)
    assert v.site_budget_w == site
    assert v.site_headroom_w == site - inc_w
    hb = pw.hall_budget_w(t)
    assert all(math.isfinite(b) for b in hb)
    assert list(v.hall_headroom_w) == [hb[0] - inc_w * 0.5, hb[1] - inc_w * 0.25]
    assert v.ramp_limit_w == pw.ramp_limit_it_w(t)
    assert v.ramp_headroom_w == pw.ramp_headroom_it_w(t)


def test_a_view_under_a_ramp_limit_by_hand() -> None:
    # `full`: a ramp limit from grid.csv. One step of 1,000 W 30 s ago counts against the
    # window (it started within the last 60 s); one 90 s ago no longer does; the driver holds
    # back 500 W of the site and 200 W of hall 0.
    pw = _books("full")
    t = 7200.0
    limit = pw.ramp_limit_it_w(t)
    assert 1000.0 < limit < math.inf
    pw.add_step(t - 90.0, 4000.0)
    pw.add_step(t - 30.0, 1000.0)
    pw.reserved_w = 500.0
    pw.reserved_hall_w = {0: 200.0}
    site_all, halls_all = pw._budgets(t)
    v = pw.view(t)
    assert v.ramp_headroom_w == limit - 1000.0
    assert v.site_budget_w == site_all - 500.0
    assert v.site_headroom_w == site_all - 500.0  # nothing running
    assert list(v.hall_headroom_w) == [halls_all[0] - 200.0, halls_all[1]]
