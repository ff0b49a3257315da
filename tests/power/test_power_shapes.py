"""What power admission reads of a placement (scheduler/power.py: hall_shares, _shape) and the
twin's coolest temperature (sim/power.py) are computed on fast paths; each must equal the plain
computation, kept here, exactly: same keys in the same order, same sums. So must the twin's ramp
limit per weather tick (sim/power.py) against the shared books' formula."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cortex.drive.power_books import PowerBooks
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.scheduler.power import (
    CapToFit,
    Grant,
    PowerView,
    Watts,
    _shape,
    hall_shares,
    placement_shape,
)
from cortex.scheduler.reasons import Reason
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.workload.job import Job


def _plain_shares(node_hall: list[int], placement: tuple[tuple[int, int], ...]) -> dict[int, int]:
    shares: dict[int, int] = {}
    for n, k in placement:
        shares[node_hall[n]] = shares.get(node_hall[n], 0) + k
    return shares


# 60 nodes in three halls of uneven size; placements of distinct nodes, whole or partial.
NODE_HALL = [0] * 24 + [1] * 20 + [2] * 16


@st.composite
def _placements(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    nodes = draw(st.lists(st.integers(0, 59), min_size=1, max_size=40, unique=True))
    whole = draw(st.booleans())
    return tuple((n, 8 if whole else draw(st.integers(1, 8))) for n in nodes)


@given(_placements())
@settings(max_examples=300, deadline=None)
def test_hall_shares_equal_the_plain_count(placement: tuple[tuple[int, int], ...]) -> None:
    got = hall_shares(NODE_HALL, placement)
    want = _plain_shares(NODE_HALL, placement)
    assert list(got.items()) == list(want.items())


def test_hall_shares_by_hand() -> None:
    # Three nodes of hall 1 (8 + 8 + 3 GPUs), then two of hall 0 (8 + 1): 19 and 9 GPUs, hall 1
    # first because its node comes first; three whole nodes of hall 2 alone: 24 GPUs.
    assert list(hall_shares(NODE_HALL, ((30, 8), (31, 8), (2, 8), (32, 3), (3, 1))).items()) == [
        (1, 19),
        (0, 9),
    ]
    assert hall_shares(NODE_HALL, ((50, 8), (51, 8), (59, 8))) == {2: 24}
    # First and last node in hall 0, one in hall 2 between them: not one hall.
    assert hall_shares(NODE_HALL, ((0, 8), (45, 8), (1, 8))) == {0: 16, 2: 8}
    # Whole nodes in two halls, hall 2 named first: GPUs counted per hall in that order.
    got = hall_shares(NODE_HALL, ((45, 8), (0, 8), (46, 8), (47, 8)))
    assert list(got.items()) == [(2, 24), (0, 8)]
    # Two nodes: in one hall, or in two (the first named first).
    assert hall_shares(NODE_HALL, ((30, 3), (31, 5))) == {1: 8}
    assert list(hall_shares(NODE_HALL, ((30, 3), (1, 5))).items()) == [(1, 3), (0, 5)]
    assert hall_shares(NODE_HALL, ((59, 2),)) == {2: 2}


@given(_placements())
@settings(max_examples=100, deadline=None)
def test_the_shape_holds_every_gpu_of_the_placement(
    placement: tuple[tuple[int, int], ...],
) -> None:
    view = PowerView(
        site_headroom_w=0.0,
        hall_headroom_w=[0.0, 0.0, 0.0],
        levels=(1.0,),
        floor=0,
        draw_w=lambda _k, _f: 500.0,
        idle_w=[100.0],
        tdp_w=[700.0],
        node_hall=NODE_HALL,
        node_max_cap_w=[math.inf] * 60,
    )
    node_cap, held, shares = _shape(view, placement)
    assert node_cap == math.inf
    assert held == sum(k for _, k in placement)
    assert list(shares.items()) == list(_plain_shares(NODE_HALL, placement).items())


@given(
    _placements(),
    st.lists(st.sampled_from([300.0, 450.0, 600.0, 700.0]), min_size=60, max_size=60),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_one_shape_for_admission_and_the_books(
    placement: tuple[tuple[int, int], ...], caps: list[float], racks: bool
) -> None:
    """placement_shape (admission's _shape and the books' start both read it) against the plain
    reads the books made before: the lowest rack cap over the nodes, every GPU, the halls in
    the order their first node comes (a one-node start has its own path)."""
    low = min(caps) if racks else math.inf
    node_cap, held, shares = placement_shape(NODE_HALL, caps, low, placement)
    assert node_cap == (min(caps[n] for n, _ in placement) if racks else math.inf)
    assert held == sum(k for _, k in placement)
    assert list(shares.items()) == list(_plain_shares(NODE_HALL, placement).items())


def test_one_node_shape_by_hand() -> None:
    caps = [700.0] * 60
    caps[30] = 450.0
    assert placement_shape(NODE_HALL, caps, 450.0, ((30, 5),)) == (450.0, 5, {1: 5})
    assert placement_shape(NODE_HALL, caps, math.inf, ((30, 5),)) == (math.inf, 5, {1: 5})
    assert placement_shape(NODE_HALL, caps, 450.0, ((2, 8), (30, 8))) == (450.0, 16, {0: 8, 1: 8})


def test_the_coolest_temperature_is_the_minimum_of_the_ticks() -> None:
    topo = build(load_fleet_spec("tiny"))
    pw = PowerRuntime.build(topo, PowerConfig("cap"), 5 * 86400.0)
    assert pw.coolest_temp_c() == float(pw.temps.min())
    assert pw.coolest_temp_c() == float(pw.temps.min())  # the remembered value
    # New ticks (a driver rebuilding the weather) are read again, not the remembered minimum.
    pw.temps = np.array([30.0, 12.5, 40.0])
    assert pw.coolest_temp_c() == 12.5


def test_the_ramp_limit_per_tick_is_the_books_formula() -> None:
    # The twin reads the ramp limit from a list made once per weather; it must be what the
    # shared books compute at that moment's temperature, tick by tick and past the last tick.
    topo = build(load_fleet_spec("tiny"))
    pw = PowerRuntime.build(topo, PowerConfig("full"), 2 * 86400.0)
    assert pw.ramp_mw_per_min is not None
    tick = pw.cfg.tick_s
    last = (len(pw.temps) - 1) * tick  # the last tick's start, and the first past it
    for t in [0.0, 1.0, tick - 1e-9, tick, 7.5 * tick, 86400.0, last, last + tick, 3 * 86400.0]:
        assert pw.ramp_limit_it_w(t) == PowerBooks.ramp_limit_it_w(pw, t)
    # New weather, or a new ramp rate, is read again.
    pw.temps = np.array([10.0, 45.0])
    assert pw.ramp_limit_it_w(tick) == PowerBooks.ramp_limit_it_w(pw, tick)
    assert pw.ramp_limit_it_w(0.0) != pw.ramp_limit_it_w(tick)
    pw.ramp_mw_per_min = 2.0 * pw.ramp_mw_per_min
    assert pw.ramp_limit_it_w(tick) == PowerBooks.ramp_limit_it_w(pw, tick)
    pw.ramp_mw_per_min = None
    assert pw.ramp_limit_it_w(tick) == math.inf


def test_the_ramp_limit_kept_with_its_tick_reads_each_side_of_a_boundary_once_a_tick() -> None:
    # ramp_limit_it_w keeps the last tick's limit with the instants the tick spans: every
    # instant must read the books' formula for its own tick (an ulp either side of a tick's
    # start, back into an earlier tick, before the first, past the horizon), and whatever the
    # limit was read from (the weather, the ramp rate, the config's tick length) read again.
    topo = build(load_fleet_spec("tiny"))
    pw = PowerRuntime.build(topo, PowerConfig("full"), 2 * 86400.0)
    pw.temps = np.linspace(5.0, 45.0, len(pw.temps))  # every tick its own limit
    tick = pw.cfg.tick_s
    last = len(pw.temps) - 1
    reads = []
    read = pw._ramp_limit_at

    def counted(t: float, mw: float) -> float:
        reads.append(t)
        return read(t, mw)

    pw._ramp_limit_at = counted

    def same(t: float, read: bool) -> None:  # read: the tick's limit read, not the kept one
        n = len(reads)
        assert pw.ramp_limit_it_w(t) == PowerBooks.ramp_limit_it_w(pw, t), t
        assert len(reads) == n + read, t

    for k in [1, 2, 7, last - 1, last]:
        start = k * tick
        before = math.nextafter(start, -math.inf)
        same(before - 10.0, k in (1, 7, last - 1))  # else the tick the last k ended in
        same(before, False)
        same(start, True)
        same(math.nextafter(start, math.inf), False)
        same(before, True)
        same(start, True)
    same(last * tick + 5 * tick, False)  # past the horizon: the last tick's, kept from its start
    same(1e12, False)
    same(2.5 * tick, True)  # back, then forward within one tick
    same(2.75 * tick, False)
    same(-0.5 * tick, True)  # tick 0 spans (-tick_s, tick_s)
    same(0.5 * tick, False)
    same(-1.5 * tick, True)  # tick -1 (the last tick's limit, by index): answered, not kept
    same(-1.25 * tick, True)
    same(1e12, True)  # past the horizon first: kept from the last tick's start on
    same(last * tick, False)
    same(10 * tick + 1.0, True)
    same(11 * tick - 1.0, False)
    pw.temps = pw.temps + 3.0  # new weather within the kept tick
    same(10.5 * tick, True)
    pw.ramp_mw_per_min = 2.0 * pw.ramp_mw_per_min
    same(10.5 * tick, True)
    pw.cfg = dataclasses.replace(pw.cfg, tick_s=tick / 2)  # ticks of half the length
    same(10.25 * tick, True)  # tick 20 of the new length, in the one kept of the old
    same(10.75 * tick, True)  # tick 21
    with pytest.raises(ValueError, match="NaN"):
        pw.ramp_limit_it_w(math.nan)


def test_the_per_arrival_and_per_start_reads_are_not_closures() -> None:
    # A function with a nested generator or comprehension makes its cells at every call, hit or
    # miss: never_fits (every arrival) and ramp_limit_it_w (every start) keep theirs in helpers.
    assert PowerBooks.never_fits.__code__.co_cellvars == ()
    assert PowerRuntime.ramp_limit_it_w.__code__.co_cellvars == ()


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 30.0, 40.0, 59.5, 60.0, 100.0]), st.floats(0.0, 5e6)),
        max_size=30,
    ),
    st.sampled_from([60.0, 100.0, 119.5, 160.0]),
)
@settings(max_examples=200, deadline=None)
def test_the_ramp_headroom_sums_the_last_minute_as_before(
    steps: list[tuple[float, float]], t: float
) -> None:
    topo = build(load_fleet_spec("tiny"))
    pw = PowerRuntime.build(topo, PowerConfig("full"), 86400.0)
    pw.window.extend(steps)
    limit = 8e6
    want = max(limit - sum(w for ts, w in steps if t - 60.0 < ts), 0.0)
    assert pw._ramp_headroom(t, limit) == want


def test_the_books_floor_memo_is_the_views_formula() -> None:
    # Admission's cheap bound reads the books' memo of the floor watts per GPU (PowerView.
    # floor_gpu_w); it must be what the view's own formula gives from the fields it carries,
    # for every kind and flavor, and a copy of the books (the live loop's regrow, here with a
    # rack cap that lowers the least-capped node) must not read the original's memo.
    import dataclasses

    from cortex.workload.job import Job

    topo = build(load_fleet_spec("tiny"))
    pw = PowerRuntime.build(topo, PowerConfig("full"), 86400.0)
    view = pw.view(0.0)
    plain = dataclasses.replace(view, floor_gpu_w=None)
    for kind in ("llm", "vision", "generic"):
        job = Job(1, "j", "a", 8, 100.0, kind=kind)
        for f in range(len(topo.flavors)):
            assert view.floor_inc_w(job, f, 8) == plain.floor_inc_w(job, f, 8)
    job = Job(1, "j", "a", 8, 100.0, kind="llm")
    before = view.floor_inc_w(job, 0, 8)
    caps = [0.5 * topo.accelerators[f].tdp_w for f in topo.node_flavor]
    low = dataclasses.replace(pw, node_max_cap_w=caps)  # __post_init__: its own least cap
    after = low.view(0.0)
    assert after.floor_inc_w(job, 0, 8) == dataclasses.replace(after, floor_gpu_w=None).floor_inc_w(
        job, 0, 8
    )
    assert after.floor_inc_w(job, 0, 8) < before


def test_the_cheap_bound_reads_the_memo_as_the_views_formula() -> None:
    # lower_bound_reason reads the books' floor memo directly (not through floor_inc_w): for
    # gangs of 1 to 64 GPUs, with the memo and without, the same refusal at the same watts,
    # and the same pass where the site's room is exactly the floor's increment.
    import dataclasses
    import itertools

    from cortex.scheduler.power import Watts
    from cortex.workload.job import Job

    topo = build(load_fleet_spec("cortex-2026"))  # flavors of different watts
    view = PowerRuntime.build(topo, PowerConfig("full"), 86400.0).view(0.0)
    plain = dataclasses.replace(view, floor_gpu_w=None)
    assert view.floor_gpu_w is not None
    flavors = range(len(topo.flavors))
    assert len({plain.floor_inc_w(Job(1, "j", "a", 1, 1.0), f, 1) for f in flavors}) > 1
    for gang, f in itertools.product((1, 3, 8, 64), flavors):
        job = Job(1, "j", "a", gang, 100.0, kind="llm")
        need = plain.floor_inc_w(job, f, gang)
        for site_w in (need, need * (1 - 1e-12), 0.5 * need, 0.0):
            room = Watts(site_w, [math.inf], math.inf, set())
            got, ref = (v.lower_bound_reason(room, job, f, gang) for v in (view, plain))
            assert (got is None) == (ref is None) == (site_w >= need)
            if got is not None and ref is not None:
                assert got.detail == ref.detail
                assert got.detail["need_mw"] == need / 1e6


def test_the_books_shape_memo_gives_each_placement_its_own_shape() -> None:
    # Admission reads a placement's shape through the books' memo (PowerView.shape_of), which
    # keeps large placements' shapes: an equal placement gets the kept shape, and any other one,
    # even of the same length, first and last nodes (the memo's key), its own: always what
    # placement_shape reads. (Placements are tuples: the one kept cannot change after.)
    from cortex.drive.power_books import SHAPE_MEMO_NODES

    topo = build(load_fleet_spec("cortex-2024"))
    pw = PowerRuntime.build(topo, PowerConfig("full", rack_cap_kw=100.0), 86400.0)
    view = pw.view(0.0)
    assert view.shape_of is not None
    assert pw.pass_view(0.0).shape_of == view.shape_of
    assert len(set(topo.node_hall)) > 1 and min(pw.node_max_cap_w) < math.inf

    def plain(placement: tuple[tuple[int, int], ...]) -> tuple:
        return placement_shape(topo.node_hall, pw.node_max_cap_w, pw.min_node_cap_w, placement)

    n = SHAPE_MEMO_NODES + 1
    # Across the boundary between the first two halls
    first_of_hall_1 = topo.node_hall.index(1)
    a = tuple((first_of_hall_1 - n // 2 + i, 8) for i in range(n))
    assert _shape(view, a) == plain(a)
    assert _shape(view, a[:1] + a[1:]) == plain(a)  # an equal placement: the kept shape
    b = (a[0], *((m + 2000, k) for m, k in a[1:-1]), a[-1])  # same key, other nodes
    assert (len(b), b[0], b[-1]) == (len(a), a[0], a[-1])
    assert plain(b) != plain(a)
    assert _shape(view, b) == plain(b)
    assert _shape(view, a) == plain(a)
    small = a[:SHAPE_MEMO_NODES]
    assert _shape(view, small) == plain(small)


@given(
    st.one_of(
        st.builds(lambda n, k: ((n, k),), st.integers(0, 59), st.integers(1, 8)), _placements()
    ),
    st.lists(st.sampled_from([300.0, 450.0, 600.0, 700.0]), min_size=60, max_size=60),
    st.booleans(),
    st.integers(0, 2),
)
@settings(max_examples=300, deadline=None)
def test_admission_reads_the_shape_and_the_class_of_the_first_nodes_hall(
    placement: tuple[tuple[int, int], ...], caps: list[float], racks: bool, level: int
) -> None:
    """CapToFit.admit builds a one-node placement's shape itself: it must be placement_shape's,
    and the class level it starts from must be the one of the placement's first node's hall
    (the solver's target for another hall or kind is not read)."""
    low = min(caps) if racks else math.inf
    first_hall = NODE_HALL[placement[0][0]]
    view = PowerView(
        site_headroom_w=math.inf,
        hall_headroom_w=[math.inf] * 3,
        levels=(1.0, 0.9, 0.8),
        floor=2,
        draw_w=lambda _k, _f: 650.0,
        idle_w=[100.0],
        tdp_w=[700.0],
        node_hall=NODE_HALL,
        node_max_cap_w=caps,
        min_node_cap_w=low,
        target={
            ("llm", 0, 5, first_hall): level,
            ("llm", 0, 5, (first_hall + 1) % 3): 2 - level,
            ("cv", 0, 5, first_hall): 1,
        },
    )
    job = Job(1, "j", "a", 8, 100.0, kind="llm")
    job.priority = 5
    gang = sum(k for _, k in placement)
    room = Watts.of(view)
    grant = CapToFit().admit(view, room, job, 0, gang, placement)
    assert isinstance(grant, Grant)
    assert grant.shape == placement_shape(NODE_HALL, caps, low, placement)
    assert grant.level == level


def _same(a: Grant | Reason, b: Grant | Reason) -> bool:
    """Equal in every field, doubles by repr (-0.0 and NaN told apart), reasons by code and
    numbers."""
    if isinstance(a, Reason) or isinstance(b, Reason):
        return (
            isinstance(a, Reason)
            and isinstance(b, Reason)
            and a.code is b.code
            and repr(a.detail) == repr(b.detail)
        )
    return repr((a.level, a.inc_w, a.halls_w, a.shape)) == repr(
        (b.level, b.inc_w, b.halls_w, b.shape)
    )


_WATTS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 999.0, 1000.0, 1001.0, math.inf, -math.inf, math.nan]),
    st.floats(-2e3, 2e4),
)


@given(
    st.integers(0, 59),
    st.integers(1, 8),
    st.floats(101.0, 900.0),
    st.lists(_WATTS, min_size=6, max_size=6),
    st.booleans(),
    st.booleans(),
    st.integers(0, 3),
    st.booleans(),
)
# A window that reads as neither clear nor not (a NaN limit): the step must still fit its room.
@example(3, 2, 650.0, [1e9, 1e9, 1e9, 1e9, 0.0, math.nan], False, False, 0, False)
@settings(max_examples=600, deadline=None)
def test_a_one_node_start_without_credit_is_admitted_as_with_a_zero_credit(
    n: int,
    k: int,
    draw: float,
    watts: list[float],
    racks: bool,
    ladder: bool,
    level: int,
    targeted: bool,
) -> None:
    """CapToFit.admit grants a one-node start without credit at its first level inline; it must
    answer as `_fits`' loop does (reached here through a zero credit that is not the default
    object): the same grant to the last bit, or the same refusal with the same numbers."""
    site, h0, h1, h2, ramp, limit = watts
    caps = [300.0 + 10.0 * (i % 7) for i in range(60)]
    view = PowerView(
        site_headroom_w=site,
        hall_headroom_w=[h0, h1, h2],
        levels=(1.0, 0.9, 0.8, 0.7),
        floor=3,
        draw_w=lambda _k, _f: draw,
        idle_w=[100.0],
        tdp_w=[700.0],
        node_hall=NODE_HALL,
        node_max_cap_w=caps,
        min_node_cap_w=min(caps) if racks else math.inf,
        target={("llm", 0, 5, NODE_HALL[n]): level + 1} if targeted else {},
        ramp_headroom_w=ramp,
        ramp_limit_w=limit,
        ladder_w=(lambda _k, _f, lv, cap: min((1.0, 0.9, 0.8, 0.7)[lv] * 700.0, draw, cap))
        if ladder
        else None,
    )
    job = Job(1, "j", "a", k, 100.0, kind="llm")
    job.priority = 5
    pol = CapToFit()
    fast = pol.admit(view, Watts.of(view), job, 0, k, ((n, k),))
    plain = pol.admit(view, Watts.of(view), job, 0, k, ((n, k),), (0.0, {}))
    assert _same(fast, plain)


def test_a_one_node_grant_books_the_halls_share_as_inc_times_k_over_k() -> None:
    """Three GPUs at 114.3 W over a 100 W idle: 3 x 14.3 = 42.89999999999999 W, whose share of
    its one hall is 42.89999999999999 x 3 / 3 = 42.9 W, as `_fits` books it; a hall with exactly
    that left takes it, one with the increment's double left (a hair less) does not."""
    view = PowerView(
        site_headroom_w=1e9,
        hall_headroom_w=[42.9, 1e9],
        levels=(1.0,),
        floor=0,
        draw_w=lambda _k, _f: 114.3,
        idle_w=[100.0],
        tdp_w=[700.0],
        node_hall=[0, 1],
        node_max_cap_w=[700.0, 700.0],
    )
    job = Job(1, "j", "a", 3, 100.0, kind="llm")
    inc = 3 * (114.3 - 100.0)
    assert inc != 42.9 and inc * 3 / 3 == 42.9
    got = CapToFit().admit(view, Watts.of(view), job, 0, 3, ((0, 3),))
    assert isinstance(got, Grant)
    assert (got.level, got.inc_w, got.halls_w, got.shape) == (
        0,
        inc,
        {0: 42.9},
        (math.inf, 3, {0: 3}),
    )
    room = Watts(1e9, [inc, 1e9], math.inf, set())
    refused = CapToFit().admit(view, room, job, 0, 3, ((0, 3),))
    assert isinstance(refused, Reason) and refused.detail["domain"] == "hall 0"


def test_the_views_of_one_book_share_one_cached_floor_memo_and_a_copy_its_own() -> None:
    # The walk calls view.floor_gpu_w at every try: the books hand every view one function
    # behind functools.cache (a C call, cheaper than the method's), answering as the method.
    import dataclasses

    topo = build(load_fleet_spec("cortex-2026"))
    # A floor at 99% of TDP: the kinds' mean draws, below it, tell the kinds apart.
    pw = PowerRuntime.build(topo, PowerConfig("full", levels=(1.0, 0.99)), 86400.0)
    fn = pw.view(0.0).floor_gpu_w
    assert fn is not None and fn is pw.view(5000.0).floor_gpu_w
    assert fn.cache_info().currsize == 0  # type: ignore[attr-defined]
    kinds = ("llm", "vision", "generic")
    for kind in kinds:
        for f in range(len(topo.flavors)):
            assert fn(kind, f) == pw._floor_gpu_w(kind, f)
    assert fn.cache_info().currsize == 3 * len(topo.flavors)  # type: ignore[attr-defined]
    assert len({fn(kind, 0) for kind in kinds}) == 2  # llm draws more than the other two
    copy = dataclasses.replace(pw)
    assert copy.view(0.0).floor_gpu_w is not fn
