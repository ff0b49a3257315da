"""The ramp window (drive/power_books.py) is judged at the decision time: at `now`, every
upward step booked in (now - 60 s, now] counts against the limit, and so do a staggered start's
waves booked for later minutes. A staggered start books its waves at t, t + 60 s, t + 120 s, ...
in one go; the window must not drop steps relative to the newest wave's time (it once pruned by
the added step's time, so from the third wave on the start's own first wave and any other step
of the last minute left the window at once)."""

from __future__ import annotations

import math
from types import SimpleNamespace

from cortex.control.ui.power_view import _ramp
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.workload.job import Job

# One hall of four 8-GPU nodes at a fixed temperature, so that the ramp limit is constant.
FLEET = build(
    parse_fleet(
        {
            "name": "ramp",
            "site": {"name": "lab", "power_cap_mw": 1.0, "pue": 1.2},
            "halls": [
                {
                    "name": "h1",
                    "groups": [{"flavor": "H100-SXM5", "nodes": 4, "nodes_per_pod": 4}],
                }
            ],
        },
        "test",
    )
)
T = 7200.0
PLACEMENT = ((0, 8), (1, 8), (2, 8), (3, 8))


def _books_and_start() -> tuple[PowerRuntime, Job, float]:
    """Books whose ramp limit is 2/5 of a 32-GPU start's increment: the start needs
    ceil(5/2) = 3 waves. Returns the books, the job and its increment (IT W over idle)."""
    pw = PowerRuntime.build(FLEET, PowerConfig("full", temperature_c=25.0), 86400.0)
    job = Job(1, "j", "a", 32, 3600.0, kind="llm")
    inc = pw.ladder(job, 0, 32, math.inf)[1][0]
    # limit = ramp MW/min * 1e6 / slope(T): pick the MW/min that makes it inc / 2.5.
    pw.ramp_mw_per_min = inc / 2.5 * pw.cooling.slope(pw.temp_c(T)) / 1e6
    return pw, job, inc


def _counted_w(pw: PowerRuntime, now: float) -> float:
    return sum(w for ts, w in pw.window if now - 60.0 < ts)


def test_a_staggered_start_keeps_every_wave_and_the_last_minutes_steps() -> None:
    pw, job, inc = _books_and_start()
    limit = pw.ramp_limit_it_w(T)
    assert math.isclose(limit, inc / 2.5)
    pw.add_step(T - 10.0, 0.1 * limit)  # a cap raise 10 s before the decision: counts to T+50
    pw.add_step(T - 70.0, 0.2 * limit)  # one 70 s before: no longer counts at T
    _, waves = pw.start(job, 0, 32, PLACEMENT, 0, T)
    assert waves == 3
    wave = inc / 3
    # At T the window holds the raise 10 s ago and all three waves (T, T+60, T+120).
    assert [ts for ts, _ in pw.window if ts > T - 60.0] == [T - 10.0, T, T + 60.0, T + 120.0]
    assert [w for ts, w in pw.window if ts >= T] == [wave, wave, wave]
    assert math.isclose(_counted_w(pw, T), 0.1 * limit + inc)
    assert pw.ramp_headroom_it_w(T) == 0.0
    # 40 s on (T+40), the raise still counts; at T+50 (T - 10 + 60) it has left.
    assert math.isclose(_counted_w(pw, T + 40.0), 0.1 * limit + inc)
    assert math.isclose(_counted_w(pw, T + 50.0), inc)


def test_the_window_after_a_staggered_start_minute_by_minute() -> None:
    # Into a clear window (the only way admission lets a staggered start in): at T, T+30 all
    # three waves count (5/2 of the limit: no room); from T+60 the last two (5/3 of it: none);
    # from T+120 the last one (inc / 3 = 5/6 of the limit: 1/6 left); from T+180 none.
    pw, job, inc = _books_and_start()
    limit = pw.ramp_limit_it_w(T)
    pw.start(job, 0, 32, PLACEMENT, 0, T)
    assert math.isclose(_counted_w(pw, T), inc)
    assert math.isclose(_counted_w(pw, T + 30.0), inc)
    assert pw.ramp_headroom_it_w(T + 30.0) == 0.0
    assert math.isclose(_counted_w(pw, T + 60.0), 2 * inc / 3)
    assert pw.ramp_headroom_it_w(T + 60.0) == 0.0
    assert math.isclose(pw.ramp_headroom_it_w(T + 120.0), limit - inc / 3)
    assert pw.ramp_headroom_it_w(T + 180.0) == limit
    # A later step prunes by its own time (its decision time): the waves no read from then on
    # counts are gone (the twin keeps a step a minute, WINDOW_KEEP_S; the shared books two).
    pw.add_step(T + 130.0, 1.0)
    assert [ts for ts, _ in pw.window] == [T + 120.0, T + 130.0]


def test_the_power_page_reads_the_same_window() -> None:
    # The control plane's power page (control/ui/power_view.py) reads these books' window: with
    # the raise at T-10 and the three waves booked (T, T+60, T+120), nothing is left and the
    # window clears when the last wave leaves, in 180 s, the time `ramp_clear_at` gives the
    # scheduler (the old pruning left only the two future waves: "clears in 0 s" with no room;
    # the page's own copy of the rule then said 50 s, when the raise leaves and the waves stay).
    pw, job, _ = _books_and_start()
    pw.add_step(T - 10.0, 0.1 * pw.ramp_limit_it_w(T))
    pw.start(job, 0, 32, PLACEMENT, 0, T)
    page = SimpleNamespace(ramp_headroom_w=None, ramp_clear_s=None)
    _ramp(page, pw, T)  # type: ignore[arg-type]
    assert page.ramp_headroom_w == 0.0
    assert page.ramp_clear_s == 180.0
    assert page.ramp_clear_s == pw.ramp_clear_at(T) - T


def test_the_window_has_room_again_when_the_steps_ahead_of_it_have_left() -> None:
    """`ramp_clear_at` answers when the headroom a blocked start needs returns, not when the
    oldest counted step leaves (it said T + 50, then T + 60, where no room came back before
    T + 120: bench/RESULTS.md section 99). By hand, limit L = inc / 2.5, three waves of
    inc / 3 = 5L/6 at T, T+60, T+120 and a raise of 0.1 L at T-10: the headroom is 0 at T,
    T+50 (the raise left: L - 2.5 L) and T+60 (the first wave left: L - 5L/3); L/6 from T+120
    (L - 5L/6, beside the last wave); L from T+180."""
    pw, job, inc = _books_and_start()
    limit = pw.ramp_limit_it_w(T)
    pw.add_step(T - 10.0, 0.1 * limit)
    _, waves = pw.start(job, 0, 32, PLACEMENT, 0, T)
    assert waves == 3 and math.isclose(inc / 3, 5 * limit / 6)
    assert [pw.ramp_headroom_it_w(T + d) for d in (0.0, 50.0, 60.0)] == [0.0, 0.0, 0.0]
    assert math.isclose(pw.ramp_headroom_it_w(T + 120.0), limit / 6)
    # A step of 0.1 L fits beside the last wave: room at T + 120, from T and from T + 50.
    assert pw.ramp_clear_at(T, 0.1 * limit) == T + 120.0
    assert pw.ramp_clear_at(T + 50.0, 0.1 * limit) == T + 120.0
    # Half the limit does not: it waits for the clear window, T + 180, as does a start larger
    # than the limit (a clear window takes it alone) and a caller that names no need.
    assert pw.ramp_clear_at(T, 0.5 * limit) == T + 180.0
    assert pw.ramp_clear_at(T, 3.0 * limit) == T + 180.0
    assert pw.ramp_clear_at(T + 60.0) == T + 180.0
    # Room there already: now; an empty window: now.
    assert pw.ramp_clear_at(T + 120.0, 0.1 * limit) == T + 120.0
    assert pw.ramp_clear_at(T + 500.0, 0.1 * limit) == T + 500.0


def test_the_twin_drops_only_steps_it_can_no_longer_read() -> None:
    """The twin keeps a step a minute after the decision that booked one (WINDOW_KEEP_S), the
    shared books two: at every instant from the last decision on, both read the same headroom
    and the same clearing instant, while the twin's window holds no step that can no longer
    count (its reads never go back in time)."""
    pw, _, _ = _books_and_start()
    keep = PowerRuntime.build(FLEET, PowerConfig("full", temperature_c=25.0), 86400.0)
    keep.ramp_mw_per_min = pw.ramp_mw_per_min
    keep.WINDOW_KEEP_S = 120.0  # the shared books' horizon, on an instance
    assert PowerRuntime.WINDOW_KEEP_S == 60.0
    limit = pw.ramp_limit_it_w(T)
    now = T
    # Steps at and around a minute before each decision, cap raises and staggered starts.
    for i, (dt, frac) in enumerate(
        [(0.0, 0.1), (59.5, 0.2), (0.25, 0.05), (60.0, 0.1), (0.5, 0.3), (59.999, 0.05)]
    ):
        now += dt
        for b in (pw, keep):
            b.add_step(now, frac * limit)
            if i == 4:  # a staggered start: waves booked ahead of now
                for k in range(1, 3):
                    b.add_step(now + 60.0 * k, 0.2 * limit, now=now)
        assert all(now - 60.0 < ts for ts, _ in pw.window)
        for t in [now + x for x in (0.0, 1e-6, 0.25, 0.5, 1.0, 59.5, 59.999, 60.0, 61.0, 130.0)]:
            assert pw.ramp_headroom_it_w(t) == keep.ramp_headroom_it_w(t)
            assert pw.ramp_clear_at(t) == keep.ramp_clear_at(t)
            assert pw.ramp_clear_at(t, 0.5 * limit) == keep.ramp_clear_at(t, 0.5 * limit)
    assert len(pw.window) < len(keep.window)  # it did drop steps
