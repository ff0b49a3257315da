"""A preemption the cycle's power admission would refuse, told from the victims a search found
before they are evicted (`evict_place._power_refuses`, RESULTS.md section 152): the walk over
the cap levels with the credit's two bounds never says so where an admission with a credit
between them grants, the credit's lower bound is below that of every set of victims a
placement may keep, and a cycle answers exactly as it does without the check."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random

import pytest
import test_cycle as tc
import test_cycle_power_preempt as tp

import testkit
from cortex.scheduler import evict_place
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.power import AdmitUncapped, CapToFit, PowerView, Watts
from cortex.scheduler.reasons import Reason
from cortex.scheduler.snapshot import Plan
from cortex.workload.job import Job

BIG = 1e9


def _random_view(rng: random.Random) -> PowerView:
    """As test_cycle_power_preempt's random states: ladders, 1-3 halls, rack caps, budgets and
    windows at the steps' edges, class levels per hall."""
    halls = rng.randint(1, 3)
    levels = tuple(
        sorted((rng.choice((1.0, 0.9, 0.8, 0.7, 0.6, 0.5)) for _ in range(4)), reverse=True)
    )
    caps = [rng.choice((math.inf, 450.0, 520.0, 650.0)) for _ in range(8)]
    capped = rng.random() < 0.5

    def pick() -> float:
        steps = [8 * (min(levels[lv] * 700.0, 600.0) - 100.0) for lv in range(4)]
        return rng.choice([0.0, *[s + d for s in steps for d in (-1.0, 0.0, 1.0)]])

    ramp_limit = rng.choice((math.inf, 10_000.0, 4000.0, 3000.0))
    return testkit.toy_power_view(
        levels,
        halls,
        caps,
        capped,
        site_w=rng.choice((pick(), pick() - 3000.0, BIG)),
        hall_w=[rng.choice((pick(), BIG)) for _ in range(halls)],
        ramp_w=min(pick(), ramp_limit),
        ramp_limit_w=ramp_limit,
        target={("generic", 0, 100, h): rng.randint(0, 3) for h in range(halls)},
    )


def test_the_levels_refuse_only_where_every_admission_with_a_credit_between_refuses() -> None:
    rng = random.Random(152)
    said = {"site": 0, "ramp": 0, "new": 0}
    job = Job(1, "p1", "a", 8, 100.0)
    job.priority = 100
    for _ in range(3000):
        view = _random_view(rng)
        room = Watts.of(view)
        halls = len(view.hall_headroom_w)
        low = rng.choice((0.0, 500.0, 2000.0, 3000.0))
        high = low + rng.choice((0.0, 1.0, 1000.0, 4000.0))
        for policy in (CapToFit(), AdmitUncapped()):
            walk = evict_place._first_levels(policy, view, room, job, 0)
            assert walk is not None
            refuses = evict_place._levels_refuse(view, room, job, 0, 8, *walk, low, high)
            if not refuses:
                continue
            for _ in range(8):
                nodes = rng.sample(range(8), rng.choice((1, 2, 4)))
                placement = tuple((n, 8 // len(nodes)) for n in sorted(nodes))
                site = rng.choice((low, high, rng.uniform(low, high)))
                hall = dict.fromkeys(range(halls), rng.choice((0.0, site, 1e6)))
                got = policy.admit(view, room, job, 0, 8, placement, (site, hall))
                assert isinstance(got, Reason), (view, placement, low, high)
                said["ramp" if got.code.name == "POWER_RAMP" else "site"] += 1
            if not policy.ramp_refuses(view, room, job, 0, 8):
                said["new"] += 1  # the search the cycle's own check before it ran
    assert min(said.values()) > 100, said


def _hand_view(site_w: float, ramp_w: float) -> PowerView:
    """8 GPUs: 4000, 3680, 2560 W at levels 0, 1, 2 (test_cycle_power_preempt's numbers)."""
    view = tp._view(site_w=site_w, ramp_w=ramp_w, ramp_limit_w=10_000.0)
    return dataclasses.replace(view, target={("generic", 0, 100, 0): 0})


@pytest.mark.parametrize(
    ("site_w", "ramp_w", "low", "high", "want"),
    [
        (0.0, BIG, 0.0, 2559.0, True),  # the site refuses even the floor with the most credit
        (0.0, BIG, 0.0, 2560.0, False),  # the floor may fit
        (0.0, 3000.0, 0.0, 2560.0, False),  # the floor fits the window when the site takes it
        (0.0, 2559.0, 0.0, 2560.0, True),  # refused on the site or the ramp at the floor
        (0.0, 3999.0, 4000.0, 4000.0, True),  # stops at level 0, more than the window
        (0.0, 3999.0, 3999.0, 4000.0, False),  # may go on to level 1, which the window takes
        (1.0, 3999.0, 3999.0, 4000.0, True),  # the site takes level 0 with the least credit
        (0.0, 4000.0, 4000.0, 4000.0, False),  # the window takes level 0
        (0.0, 10_000.0, 4000.0, 4000.0, False),  # a clear window takes any start
    ],
)
def test_the_levels_refuse_by_hand(
    site_w: float, ramp_w: float, low: float, high: float, want: bool
) -> None:
    view = _hand_view(site_w, ramp_w)
    room = Watts.of(view)
    job = Job(1, "p1", "a", 8, 100.0)
    job.priority = 100
    walk = evict_place._first_levels(CapToFit(), view, room, job, 0)
    assert walk == ({0}, 2)
    assert evict_place._levels_refuse(view, room, job, 0, 8, *walk, low, high) is want


def test_the_credits_lower_bound_is_below_every_set_a_placement_may_keep() -> None:
    """Victims of 8 GPUs (one node), 16 (two) and 4 (half a node, the other half busy) with
    random watts; a gang
    of 8-32 GPUs with 0-12 GPUs free. Any placement takes at least `gang - free` GPUs from the
    victims it keeps: the bound is at most the credit (Watts.credit, in the victims' order)
    of every such set, and is reached within the margin by the cheapest one."""
    rng = random.Random(7)
    tight = 0
    for _ in range(300):
        st, _, _ = tc._setup()
        shapes = [((0, 8),), ((1, 8), (2, 8)), ((3, 4),), ((4, 8),), ((5, 4),)]
        rng.shuffle(shapes)
        victims = [tc._run(st, 10 + i, p, prio=10) for i, p in enumerate(shapes)]
        tc._run(st, 97, ((3, 4), (5, 4)), prio=1000)  # the half nodes' other halves
        free = rng.choice((0, 4, 8, 12))
        for node, left in ((6, min(free, 8)), (7, free - min(free, 8))):
            if left < 8:
                tc._run(st, 90 + node, ((node, 8 - left),), prio=1000)
        assert st.free_gpus[0] == free
        inc = {v.id: rng.choice((0.0, 100.0, 1000.0, rng.uniform(0, 5000))) for v in victims}
        view = tp._view(inc_w=inc)
        room = Watts.of(view)
        if rng.random() < 0.3:
            room.released.add(rng.choice(victims).id)
        gang = rng.choice((8, 16, 24, 32))
        low = evict_place._credit_low_w(
            tp._snap(st, tc._setup()[1], view), view, room, 0, gang, victims
        )
        cheapest = math.inf
        for r in range(len(victims) + 1):
            for kept in itertools.combinations(victims, r):
                if sum(st.allocations[v.id].gpus for v in kept) >= gang - free:
                    credit = room.credit(view, list(kept))[0]
                    assert low <= credit
                    cheapest = min(cheapest, credit)
        if gang > free and cheapest < math.inf and low >= cheapest * (1 - 1e-6) - 2.0 > 0:
            tight += 1
    assert tight > 20, tight


def _why(r: Reason | None) -> tuple | None:
    return None if r is None else (r.code, sorted(r.detail.items(), key=repr))


def _plan_key(plan: Plan) -> tuple:
    return (
        [(s.job.id, s.flavor, s.placement, s.gang_gpus, s.cap_level) for s in plan.starts],
        [(p.job.id, _why(p.reason)) for p in plan.preemptions],
        list(plan.preempt_failed),
        {j: [_why(r) for r in rs] for j, rs in plan.blockers.items()},
        _why(plan.rest_reason),
        plan.examined,
        plan.power_headroom_w,
    )


_REAL = evict_place._power_refuses


def _fuzz_case(seed: int, check: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple, int]:
    """One random TINY state (production and preemptible jobs, some nodes free), heads of 8-32
    GPUs, random budgets, windows and victims' watts; the plan and the state after the cycle,
    with the check or without it, and how often it said so."""
    rng = random.Random(seed)
    st, pend, _ = tc._setup()
    jid = 100
    n = 0
    while n < 8:
        size = rng.choice((1, 1, 2))
        if n + size > 8 or rng.random() < 0.15:
            n += 1
            continue
        jid += 1
        tc._run(st, jid, tuple((m, 8) for m in range(n, n + size)), prio=rng.choice((10, 1000)))
        n += size
    for j in range(rng.randint(1, 3)):
        tc._pend(pend, j + 1, rng.choice((8, 16, 24, 32)), 100.0, prio=1000)
    inc = {j: rng.choice((500.0, 2000.0, 4000.0, 8000.0)) for j in st.running}
    steps = (4000.0, 3680.0, 2560.0)
    edge = [s * k + d for s in steps for k in (1, 2) for d in (-1.0, 0.0)]
    view = tp._view(
        site_w=rng.choice((0.0, *edge, BIG)),
        hall_w=rng.choice((*edge, BIG)),
        inc_w=inc,
        ramp_w=rng.choice((*edge, 0.0)),
        ramp_limit_w=rng.choice((10_000.0, 20_000.0)),
    )
    said = [0]

    def spy(*a: object) -> bool:
        got = _REAL(*a)  # type: ignore[arg-type]
        said[0] += got
        return got and check

    monkeypatch.setattr(evict_place, "_power_refuses", spy)
    pol = Policies(ordering=Fifo(), power=rng.choice((CapToFit(), AdmitUncapped())))
    plan = schedule(tp._snap(st, pend, view), pol)
    return (_plan_key(plan), testkit.state_contents(st)), said[0]


def test_a_cycle_answers_as_it_does_without_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    fired = 0
    for seed in range(600):
        with_check, said = _fuzz_case(seed, True, monkeypatch)
        without, _ = _fuzz_case(seed, False, monkeypatch)
        assert with_check == without, seed
        fired += said
    assert fired > 30, fired


@pytest.mark.parametrize(
    ("inc_w", "ramp_w", "fired", "level"),
    [
        (2559.0, BIG, True, None),  # back 2559 W < the floor's 2560: refused on the site
        (2560.0, BIG, False, 2),  # the floor fits: it starts capped
        (5000.0, 3999.0, True, None),  # level 0 fits the site, not the window: refused
        (5000.0, 4000.0, False, 0),  # the window takes level 0
        (3999.0, 3680.0, False, 1),  # the site refuses level 0, level 1 fits both
    ],
)
def test_a_refusal_told_before_the_evictions_evicts_nothing(
    monkeypatch: pytest.MonkeyPatch, inc_w: float, ramp_w: float, fired: bool, level: int | None
) -> None:
    """TINY with every GPU taken, job 107 (8 GPUs, preemptible) the only victim; no watts left
    on the site, so the preemptor (8 GPUs: 4000, 3680, 2560 W) has only what 107 gives back.
    Where the check says so, nothing is evicted, and the search counts as one that failed."""
    st, pend = tp._tiny_one_victim()
    job = tc._pend(pend, 1, 8, 100.0, prio=1000)
    view = tp._view(site_w=0.0, inc_w={107: inc_w}, ramp_w=ramp_w, ramp_limit_w=10_000.0)
    evicted: list[int] = []
    real = evict_place.evict_and_place

    def spy(*a: object) -> object:
        evicted.extend(v.id for v in a[-1])  # type: ignore[attr-defined]
        return real(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(evict_place, "evict_and_place", spy)
    plan = schedule(tp._snap(st, pend, view), tp._cap())
    assert evicted == ([] if fired else [107])
    if level is None:
        assert plan.starts == [] and plan.preempt_failed == [job.id]
    else:
        assert tp._starts(plan) == [(1, 0, ((7, 8),), level)]


# ---- the books' own ladder: not monotone in the node cap ------------------------------------
def _books_view(rack_cap_kw: float) -> tuple[PowerView, list[int]]:
    """cortex-2024's books under `full` with a rack cap, and a node of each rack cap (the
    fleet's least and the last racks' larger one)."""
    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build
    from cortex.sim.power import PowerConfig, PowerRuntime

    topo = build(load_fleet_spec("cortex-2024"))
    pw = PowerRuntime.build(topo, PowerConfig("full", rack_cap_kw=rack_cap_kw), 86400.0)
    caps = pw.node_max_cap_w
    nodes = [caps.index(c) for c in sorted(set(caps))]
    return pw.view(0.0), nodes


@pytest.mark.parametrize("rack_cap_kw", [32.92, 32.87, 32.79, 32.705, 33.5, 60.0])
def test_the_levels_refuse_only_where_admission_refuses_on_the_books_ladder(
    rack_cap_kw: float,
) -> None:
    """The books' ladder keeps only the levels on its concave hull, so a level's per-GPU draw
    is not monotone in the node cap: at 32.92 kW a rack leaves 603.75 W per GPU, where an llm
    job's level 3 draws 603.75 W (off the hull, it takes level 2's), above its 595 W without a
    rack cap. The walk reads a level's least step at the least rack cap and its largest
    uncapped; where those are not the least and the largest, it may say "refused" where the
    admission of a start on one of the fleet's nodes, with a credit between the bounds, grants
    (here: level 3's 4062 W over the site's 4000 with the credit, level 4's 3712 W within the
    site and a 3800 W window). Minimal case: site 0 W, window 3800 W of 10 kW, class level 3,
    credit bounds 4000 and 4100 W, 8 GPUs on a 603.75 W node: granted at level 4."""
    view0, nodes = _books_view(rack_cap_kw)
    rng = random.Random(int(rack_cap_kw * 1000))
    job = Job(1, "p1", "a", 8, 100.0, kind="llm", priority=100)
    halls = len(view0.hall_headroom_w)
    caps = sorted({view0.node_max_cap_w[n] for n in nodes} | {view0.min_node_cap_w, math.inf})
    steps = sorted(
        {8 * (view0.per_gpu_w("llm", 0, lv, c) - view0.idle_w[0]) for lv in range(9) for c in caps}
    )
    cases = [(0.0, 3800.0, 3, 4000.0, 4100.0)] + [
        (
            rng.choice((0.0, *steps)) - rng.choice(steps) / 2,
            rng.choice(steps) + rng.choice((-1.0, 0.0, 1.0)),
            rng.randrange(9),
            low := rng.choice(steps) + rng.choice((-8.0, 0.0, 8.0)),
            low + rng.choice((0.0, 50.0, 100.0, 1000.0)),
        )
        for _ in range(400)
    ]
    for site_w, ramp_w, target, low, high in cases:
        view = dataclasses.replace(
            view0,
            site_headroom_w=site_w,
            hall_headroom_w=[BIG] * halls,
            ramp_headroom_w=ramp_w,
            ramp_limit_w=10_000.0,
            target={("llm", 0, 100, h): target for h in range(halls)},
        )
        room = Watts.of(view)
        walk = evict_place._first_levels(CapToFit(), view, room, job, 0)
        assert walk is not None
        if not evict_place._levels_refuse(view, room, job, 0, 8, *walk, low, high):
            continue
        for n in nodes:
            h = view.node_hall[n]
            for credit in (low, high):
                got = CapToFit().admit(view, room, job, 0, 8, ((n, 8),), (credit, {h: credit}))
                assert isinstance(got, Reason), (rack_cap_kw, site_w, ramp_w, target, low, high, n)


@pytest.mark.parametrize("rack_cap_kw", [32.92, 32.87, 32.79, 32.705, 33.5, 60.0])
@pytest.mark.parametrize("policy", [CapToFit(), AdmitUncapped()])
def test_the_ramp_check_before_a_search_refuses_only_where_admission_refuses(
    rack_cap_kw: float, policy: CapToFit | AdmitUncapped
) -> None:
    """`ramp_refuses` (before any victim search) rests on the same bound as `_levels_refuse`:
    at 32.92 kW an 8-GPU llm job with 4 kW of site headroom, 3.8 kW of a 10 kW window and no
    class target was refused there, where admission on a capped node grants level 4 (3712 W).
    Wherever it says "refused", every admission on each of the fleet's node caps, with no
    credit or one up to the site's need, refuses."""
    view0, nodes = _books_view(rack_cap_kw)
    rng = random.Random(int(rack_cap_kw * 1000) + 1)
    job = Job(1, "p1", "a", 8, 100.0, kind="llm", priority=100)
    halls = len(view0.hall_headroom_w)
    caps = sorted({view0.node_max_cap_w[n] for n in nodes} | {view0.min_node_cap_w, math.inf})
    steps = sorted(
        {8 * (view0.per_gpu_w("llm", 0, lv, c) - view0.idle_w[0]) for lv in range(9) for c in caps}
    )
    cases = [(4000.0, 3800.0, None)] + [
        (
            rng.choice((0.0, *steps)) + rng.choice((-1.0, 0.0, 1.0)),
            rng.choice(steps) + rng.choice((-1.0, 0.0, 1.0)),
            rng.choice((None, rng.randrange(9))),
        )
        for _ in range(300)
    ]
    for site_w, ramp_w, target in cases:
        view = dataclasses.replace(
            view0,
            site_headroom_w=site_w,
            hall_headroom_w=[BIG] * halls,
            ramp_headroom_w=ramp_w,
            ramp_limit_w=10_000.0,
            target={} if target is None else {("llm", 0, 100, h): target for h in range(halls)},
        )
        room = Watts.of(view)
        if not policy.ramp_refuses(view, room, job, 0, 8):
            continue
        for n in nodes:
            h = view.node_hall[n]
            for credit in (0.0, max(steps)):
                got = policy.admit(view, room, job, 0, 8, ((n, 8),), (credit, {h: credit}))
                assert isinstance(got, Reason), (rack_cap_kw, site_w, ramp_w, target, n, credit)
