"""Preemption under a power policy, in the cycle: the ramp window checked before a victim search,
the victims' watts credited back to the preemptor and to the jobs after it, a power refusal
that undoes the evictions and moves on to the next flavor, and the cap level a preemptor starts
at. Fast unit scenarios on the tiny fleets (tests/power runs whole twins); the watts are derived
by hand in the comments and pinned through what the cycle decides, not through the view.

Per-GPU watts in these views: TDP 700 W, idle 100 W, levels 1.0 / 0.8 / 0.6 of TDP (the floor
is the last), uncapped mean draw 600 W. A GPU at level 0 draws min(700, 600) = 600 W, 500 W
over idle; at level 1 min(560, 600) = 560, 460 over idle; at level 2 min(420, 600) = 420, 320
over idle. An 8-GPU gang: 4000 W, 3680 W, 2560 W."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import test_cycle as tc

import testkit
from cortex.scheduler import evict_place
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.power import AdmitUncapped, CapToFit, PowerView, Watts
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.snapshot import Plan, Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

BIG = 1e9  # a budget that never binds


def _view(
    *,
    site_w: float = BIG,
    hall_w: float = BIG,
    inc_w: dict[int, float] | None = None,
    ramp_w: float = math.inf,
    ramp_limit_w: float = math.inf,
    draw_w: float = 600.0,
    flavors: int = 1,
) -> PowerView:
    """One hall (node_hall all 0), no rack caps, CapToFit's levels; `inc_w` is each running
    job's watts over idle, all in hall 0 (what its eviction gives back)."""
    inc = inc_w or {}
    return PowerView(
        site_headroom_w=site_w,
        hall_headroom_w=[hall_w],
        levels=(1.0, 0.8, 0.6),
        floor=2,
        draw_w=lambda _kind, _f: draw_w,
        idle_w=[100.0] * flavors,
        tdp_w=[700.0] * flavors,
        node_hall=[0] * 8,
        node_max_cap_w=[math.inf] * 8,
        ramp_headroom_w=ramp_w,
        ramp_limit_w=ramp_limit_w,
        job_inc_w=lambda jid: (inc[jid], {0: inc[jid]}) if jid in inc else (0.0, {}),
    )


def _snap(st: ClusterState, pend: PendingQueues, view: PowerView | None) -> Snapshot:
    return Snapshot(0.0, st, pend, lambda kind, f: 1.0, lambda job, f, gang: job.work_s, view)


def _cap() -> Policies:
    return Policies(ordering=Fifo(), power=CapToFit())


def _tiny_one_victim(free_on_6: int = 0) -> tuple[ClusterState, PendingQueues]:
    """TINY: nodes 0-5 production; node 6 production but for `free_on_6` GPUs; node 7 job 107,
    preemptible (priority 10)."""
    st, pend, _ = tc._setup()
    tc._run(st, 100, tuple((n, 8) for n in range(6)), prio=1000)
    if free_on_6 < 8:
        tc._run(st, 106, ((6, 8 - free_on_6),), prio=1000)
    tc._run(st, 107, ((7, 8),), prio=10)
    return st, pend


def _starts(plan: Plan) -> list[tuple[int, int, tuple, int]]:
    return [(s.job.id, s.flavor, s.placement, s.cap_level) for s in plan.starts]


# ---- the victims' watts ----------------------------------------------------------------------
@pytest.mark.parametrize("domain", ["site", "hall"])
def test_the_victims_watts_come_back_to_the_preemptor_and_to_the_jobs_after_it(
    domain: str,
) -> None:
    st, pend = _tiny_one_victim(free_on_6=5)
    tc._pend(pend, 1, 8, 100.0, prio=1000)
    tc._pend(pend, 2, 1, 100.0)
    tc._pend(pend, 3, 4, 100.0)
    # 1 kW left in the binding domain (the site or the hall); job 107 runs at 4000 W.
    binding = {"site_w": 1000.0} if domain == "site" else {"hall_w": 1000.0}
    plan = schedule(_snap(st, pend, _view(inc_w={107: 4000.0}, **binding)), _cap())
    # Job 1: 8 > 5 free, so it evicts 107 and takes node 7. At level 0 it needs 4000 W; what
    # is left is 1000 + 4000 given back = 5000 >= 4000: it starts uncapped, and leaves
    # 1000 - 4000 + 4000 = 1000 W. Job 2 (1 GPU, 500 W) starts on node 6: 500 W left. Job 3
    # (4 GPUs) needs 2000, 1840 or 1280 W at levels 0, 1, 2: none fits 500, so it waits.
    assert _starts(plan) == [(1, 0, ((7, 8),), 0), (2, 0, ((6, 1),), 0)]
    assert [p.job.id for p in plan.preemptions] == [107]
    (r3,) = plan.blockers[3]
    assert r3.code is Code.POWER_CAP
    assert r3.detail["domain"] == ("site" if domain == "site" else "hall 0")
    assert r3.detail["need_mw"] == pytest.approx(1280 / 1e6)
    assert r3.detail["headroom_mw"] == pytest.approx(500 / 1e6)


def test_a_preemptor_starts_at_the_cap_level_the_credit_affords() -> None:
    st, pend = _tiny_one_victim()
    tc._pend(pend, 1, 8, 100.0, prio=1000)
    plan = schedule(_snap(st, pend, _view(site_w=0.0, inc_w={107: 3000.0})), _cap())
    # Nothing is left but what 107 gives back, 3000 W: 4000 and 3680 W (levels 0 and 1) do
    # not fit, 2560 W (level 2, the floor) does.
    assert _starts(plan) == [(1, 0, ((7, 8),), 2)]
    assert [p.job.id for p in plan.preemptions] == [107]


def test_a_power_refusal_undoes_the_evictions_and_tries_the_next_flavor() -> None:
    st, pend, _ = tc._setup(tc.TWO_FLAVORS)
    h200, h100 = (tc.TWO_FLAVORS.flavors.index(f) for f in ("H200-SXM", "H100-SXM5"))
    tc._run(st, 100, tuple((n, 8) for n in range(3)), prio=1000)  # H200 nodes 0-2
    tc._run(st, 103, ((3, 8),), prio=10)  # H200 node 3: 1000 W
    tc._run(st, 104, tuple((n, 8) for n in range(4, 7)), prio=1000)  # H100 nodes 4-6
    tc._run(st, 107, ((7, 8),), prio=10)  # H100 node 7: 4000 W
    tc._pend(pend, 1, 8, 100.0, prio=1000).flavor_ids = (h200, h100)
    view = _view(site_w=0.0, inc_w={103: 1000.0, 107: 4000.0}, flavors=2)
    plan = schedule(_snap(st, pend, view), _cap())
    # Both flavors are full. On H200, evicting 103 gives back 1000 W: even the floor's 2560 W
    # does not fit, so the eviction is undone. On H100, 107 gives back 4000 W: level 0 fits.
    assert _starts(plan) == [(1, h100, ((7, 8),), 0)]
    assert [p.job.id for p in plan.preemptions] == [107]
    assert plan.preempt_failed == []


def test_a_power_refusal_on_every_flavor_is_a_failed_search() -> None:
    st, pend = _tiny_one_victim()
    job = tc._pend(pend, 1, 8, 100.0, prio=1000)
    plan = schedule(_snap(st, pend, _view(site_w=0.0, inc_w={107: 1000.0})), _cap())
    # 1000 W back < 2560 W at the floor: the eviction is undone, and the search, which ran,
    # is recorded (the driver backs the job off); the job waits, short of GPUs.
    assert plan.starts == [] and plan.preemptions == []
    assert plan.preempt_failed == [job.id]
    (r,) = plan.blockers[1]
    assert (r.code, r.detail["need"], r.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 8, 0)


# ---- the ramp window -------------------------------------------------------------------------
# Mean draw 400 W here, under every cap: 300 W over idle per GPU at any level, 2400 W for 8.
@pytest.mark.parametrize(("ramp_w", "searched"), [(2400.0, True), (2399.0, False)])
def test_a_partly_spent_ramp_window_searches_only_if_the_preemptor_fits_what_is_left(
    ramp_w: float, searched: bool
) -> None:
    st, pend = _tiny_one_victim()
    tc._pend(pend, 1, 8, 100.0, prio=1000)
    view = _view(inc_w={107: 2400.0}, ramp_w=ramp_w, ramp_limit_w=10_000.0, draw_w=400.0)
    plan = schedule(_snap(st, pend, view), _cap())
    # The window allows 10 kW and ramp_w is left. Job 1's least step is 2400 W: with 2400
    # left it searches, evicts 107 and starts; with 2399 it does not search at all (no
    # eviction for nothing, no failed search recorded), and it waits, short of GPUs.
    if searched:
        assert _starts(plan) == [(1, 0, ((7, 8),), 0)]
        assert [p.job.id for p in plan.preemptions] == [107]
    else:
        assert plan.starts == [] and plan.preemptions == [] and plan.preempt_failed == []
        (r,) = plan.blockers[1]
        assert r.code is Code.INSUFFICIENT_CAPACITY


def test_a_clear_window_lets_a_preemptor_larger_than_the_window_start_alone() -> None:
    st, pend = _tiny_one_victim()
    tc._pend(pend, 1, 8, 100.0, prio=1000)
    view = _view(inc_w={107: 2400.0}, ramp_w=2000.0, ramp_limit_w=2000.0, draw_w=400.0)
    plan = schedule(_snap(st, pend, view), _cap())
    # 2400 W > the whole 2000 W window, but the window is clear (nothing spent): the start is
    # allowed alone (the driver staggers it), so the search runs and 107 goes.
    assert _starts(plan) == [(1, 0, ((7, 8),), 0)]
    assert [p.job.id for p in plan.preemptions] == [107]


def test_budgets_without_a_power_policy_do_not_hold_a_preemption_back() -> None:
    st, pend = _tiny_one_victim()
    tc._pend(pend, 1, 8, 100.0, prio=1000)
    view = _view(site_w=0.0, ramp_w=0.0, ramp_limit_w=10_000.0)
    plan = schedule(_snap(st, pend, view), Policies(ordering=Fifo()))
    # The snapshot carries budgets, all spent, but the profile has no power policy: watts
    # are not the cycle's to check, and job 1 preempts as it would without them.
    assert _starts(plan) == [(1, 0, ((7, 8),), 0)]
    assert [p.job.id for p in plan.preemptions] == [107]


def test_a_power_policy_without_budgets_starts_and_preempts_uncapped() -> None:
    st, pend = _tiny_one_victim(free_on_6=4)
    tc._pend(pend, 1, 4, 100.0)
    tc._pend(pend, 2, 8, 100.0, prio=1000)
    plan = schedule(_snap(st, pend, None), _cap())
    # The profile has a power policy but the driver models no power (no view): job 1 starts
    # on node 6's 4 free GPUs, job 2 evicts 107, both uncapped.
    assert _starts(plan) == [(1, 0, ((6, 4),), 0), (2, 0, ((7, 8),), 0)]
    assert [p.job.id for p in plan.preemptions] == [107]


def test_watts_short_on_a_fragmented_flavor_is_the_reason_not_topology() -> None:
    st, pend, _ = tc._setup()
    for n in range(8):  # 7 GPUs of each node busy: 8 free, one per node
        tc._run(st, 100 + n, ((n, 7),))
    tc._pend(pend, 1, 8, 100.0)
    tc._pend(pend, 2, 1, 100.0)
    plan = schedule(_snap(st, pend, _view(site_w=0.0)), _cap())
    # Job 1: 8 GPUs are free, in pieces. No watts are left: even at the floor it needs
    # 2560 W. That is its reason (not the topology, which placement would have said), and
    # since watts, not GPUs, hold it back and it fits the site budget, nothing behind it may
    # take the next watts freed: the pass stops there.
    (r,) = plan.blockers[1]
    assert r.code is Code.POWER_CAP and r.detail["domain"] == "site"
    assert r.detail["need_mw"] == pytest.approx(2560 / 1e6)
    assert plan.starts == [] and 2 not in plan.blockers
    assert plan.rest_reason is not None and plan.rest_reason.code is Code.POWER_CAP


# ---- a job short of watts on one flavor and of GPUs on another ---------------------------------
@pytest.mark.parametrize("short_of", ["ramp", "site"])
def test_watts_short_on_one_flavor_stop_the_pass_even_when_another_flavor_is_full(
    short_of: str,
) -> None:
    """A large job that failed left its nodes free on its flavor, but its restart is one step
    too many for the ramp window (or the site budget) right now; its other flavor is full.
    Before, the full flavor made it a capacity blocker (it reserved that flavor) and the walk
    went on: small jobs behind it took its freed GPUs and, in the ramp's case, kept the window
    from ever clearing, so it waited for a quiet minute and then evicted the jobs that had
    started in its own hole (on the 30-day `full` month: 3,833 of 15,686 victims)."""
    st, pend, _ = tc._setup(tc.TWO_FLAVORS)
    h200, h100 = (tc.TWO_FLAVORS.flavors.index(f) for f in ("H200-SXM", "H100-SXM5"))
    tc._run(st, 104, tuple((n, 8) for n in range(4, 8)), prio=1000)  # H100 nodes 4-7: full
    big = tc._pend(pend, 1, 16, 100.0, prio=1000)
    big.flavor_ids = (h200, h100)
    tc._pend(pend, 2, 1, 100.0)
    # Mean draw 400 W under every cap: 300 W over idle per GPU at any level. Job 1 adds
    # 16 x 300 = 4800 W; job 2, 300 W.
    if short_of == "ramp":
        # The window allows 4000 W a minute and 100 W of it is spent: 4800 W > 3900 W left,
        # and the window is not clear, so job 1 may not start alone either.
        view = _view(ramp_w=3900.0, ramp_limit_w=4000.0, draw_w=400.0, flavors=2)
        code = Code.POWER_RAMP
    else:
        view = _view(site_w=4000.0, draw_w=400.0, flavors=2)  # 4800 W > 4000 W left
        code = Code.POWER_CAP
    plan = schedule(_snap(st, pend, view), _cap())
    # Job 1: watts on H200 (32 GPUs free there), GPUs on H100 (0 free, and job 104 ranks as
    # high: no victims). Watts block it, it fits the site budget once watts free, so the
    # next watts are its own: job 2 (300 W, which would fit both what is left and H200's
    # free GPUs) must not start. The old walk started job 2 on H200.
    r_h200, r_h100 = plan.blockers[1]
    assert r_h200.code is code and r_h200.detail["need_mw"] == pytest.approx(4800 / 1e6)
    assert (r_h100.code, r_h100.detail["free"]) == (Code.INSUFFICIENT_CAPACITY, 0)
    assert plan.starts == [] and plan.preemptions == [] and 2 not in plan.blockers
    assert plan.rest_reason is not None
    assert (plan.rest_reason.code, plan.rest_reason.detail["job"]) == (code, 1)


# ---- a search the ramp would undo whatever it found ---------------------------------------------
def test_a_search_the_ramp_would_undo_is_not_run_and_costs_one_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Job 1 (8 GPUs of H200, 600 W draw) and job 2 (8 GPUs of H100, `eval`, 400 W draw), both
    production, find every GPU taken; H200 node 3 and H100 node 7 run preemptible jobs 103 and
    107 (2400 W each). The ramp window allows 10 kW a minute and has 3000 W left. Job 1 starts
    at its class's level 0: 8 x 500 = 4000 W > 3000, and CapToFit does not go lower on the ramp
    (it waits for the window rather than run capped), so whatever victims a search found, the
    start would be refused. Before, the search ran (its floor, 2560 W, fits the window),
    evicted 103, placed, was refused and undone, and counted twice against the pass's 2 tries:
    the pass then had none left, and job 2 never searched. Now job 1's search is not run and
    counts once; job 2 (8 x 300 = 2400 W <= 3000) evicts 107 and starts on node 7."""
    st, pend, _ = tc._setup(tc.TWO_FLAVORS)
    h200, h100 = (tc.TWO_FLAVORS.flavors.index(f) for f in ("H200-SXM", "H100-SXM5"))
    tc._run(st, 100, tuple((n, 8) for n in range(3)), prio=1000)  # H200 nodes 0-2
    tc._run(st, 103, ((3, 8),), prio=10)
    tc._run(st, 104, tuple((n, 8) for n in range(4, 7)), prio=1000)  # H100 nodes 4-6
    tc._run(st, 107, ((7, 8),), prio=10)
    tc._pend(pend, 1, 8, 100.0, prio=1000).flavor_ids = (h200,)
    tc._pend(pend, 2, 8, 100.0, prio=1000, kind="eval").flavor_ids = (h100,)
    view = _view(inc_w={103: 2400.0, 107: 2400.0}, ramp_w=3000.0, ramp_limit_w=10_000.0, flavors=2)
    view = dataclasses.replace(view, draw_w=lambda kind, _f: 400.0 if kind == "eval" else 600.0)
    searched: list[int] = []
    real = evict_place.find_victims

    def spy(snap: Snapshot, policy: object, gang: int, flavor: int, job: Job, **kw: bool) -> object:
        searched.append(job.id)
        return real(snap, policy, gang, flavor, job, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(evict_place, "find_victims", spy)
    plan = schedule(_snap(st, pend, view), _cap())
    assert searched == [2]
    assert plan.preempt_failed == [1]
    assert _starts(plan) == [(2, h100, ((7, 8),), 0)]
    assert [p.job.id for p in plan.preemptions] == [107]


@pytest.mark.parametrize("policy", [CapToFit(), AdmitUncapped()])
@pytest.mark.parametrize(
    "ramp_w", [0.0, 2559.0, 2560.0, 3000.0, 3679.0, 3680.0, 3999.0, 4000.0, 9999.0, 10_000.0]
)
@pytest.mark.parametrize("site_w", [0.0, 2559.0, 2560.0, 2600.0, 3680.0, 3999.0, 4000.0, BIG])
@pytest.mark.parametrize("target", [0, 1, 2])
def test_ramp_refuses_only_when_admit_refuses_on_the_ramp_for_every_placement_and_credit(
    policy: CapToFit | AdmitUncapped, ramp_w: float, site_w: float, target: int
) -> None:
    """8 GPUs: 4000, 3680, 2560 W at levels 0, 1, 2; the window's whole allowance 10 kW."""
    view = _view(site_w=site_w, ramp_w=ramp_w, ramp_limit_w=10_000.0)
    view = dataclasses.replace(view, target={("generic", 0, 100, 0): target})
    room = Watts.of(view)
    job = Job(1, "p1", "a", 8, 100.0)
    job.priority = 100
    refuses = policy.ramp_refuses(view, room, job, 0, 8)
    for placement in (((0, 8),), ((0, 4), (1, 4))):
        for credit in ((0.0, {}), (500.0, {0: 500.0}), (4000.0, {0: 4000.0}), (1e6, {0: 1e6})):
            got = policy.admit(view, room, job, 0, 8, placement, credit)
            if refuses:
                assert isinstance(got, Reason) and got.code is Code.POWER_RAMP
    # Where it says so, by hand: the window is not clear, and from the first level down to one
    # whose step the site takes without any credit, every step is more than what is left
    # (CapToFit walks down to the floor, level 2; AdmitUncapped tries level 0 alone).
    first = target if isinstance(policy, CapToFit) else 0
    last = 2 if isinstance(policy, CapToFit) else 0
    steps = (4000.0, 3680.0, 2560.0)
    stops = [
        lv
        for lv in range(first, last + 1)
        if steps[lv] <= site_w and all(s > ramp_w for s in steps[first : lv + 1])
    ]
    assert refuses == (ramp_w < 10_000.0 and bool(stops))


def test_ramp_refuses_agrees_with_admission_on_random_states() -> None:
    """Random ladders, budgets, class levels per hall, racks caps, placements over the halls
    and credits: wherever ramp_refuses says so, every admission refuses on the ramp; and it
    says so on a share of the states where a level above the one the window takes is the
    first the site takes without credit (the searches RESULTS 146 skips)."""
    rng = random.Random(146)
    said = walked = 0
    for _ in range(3000):
        halls = rng.randint(1, 3)
        levels = tuple(
            sorted((rng.choice((1.0, 0.9, 0.8, 0.7, 0.6, 0.5)) for _ in range(4)), reverse=True)
        )
        caps = [rng.choice((math.inf, 450.0, 520.0, 650.0)) for _ in range(8)]
        capped = rng.random() < 0.5

        def step(lv: int, levels: tuple[float, ...] = levels) -> float:
            return 8 * (min(levels[lv] * 700.0, 600.0) - 100.0)

        def pick(step: Callable[[int], float] = step) -> float:
            return rng.choice([0.0, *[step(lv) + d for lv in range(4) for d in (-1.0, 0.0, 1.0)]])

        # 3 kW: a window the largest step (4 kW) is more than, taken alone when clear
        ramp_limit = rng.choice((math.inf, 10_000.0, 4000.0, 3000.0))
        view = testkit.toy_power_view(
            levels,
            halls,
            caps,
            capped,
            site_w=rng.choice((pick(), BIG)),
            hall_w=[rng.choice((pick(), BIG)) for _ in range(halls)],
            ramp_w=min(pick(), ramp_limit),
            ramp_limit_w=ramp_limit,
            target={("generic", 0, 100, h): rng.randint(0, 3) for h in range(halls)},
        )
        room = Watts.of(view)
        job = Job(1, "p1", "a", 8, 100.0)
        job.priority = 100
        for policy in (CapToFit(), AdmitUncapped()):
            refuses = policy.ramp_refuses(view, room, job, 0, 8)
            said += refuses
            for _ in range(6):
                nodes = rng.sample(range(8), rng.choice((1, 2, 4)))
                placement = tuple((n, 8 // len(nodes)) for n in sorted(nodes))
                share = rng.choice((0.0, 0.3, 1.0, 50.0))
                credit = (share * 4000.0, dict.fromkeys(range(halls), share * 4000.0 / halls))
                got = policy.admit(view, room, job, 0, 8, placement, credit)
                if refuses:
                    assert isinstance(got, Reason) and got.code is Code.POWER_RAMP, (
                        view,
                        placement,
                    )
            first = min(view.target.values())
            if isinstance(policy, CapToFit) and refuses and step(first) > room.site_w:
                walked += 1  # refused below a first level the site does not take uncredited
    assert said > 300 and walked > 20, (said, walked)


def test_a_search_power_refuses_counts_once_against_the_pass() -> None:
    """Job 1 (H200 only) and job 2 (H100 only), production, every GPU taken; no watts left.
    On H200, evicting 103 gives back 1000 W: even the floor's 2560 W does not fit, so job 1's
    search is undone. That is one search of the pass's 2 tries; before, it counted twice
    (once when the search placed, again as a failed search), and job 2 never searched. Now
    job 2 evicts 107, which gives back 4000 W: level 0 fits, and it starts."""
    st, pend, _ = tc._setup(tc.TWO_FLAVORS)
    h200, h100 = (tc.TWO_FLAVORS.flavors.index(f) for f in ("H200-SXM", "H100-SXM5"))
    tc._run(st, 100, tuple((n, 8) for n in range(3)), prio=1000)
    tc._run(st, 103, ((3, 8),), prio=10)
    tc._run(st, 104, tuple((n, 8) for n in range(4, 7)), prio=1000)
    tc._run(st, 107, ((7, 8),), prio=10)
    tc._pend(pend, 1, 8, 100.0, prio=1000).flavor_ids = (h200,)
    tc._pend(pend, 2, 8, 100.0, prio=1000).flavor_ids = (h100,)
    view = _view(site_w=0.0, inc_w={103: 1000.0, 107: 4000.0}, flavors=2)
    plan = schedule(_snap(st, pend, view), _cap())
    assert plan.preempt_failed == [1]
    assert _starts(plan) == [(2, h100, ((7, 8),), 0)]
    assert [p.job.id for p in plan.preemptions] == [107]


# ---- a lean pass's floor bound ----------------------------------------------------------------
def _per_gpu(w: float) -> Callable[[str, int], float]:
    return lambda _kind, _f: w


def test_a_lean_floor_bound_says_what_the_power_stop_reads_of_the_full_reason() -> None:
    """A lean pass's floor-bound refusal is the shared FLOOR_SHORT (no numbers) exactly where the
    power stop would read the full reason's need only to find it within the site budget, from 0
    W up; elsewhere it is the full reason. Either way the stop decides as on the full reason and
    names the same code and job. An 8-GPU gang at the floor: 8 x (420 - 100) = 2560 W; drawing 50
    W a GPU, under its 100 W idle: 8 x (50 - 100) = -400 W (a need below 0 W keeps its numbers)."""
    from cortex.scheduler.cycle import _power_blocks
    from cortex.scheduler.power import FLOOR_SHORT

    job = Job(7, "j", "a", 8, 100.0)
    # The stop compares the need in MW times 1e6, which is not always the need in W: 1,967.901
    # W (a memo's figure) reads 1,967.9010000000003 W there, over a budget of 1,967.901 W.
    assert 1967.901 / 1e6 * 1e6 > 1967.901
    cases = [
        (600.0, 2560.0, (2559.9, 0.0, -5.0), (2559.0, 2560.0, 2561.0, 1e9, -1.0), (False, True)),
        (50.0, -400.0, (-400.5, -1e4), (-401.0, -400.0, -399.0, 0.0, 1e9), (False, True)),
        (600.0, 1967.901, (1967.0,), (1967.901, 1967.9010000000003), (True,)),
    ]
    for draw_w, need_w, rooms, budgets, memos in cases:
        for memo in memos:
            for budget_w in budgets:
                view = dataclasses.replace(
                    _view(draw_w=draw_w),
                    site_budget_w=budget_w,
                    floor_gpu_w=_per_gpu(need_w / 8) if memo else None,
                )
                assert view.lower_bound_reason(Watts(need_w, [BIG], BIG, set()), job, 0, 8) is None
                assert (
                    view.lower_bound_reason(Watts(need_w, [BIG], BIG, set()), job, 0, 8, True)
                    is None
                )
                for site_w in rooms:
                    room = Watts(site_w, [BIG], BIG, set())
                    full = view.lower_bound_reason(room, job, 0, 8)
                    lean = view.lower_bound_reason(room, job, 0, 8, True)
                    assert full is not None and full.detail["need_mw"] == need_w / 1e6
                    within = 0.0 <= need_w / 1e6 * 1e6 <= budget_w
                    assert (lean is FLOOR_SHORT) == within, (need_w, budget_w)
                    if not within:
                        assert lean is not None and lean.detail == full.detail
                    said = []
                    for r in (full, lean):
                        assert r is not None
                        plan = Plan()
                        snap: Any = SimpleNamespace(power=view)
                        got = _power_blocks(snap, plan, job, [r])
                        rest = plan.rest_reason
                        said.append(
                            (got, None if rest is None else (rest.code, rest.detail["job"]))
                        )
                    blocks = need_w / 1e6 * 1e6 <= budget_w
                    want = (True, (Code.POWER_CAP, 7)) if blocks else (False, None)
                    assert said[0] == said[1] == want, (need_w, budget_w)


@pytest.mark.parametrize("memo", [False, True], ids=["formula", "memo"])
@pytest.mark.parametrize("explain", [False, True], ids=["lean", "explained"])
def test_a_start_whose_floor_step_is_exactly_the_site_room_passes_the_bound(
    memo: bool, explain: bool
) -> None:
    """2560 W left: job 1 (8 GPUs) needs exactly that at the floor, 8 x (420 - 100) = 2560 W, so
    the bound lets it through (only more than the room is refused) and admission starts it at
    the floor, level 2 (4000 W at TDP and 3680 W at 80% do not fit)."""
    st, pend, _ = tc._setup()
    tc._pend(pend, 1, 8, 100.0)
    view = dataclasses.replace(
        _view(site_w=2560.0), site_budget_w=1e6, floor_gpu_w=_per_gpu(320.0) if memo else None
    )
    plan = schedule(_snap(st, pend, view), _cap(), explain=explain)
    assert [(j, lv) for j, _, _, lv in _starts(plan)] == [(1, 2)]
    assert plan.power_headroom_w == 0.0


@pytest.mark.parametrize("memo", [False, True], ids=["formula", "memo"])
def test_a_lean_pass_stops_on_the_floor_bound_as_an_explained_one(memo: bool) -> None:
    """1 kW left: job 1 (8 GPUs) needs 2560 W even at the floor, within the 1 MW site budget, so
    it stops the pass before placement and job 2 (1 GPU, 500 W, which would fit) is not
    examined. A lean pass decides the same, counts job 1 by its code and names it in the rest
    reason, without the numbers only an explained pass reads."""
    plans = []
    for explain in (True, False):
        st, pend, _ = tc._setup()
        tc._pend(pend, 1, 8, 100.0)
        tc._pend(pend, 2, 1, 100.0)
        view = dataclasses.replace(
            _view(site_w=1000.0),
            site_budget_w=1e6,
            floor_gpu_w=_per_gpu(320.0) if memo else None,
        )
        plans.append(schedule(_snap(st, pend, view), _cap(), explain=explain))
    told, lean = plans
    assert _starts(told) == _starts(lean) == []
    assert told.examined == lean.examined == 1
    assert told.rest_reason is not None and lean.rest_reason is not None
    assert told.rest_reason.code is lean.rest_reason.code is Code.POWER_CAP
    assert told.rest_reason.detail == {
        "job": 1,
        "need_mw": 2560 / 1e6,
        "headroom_mw": 1000 / 1e6,
        "domain": "site",
    }
    assert lean.rest_reason.detail == {"job": 1}
    assert lean.first_codes == {Code.POWER_CAP: 1}


# ---- the walk asks power_blocks only after a reason that may be on watts ---------------------
class _SiteWattsCheck:
    """An admission check of the profile's own that refuses job 1 on the site's watts (within
    the budget) and lets every other job through."""

    name = "site-watts"

    def check(self, snap: Snapshot, job: Job, flavor: int, alloc_gpus: int) -> Reason | None:
        if job.id != 1:
            return None
        return Reason(Code.POWER_CAP, need_mw=0.001, headroom_mw=0.0, domain="site")


@pytest.mark.parametrize("explain", [True, False])
def test_an_admission_check_s_site_watts_refusal_stops_the_pass(explain: bool) -> None:
    """A power reason from an admission check (not the walk's own power steps) stops the pass
    as the walk's would: job 2 fits GPUs and watts but must not take the watts job 1 waits
    for (power_blocks; RESULTS section 153: the walk asks it only after such a reason)."""
    st, pend, _ = tc._setup()
    tc._pend(pend, 1, 8, 100.0)
    tc._pend(pend, 2, 1, 100.0)
    pol = dataclasses.replace(_cap(), admission=(_SiteWattsCheck(),))
    plan = schedule(_snap(st, pend, _view()), pol, explain=explain)
    assert plan.starts == []
    assert plan.rest_reason is not None
    assert (plan.rest_reason.code, plan.rest_reason.detail["job"]) == (Code.POWER_CAP, 1)
