"""The twin's per-pass view (PowerRuntime.pass_view, sim/power.py): the books' own fields taken
once, the budgets and ramp limit kept per tick. Every field must be what a fresh `view` says at
that moment, whatever moved since the last pass: the tick, the ramp window, the books' watts,
the solver's target, the temperatures, the site cap, what a driver reserves, cap events."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any, ClassVar

import numpy as np
import pytest
from test_power_stress import FLEET as STRESS
from test_power_view import FLEET, HORIZON_S

from cortex.drive.power_books import window_headroom_w
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.power import PowerView
from cortex.sim.power import CapEvent, PowerConfig, PowerRuntime, _tick_start_s
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.synthetic import generate


def _fields(v: PowerView) -> dict:
    out = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
    out["hall_headroom_w"] = list(out["hall_headroom_w"])
    return out


def _same(pw: PowerRuntime, t: float) -> None:
    got = _fields(pw.pass_view(t))
    want = _fields(pw.view(t))
    assert got == want, t


def test_the_pass_view_is_the_view_whatever_moved() -> None:
    pw = PowerRuntime.build(FLEET, PowerConfig("full"), HORIZON_S)
    tick = pw.cfg.tick_s
    _same(pw, 10.0)
    for k, t in enumerate([20.0, 50.0, tick - 1.0, tick, 3.5 * tick, 3.6 * tick, 90 * tick]):
        pw.add_step(t - 30.0, 1000.0 * (k + 1))  # counts against this pass's window
        pw.inc_total_w += 5000.0
        pw.hall_inc_w = [w + 1000.0 * (h + 1) for h, w in enumerate(pw.hall_inc_w)]
        _same(pw, t)
    pw.target = {("llm", 0, 1, 0): 3}  # the solver replaces it whole
    _same(pw, 90 * tick)
    pw.temps = np.asarray(pw.temps) + 7.5  # a driver replaces the weather: new budgets, limit
    _same(pw, 90 * tick)
    pw.site_cap_w *= 0.9  # the same tick, a lower site cap
    _same(pw, 90 * tick)
    pw.reserved_w = 1234.5
    pw.reserved_hall_w = {0: 777.25}
    _same(pw, 90 * tick)
    pw.reserved_w = 0.0
    pw.reserved_hall_w = {}
    _same(pw, 90 * tick)  # back to nothing reserved, within the tick last read with some
    pw.reserved_hall_w = {0: 555.5}  # a hall's reserve alone, after a pass kept the tick's
    _same(pw, 90 * tick)
    pw.reserved_hall_w = {}
    _same(pw, 90 * tick)
    _same(pw, 10.0)  # an earlier tick


def test_the_pass_view_follows_cap_events_within_a_tick() -> None:
    ev = CapEvent(start_s=1000.0, duration_s=300.0, cap_mw=1.0)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", cap_events=(ev,)), HORIZON_S)
    for t in (950.0, 999.0, 1000.0, 1200.0, 1299.0, 1300.0, 1350.0):  # all in one 900 s tick
        _same(pw, t)


@pytest.mark.parametrize("events", [False, True])
def test_every_pass_of_a_run_reads_what_a_fresh_view_says(events: bool) -> None:
    # Two capped days of a small two-hall fleet under `full` (test_power_stress.py's), with
    # and without a cap event: the twin's passes, each compared as it runs.
    jobs = generate(
        days=2.0, seed=1, fleet_gpus=STRESS.total_gpus, flavors=STRESS.flavors, load=1.3
    )
    pc = PowerConfig(
        "full",
        rack_cap_kw=40.0,
        ramp_limit_mw_per_min=0.05,
        cap_events=(CapEvent(20 * 3600.0, 6 * 3600.0, 0.22),) if events else (),
    )
    tw = Twin(STRESS, jobs, SimConfig(days=2.0, seed=1, power=pc))
    pw = tw.pw
    assert pw is not None
    real = pw.pass_view
    seen = []

    def checked(t: float) -> PowerView:
        want = _fields(pw.view(t))
        got = real(t)
        assert _fields(got) == want, t
        seen.append(t)
        return got

    pw.pass_view = checked  # type: ignore[method-assign]
    tw.run()
    assert len(seen) > 10
    assert pw.solves > 0


@pytest.mark.parametrize("seed", range(8))
def test_the_ramp_headroom_a_pass_reads_is_the_whole_windows(seed: int) -> None:
    # pass_view drops the steps a minute old from the window's front and sums the rest in one
    # go where all of them count: at every pass of a random run of starts (some staggered, their
    # later waves booked ahead), it must read what the plain rule reads over every step ever
    # booked, none dropped.
    rng = random.Random(seed)
    pw = PowerRuntime.build(FLEET, PowerConfig("full"), HORIZON_S)
    every: list[tuple[float, float]] = []
    t = 0.0
    for _ in range(300):
        t += rng.choice([0.0, 0.5, 1.0, 20.0, 59.0, 59.5, 60.0, 60.5, 120.0])
        if rng.random() < 0.6:
            waves = rng.choice([1, 1, 2, 3, 5])
            w = rng.uniform(0.05, 1.5) * pw.ramp_limit_it_w(t) / waves
            for i in range(waves):
                pw.add_step(t + 60.0 * i, w, now=t)
                every.append((t + 60.0 * i, w))
        want = window_headroom_w(every, t, pw.ramp_limit_it_w(t))
        assert pw.pass_view(t).ramp_headroom_w == want, (seed, t)
        assert pw.ramp_headroom_it_w(t) == want  # what a solve's raises read after the pass


def test_a_one_or_two_step_window_counts_only_steps_of_the_last_minute() -> None:
    # pass_view sums a window of one or two steps without a pass over it, once both are of the
    # last minute. With books that keep steps two minutes (the shared books' keep: the prune
    # then leaves a step more than a minute old at the front) the front step is checked too:
    # each pass reads what the plain rule reads over the window.
    @dataclasses.dataclass(kw_only=True)
    class KeepTwo(PowerRuntime):
        WINDOW_KEEP_S: ClassVar[float] = 120.0

    for cls in (PowerRuntime, KeepTwo):
        for ages in ((90.0,), (90.0, 30.0), (30.0,), (30.0, 10.0), (59.5, 60.0), (60.0,)):
            pw = cls.build(FLEET, PowerConfig("full"), HORIZON_S)
            t = 1000.0
            limit = pw.ramp_limit_it_w(t)
            steps = [(t - age, 0.3 * limit * (k + 1)) for k, age in enumerate(ages)]
            for ts, w in steps:
                pw.add_step(ts, w, now=t - 100.0)
            want = window_headroom_w(steps, t, limit)
            assert pw.pass_view(t).ramp_headroom_w == want, (cls, ages)
            assert pw.ramp_headroom_it_w(t) == want


def _halls_fleet(n: int) -> Any:
    """`n` halls, each bound by its own cooling (so each hall's budget moves with the weather
    and differs from the others')."""
    halls = [
        {
            "name": f"h{k}",
            "cooling_mw": 0.3 + 0.05 * k,
            "groups": [{"flavor": "H100-SXM5", "nodes": 4, "nodes_per_pod": 4}],
        }
        for k in range(n)
    ]
    spec = {"name": f"{n}-halls", "site": {"name": "lab", "power_cap_mw": 0.6 * n}, "halls": halls}
    return build(parse_fleet(spec, "test"))


@pytest.mark.parametrize("tick_s", [900.0, 0.1, 7.3, 1.0 / 3.0, 1e-3, 86400.0, 3e-7, 1e5 / 3.0])
def test_a_tick_starts_where_the_quotient_reaches_it(tick_s: float) -> None:
    # _tick_start_s: the least instant whose int(t / tick_s) is the tick, for ticks before,
    # at and after 0 (int() truncates toward zero: tick 0 spans (-tick_s, tick_s)).
    for i in [*range(-4, 60), 97, 2977, 10**6, 2**40]:
        s = _tick_start_s(i, tick_s)
        assert int(s / tick_s) >= i, (tick_s, i)
        assert int(math.nextafter(s, -math.inf) / tick_s) < i, (tick_s, i)


def test_the_pass_view_reads_each_side_of_a_tick_boundary_and_each_tick_once() -> None:
    pw = PowerRuntime.build(FLEET, PowerConfig("full"), HORIZON_S)
    tick = pw.cfg.tick_s
    last = len(pw.temps) - 1
    reads = []
    real = pw._pass_inputs

    def counted(t: float) -> tuple:
        reads.append(t)
        return real(t)

    pw._pass_inputs = counted  # type: ignore[method-assign]
    # Ticks whose weather differs from the tick before (so their budgets differ), then the last
    # tick and past the horizon.
    ks = [k for k in range(1, last) if pw.temps[k] != pw.temps[k - 1]][:6]
    assert len(ks) == 6
    for k in [*ks, last]:
        start = _tick_start_s(k, tick)
        before, after = math.nextafter(start, -math.inf), math.nextafter(start, math.inf)
        for t in (before - 5.0, before, start, after, start + 5.0, before):
            _same(pw, t)  # the last one: back into the tick before
    n = len(reads)
    for t in (last * tick + 1.0, (last + 3) * tick, 1e12):  # past the horizon: the last tick's
        _same(pw, t)
    assert len(reads) == n + 1  # the last tick's span has no end
    assert pw._pass_memo is not None and pw._pass_memo[1] == math.inf
    reads.clear()
    for t in (20 * tick + 1.0, 20 * tick + 2.0, 20 * tick + 450.0, 21 * tick - 1.0):
        _same(pw, t)
    assert len(reads) == 1  # a tick's inputs are read once


def test_the_pass_view_follows_a_new_config() -> None:
    # A driver may hand the books another config (another tick): the kept inputs are not read.
    pw = PowerRuntime.build(FLEET, PowerConfig("full"), HORIZON_S)
    t = 3.4 * pw.cfg.tick_s
    _same(pw, t)
    pw.cfg = dataclasses.replace(pw.cfg, tick_s=300.0)
    _same(pw, t)


@pytest.mark.parametrize("n_halls", [1, 2, 4, 5])
def test_every_hall_count_reads_the_budgets_less_each_halls_increment(n_halls: int) -> None:
    pw = PowerRuntime.build(_halls_fleet(n_halls), PowerConfig("full"), HORIZON_S)
    t = 7000.0
    # Each hall a different increment, including one over its budget and a -0.0.
    pw.hall_inc_w = [1000.0 * (h + 1) + 0.5 * h for h in range(n_halls)]
    pw.hall_inc_w[-1] = 1e9
    if n_halls > 1:
        pw.hall_inc_w[0] = -0.0
    _same(pw, t)
    got = pw.pass_view(t).hall_headroom_w
    hb = pw.hall_budget_w(t)
    assert [repr(x) for x in got] == [repr(b - i) for b, i in zip(hb, pw.hall_inc_w, strict=True)]
    # Books whose increments are one hall short or one long read as map reads them: the halls
    # both name.
    for inc in (pw.hall_inc_w[:-1], [*pw.hall_inc_w, 77.0]):
        pw.hall_inc_w = inc
        _same(pw, t)


def test_a_step_of_no_time_counts_as_the_plain_rule_counts_it() -> None:
    # A step whose instant is NaN is never a minute old and never counted (window_headroom_w's
    # `cut < ts`): the pass reads the plain rule's headroom, the step left in the window.
    pw = PowerRuntime.build(FLEET, PowerConfig("full"), HORIZON_S)
    t = 1000.0
    limit = pw.ramp_limit_it_w(t)
    two = [(t - 10.0, 0.2 * limit), (math.nan, 0.3 * limit)]
    three = [(math.nan, 0.3 * limit), (t - 10.0, 0.2 * limit), (t - 5.0, 0.1 * limit)]
    for steps in (two, three):
        pw.window.clear()
        pw.window.extend(steps)
        want = window_headroom_w(steps, t, limit)
        assert want == limit - 0.2 * limit - (0.1 * limit if len(steps) == 3 else 0.0)
        assert pw.pass_view(t).ramp_headroom_w == want


def test_a_pass_within_the_tick_gets_the_last_view_with_its_headroom_set_again() -> None:
    # Within a tick and with the same solver target the view is the last pass's, its three
    # headroom fields set again from the books; a new tick, a new target, a reserve or a cap
    # event gets a view built whole. Every field is a fresh view's each time.
    pw = PowerRuntime.build(FLEET, PowerConfig("full"), HORIZON_S)
    tick = pw.cfg.tick_s
    t = 20 * tick + 1.0
    v1 = pw.pass_view(t)
    assert _fields(v1) == _fields(pw.view(t))
    pw.inc_total_w += 5000.0
    pw.hall_inc_w = [w + 700.0 * (h + 1) for h, w in enumerate(pw.hall_inc_w)]
    pw.add_step(t + 5.0, 1234.0)
    t += 10.0
    v2 = pw.pass_view(t)
    assert v2 is v1
    assert _fields(v2) == _fields(pw.view(t))
    pw.target = {("llm", 0, 1, 0): 3}  # the solver replaces it whole
    v3 = pw.pass_view(t)
    assert v3 is not v2
    assert _fields(v3) == _fields(pw.view(t))
    assert pw.pass_view(t + 1.0) is v3
    v4 = pw.pass_view(t + tick)  # the next tick: other budgets
    assert v4 is not v3
    assert _fields(v4) == _fields(pw.view(t + tick))
    pw.reserved_w = 321.5  # inputs read at every pass: a view built at every pass
    v5 = pw.pass_view(t + tick)
    v6 = pw.pass_view(t + tick)
    assert v5 is not v4 and v6 is not v5
    assert _fields(v6) == _fields(pw.view(t + tick))
    ev = CapEvent(start_s=1000.0, duration_s=300.0, cap_mw=1.0)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", cap_events=(ev,)), HORIZON_S)
    assert pw.pass_view(950.0) is not pw.pass_view(999.0)
