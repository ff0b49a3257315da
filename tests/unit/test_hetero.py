"""The hetero profile on a 2-flavor fleet: scenarios where the throughput-aware choice and the
flavor-order choice (the `priority` profile) differ, with outcomes computed by hand.

Speeds (workload/data/throughput.csv, H100-equivalents per GPU):
  fsd-video: H200 1.118, Dojo 0.293;  llm: H200 1.082, Dojo 0.146;  generic: H200 1.1, Dojo 0.183.
Fleet: one 8-GPU H200 node (node 0, listed first) and one Dojo node cut to 8 GPUs (node 1).
Queues vision (fsd-video work) and lang (llm work), half of each flavor each.
"""

from __future__ import annotations

from typing import Any

import pytest

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.cycle import Policies, schedule
from cortex.scheduler.hetero import Targets, guarded_flavors
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.reasons import Code
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Plan, Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job
from cortex.workload.states import JobState
from cortex.workload.throughput import ThroughputTable

TABLE = ThroughputTable.load()
H200 = {"flavor": "H200-SXM", "nodes": 1}
DOJO = {"flavor": "Dojo-D1", "nodes": 1, "gpus_per_node": 8}


def _fleet(*groups: dict[str, Any]) -> Topology:
    return build(
        parse_fleet(
            {
                "name": "two-flavor",
                "halls": [{"name": "h", "groups": list(groups)}],
                "queues": {
                    "cluster_queues": [
                        {"name": "vision", "nominal_share": 0.5},
                        {"name": "lang", "nominal_share": 0.5},
                    ]
                },
            },
            "test",
        )
    )


H200_FIRST = _fleet(H200, DOJO)
DOJO_FIRST = _fleet(DOJO, H200)
# Whole Dojo nodes (25 chips): a 24-GPU gang fits one, a 32-GPU gang holds two (50 chips).
PACKING = _fleet(
    {"flavor": "H200-SXM", "nodes": 4}, {"flavor": "Dojo-D1", "nodes": 4, "gpus_per_node": 25}
)
KIND = {"vision": "fsd-video", "lang": "llm"}


class World:
    """A state, its pending queues and the jobs, for one profile."""

    def __init__(self, topo: Topology, profile: str) -> None:
        self.topo = topo
        self.pol: Policies = policies(profile)
        self.queues = QueueConfig.build(topo.spec.queues, topo)
        self.st = ClusterState(topo, self.queues)
        self.pending = PendingQueues(len(self.queues.queues), self.pol.ordering.key)
        self.jobs: dict[int, Job] = {}
        self.now_s = 0.0

    def job(self, jid: int, team: str, gpus: int, submit_s: float = 0.0) -> Job:
        job = Job(jid, f"{team}-{jid}", team, gpus, 1e5, kind=KIND[team], submit_s=submit_s)
        job.queue_idx = self.queues.index(team)
        job.priority = 100
        self.jobs[jid] = job
        return job

    def pend(self, jid: int, team: str, gpus: int, submit_s: float) -> None:
        self.pending.add(self.job(jid, team, gpus, submit_s))

    def run(self, jid: int, team: str, node: int, gpus: int) -> None:
        job = self.job(jid, team, gpus)
        job.state = JobState.RUNNING
        job.run_flavor = self.topo.node_flavor[node]
        job.alloc_gpus = job.run_gpus = gpus
        job.run_start_s, job.est_end_s = -1e6, 1e9
        self.st.start(job, job.queue_idx, job.run_flavor, ((node, gpus),))

    def speed(self, kind: str, f: int) -> float:
        return TABLE.speed(kind, self.topo.flavors[f])

    def snapshot(self, targets: Targets | None = None) -> Snapshot:
        return Snapshot(
            self.now_s, self.st, self.pending, self.speed, self.estimate_s, targets=targets
        )

    def estimate_s(self, job: Job, f: int, _gang: int) -> float:
        """An hour on the reference flavor (the hold of `_reclaims_elsewhere` is bounded by
        the run time a slower flavor costs)."""
        return 3600.0 / self.speed(job.kind, f)

    def cycle(self, *, solve: bool = True) -> Plan:
        """A quick pass (no preemption: these scenarios are about placement), after the
        allocator's solve when the profile has one."""
        targets = None
        if solve and self.pol.allocator is not None:
            targets = self.pol.allocator.solve(self.snapshot())
        return schedule(self.snapshot(targets), self.pol, deep=False)

    def effective(self, plan: Plan) -> float:
        """H100-equivalents of running jobs plus the plan's starts."""
        run = sum(j.alloc_gpus * self.speed(j.kind, j.run_flavor) for j in self.st.running.values())
        return run + sum(s.gang_gpus * self.speed(s.job.kind, s.flavor) for s in plan.starts)


def _placed(w: World, plan: Plan) -> dict[str, str]:
    return {s.job.name: w.topo.flavors[s.flavor] for s in plan.starts}


def _swap(w: World) -> None:
    w.pend(1, "vision", 8, 0.0)
    w.pend(2, "lang", 8, 1.0)


def _hold_back(w: World) -> None:
    w.run(10, "vision", 0, 8)  # vision holds the H200 node
    w.pend(1, "lang", 8, 0.0)
    w.pend(2, "vision", 8, 1.0)


def _dojo_listed_first(w: World) -> None:
    w.pend(1, "lang", 8, 0.0)


def _own_big_run(w: World) -> None:
    w.pend(2, "vision", 8, 0.0)  # a small job: any flavor
    w.pend(1, "vision", 8, 1.0)  # a big run of the same kind: H200 only
    w.jobs[1].flavor_ids = (0,)


def _packing(w: World) -> None:
    w.pend(2, "vision", 24, 0.0)
    w.pend(1, "vision", 32, 1.0)


# (id, fleet, setup, priority's placements and H100-eq, hetero's placements and H100-eq; the
# last two scenarios run hetero-class, the per-class planning)
SCENARIOS = [
    # Both queues want 8 GPUs. Flavor order: vision (first) takes H200, lang gets Dojo:
    #   8 * 1.118 + 8 * 0.146 = 10.112.
    # Hetero: the LP (fairness 0.95; entitlements vision 4*1.118 + 4*0.293 = 5.644, lang
    # 4*1.082 + 4*0.146 = 4.912) gives vision x H200 GPUs, total 11.0 - 0.111 x, smallest x
    # that meets vision's floor 5.3618: 1.118x + 0.293(8 - x) >= 5.3618 -> x = 3.658. Targets:
    # vision H200 3.658 / Dojo 4.342, lang H200 4.342 / Dojo 3.658. Vision tries H200 first
    # (faster) but would take 8 > its 3.658 + half a gang, and lang is owed 4.342 of the 8
    # free: refused; Dojo admits it (4 <= 4.342). Lang then fits its H200 target (4 <= 4.342):
    #   8 * 0.293 + 8 * 1.082 = 11.0.
    ("swap", H200_FIRST, _swap,
     {"vision-1": "H200-SXM", "lang-2": "Dojo-D1"}, 10.112,
     {"vision-1": "Dojo-D1", "lang-2": "H200-SXM"}, 11.0),
    # Vision runs 8 on H200; lang (lower share, goes first) and vision each want 8 more.
    # Flavor order: lang finds H200 full and starts on Dojo; vision waits:
    #   8 * 1.118 + 8 * 0.146 = 10.112.
    # Hetero: Dojo earns vision 0.293 and lang 0.146, so Dojo is vision's (8). Lang's floor
    # 0.95 * 4.912 = 4.666 is cheapest on H200 (it costs the total 1.118 - 1.082 per GPU there,
    # 0.147 on Dojo): lang H200 4.666 / 1.082 = 4.313, vision H200 3.687. Lang may not take
    # Dojo (target 0; vision, waiting, is owed all 8 free GPUs) and H200 is full: it waits.
    # Vision starts on Dojo (under its target 8): 8 * 1.118 + 8 * 0.293 = 11.288.
    ("hold-back", H200_FIRST, _hold_back,
     {"lang-1": "Dojo-D1"}, 10.112,
     {"vision-2": "Dojo-D1"}, 11.288),
    # The fleet file lists Dojo first: flavor order puts lang's job there, 8 * 0.146 = 1.168;
    # the LP gives lang's only class all of H200 (1.082 > 0.146): 8 * 1.082 = 8.656.
    ("dojo-listed-first", DOJO_FIRST, _dojo_listed_first,
     {"lang-1": "Dojo-D1"}, 1.168,
     {"lang-1": "H200-SXM"}, 8.656),
    # One queue, one kind, two classes: vision's small job (any flavor, first in line) and its
    # big run (H200 only). Flavor order: the small job takes H200, the big run waits:
    # 8 * 1.118 = 8.944. Hetero: work 8.944 each; H200 earns both classes 1.118 but Dojo only
    # the small job can use, so the solve gives the big run all of H200 and the small job all
    # of Dojo (11.288; the other way round gives 8.944). Per class the small job tries Dojo
    # first (per kind, both flavors were given and short, and H200 is faster):
    #   8 * 0.293 + 8 * 1.118 = 11.288.
    ("own-big-run/class", H200_FIRST, _own_big_run,
     {"vision-2": "H200-SXM"}, 8.944,
     {"vision-2": "Dojo-D1", "vision-1": "H200-SXM"}, 11.288),
    # 32 H200 GPUs and four 25-chip Dojo nodes; vision wants 24 GPUs (first) and 32. Flavor
    # order: the 24 take H200, the 32 fit only on Dojo, where they hold two nodes (50 chips):
    #   24 * 1.118 + 32 * 0.293 = 36.208.
    # Hetero: on Dojo the 24-GPU gang uses all it holds, the 32-GPU one 32 / 50 (0.64, 0.6 to
    # the nearest tenth): 0.293 and 0.176 per chip held; on H200 both earn 1.118. Work: the
    # 24 ask 24 * 1.118 = 26.83, the 32 ask 35.78. The 32 on H200 (35.78) and the 24 on 91.6
    # Dojo chips (26.83) serve all the work, 62.61; each H200 GPU the 24 take instead moves
    # 1.118 of the 32's work to Dojo at 0.176 (6.35 chips) and frees 3.8 of the 24's: the same
    # throughput on more GPUs, which the tie-break refuses. The 24 start on Dojo, the 32 on
    # H200: 24 * 0.293 + 32 * 1.118 = 42.808. (Without packing the two gangs are one class
    # given both flavors and the 24 take H200 first, as flavor order does.)
    ("packing/class", PACKING, _packing,
     {"vision-2": "H200-SXM", "vision-1": "Dojo-D1"}, 36.208,
     {"vision-2": "Dojo-D1", "vision-1": "H200-SXM"}, 42.808),
]  # fmt: skip


@pytest.mark.parametrize(
    ("topo", "setup", "prio_placed", "prio_eq", "het_placed", "het_eq"),
    [s[1:] for s in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
)
def test_throughput_aware_choice_beats_flavor_order(
    request: pytest.FixtureRequest,
    topo: Topology,
    setup: Any,
    prio_placed: dict[str, str],
    prio_eq: float,
    het_placed: dict[str, str],
    het_eq: float,
) -> None:
    base = World(topo, "priority")
    setup(base)
    plan = base.cycle()
    assert _placed(base, plan) == prio_placed
    assert base.effective(plan) == pytest.approx(prio_eq)
    het = World(topo, "hetero-class" if request.node.callspec.id.endswith("/class") else "hetero")
    setup(het)
    plan = het.cycle()
    assert _placed(het, plan) == het_placed
    assert het.effective(plan) == pytest.approx(het_eq)


def test_hold_back_names_the_target_share() -> None:
    w = World(H200_FIRST, "hetero")
    _hold_back(w)
    plan = w.cycle()
    codes = [r.code for r in plan.blockers[1]]
    # H200: full (capacity); Dojo: over lang's target there while vision is owed it.
    assert codes == [Code.INSUFFICIENT_CAPACITY, Code.OVER_TARGET]
    detail = plan.blockers[1][1].detail
    assert (detail["queue"], detail["target"], detail["spare"]) == ("lang", 0, 0)


def test_targets_keep_every_queue_at_its_floor() -> None:
    # The swap scenario's solve: vision at exactly its floor (0.95), lang above it:
    # lang = 1.082 * 4.342 + 0.146 * 3.658 = 5.232 over 4.912 = 1.065.
    w = World(H200_FIRST, "hetero")
    _swap(w)
    assert w.pol.allocator is not None
    t = w.pol.allocator.solve(w.snapshot())
    assert t.entitlement_eq == pytest.approx((5.644, 4.912))
    norm = [a / b for a, b in zip(t.throughput_eq, t.entitlement_eq, strict=True)]
    assert norm[0] == pytest.approx(0.95, abs=1e-4)
    assert norm[1] == pytest.approx(1.065, abs=1e-3)
    assert t.fair_level == pytest.approx(0.95, abs=1e-4)
    assert t.queue_gpus[0] == pytest.approx((3.658, 4.342), abs=1e-3)
    assert t.share_by_class == {}  # per (queue, kind) only


def test_per_class_demand_is_work() -> None:
    # The swap scenario's solve in hetero-class. Demand is work: each pending gang at its speed
    # on its fastest flavor (H200), vision 8 * 1.118 = 8.944 and lang 8 * 1.082 = 8.656. Dojo
    # earns vision 0.293 and lang 0.146, so Dojo is vision's (8 chips, 2.344, under its 8.944).
    # On H200 vision earns 1.118 and lang 1.082: total = 11.0 + 0.036 a for vision's a H200
    # GPUs, so a is as large as lang's floor 0.95 * 4.912 = 4.6664 allows (lang's cheapest on
    # H200): lang 4.6664 / 1.082 = 4.3128, a = 3.6872. Vision: 1.118 a + 2.344 = 6.4663 (under
    # its work 8.944) over 5.644 = 1.1457; lang exactly at its floor. In GPUs (hetero) vision's
    # demand of 8 GPUs capped it at 8 in all, so it had 3.658 H200 + 4.342 Dojo.
    w = World(H200_FIRST, "hetero-class")
    _swap(w)
    assert w.pol.allocator is not None
    t = w.pol.allocator.solve(w.snapshot())
    assert t.entitlement_eq == pytest.approx((5.644, 4.912))
    norm = [a / b for a, b in zip(t.throughput_eq, t.entitlement_eq, strict=True)]
    assert norm[0] == pytest.approx(6.4663 / 5.644, abs=1e-4)
    assert norm[1] == pytest.approx(0.95, abs=1e-4)
    assert t.queue_gpus[0] == pytest.approx((3.6872, 8.0), abs=1e-3)
    assert t.queue_gpus[1] == pytest.approx((4.3128, 0.0), abs=1e-3)


def test_without_a_solve_the_hetero_profile_takes_the_fastest_flavor() -> None:
    # A driver that never calls the allocator (targets None): no share gate, fastest first.
    w = World(DOJO_FIRST, "hetero")
    _dojo_listed_first(w)
    assert _placed(w, w.cycle(solve=False)) == {"lang-1": "H200-SXM"}


def test_fair_share_is_counted_in_h100_equivalents() -> None:
    # Vision holds the 8 Dojo GPUs, lang 4 of the 8 H200 GPUs; each wants 4 more (4 H200 free).
    # By GPU count (priority's DRF) vision's dominant share is 8/8 = 1.0 and lang's 4/8 = 0.5:
    # lang goes first and takes the free H200 GPUs. In H100-equivalents (generic speeds before
    # any solve: H200 1.1, Dojo 0.183), vision has used 8 * 0.183 = 1.464 of its entitlement
    # 4 * 1.1 + 4 * 0.183 = 5.132 (0.285) and lang 4 * 1.1 = 4.4 (0.857): vision goes first.
    starts = {}
    for profile in ("priority", "hetero"):
        w = World(H200_FIRST, profile)
        w.run(10, "vision", 1, 8)
        w.run(11, "lang", 0, 4)
        w.pend(1, "lang", 4, 0.0)
        w.pend(2, "vision", 4, 1.0)
        starts[profile] = [s.job.name for s in w.cycle(solve=False).starts]
    assert starts == {"priority": ["lang-1"], "hetero": ["vision-2"]}


def test_the_site_power_cap_bounds_the_targets() -> None:
    # One H100 node (8 GPUs) under a 9 kW site cap at PUE 1.2, through the facility model
    # (power/data/cooling.csv: fixed 3% of nameplate, slope 1.2 - 0.03 = 1.17 at the design
    # temperature). Nameplate 8 x 700 + 3,400 = 9,000 W, so IT may reach (9,000 - 270) / 1.17
    # = 7,461.54 W; less 8 idle GPUs at 96 W (768 W) and the node's 3,400 W overhead leaves
    # 3,293.54 W over idle. A busy GPU adds 546 - 96 = 450 W (catalog's measured training
    # draw), so the solve targets 3,293.54 / 450 = 7.319 GPUs, not the 8 the job asks for.
    topo = build(
        parse_fleet(
            {
                "name": "capped",
                "site": {"power_cap_mw": 0.009, "pue": 1.2},
                "halls": [{"name": "h", "groups": [{"flavor": "H100-SXM5", "nodes": 1}]}],
                "queues": {"cluster_queues": [{"name": "lang", "nominal_share": 1.0}]},
            },
            "test",
        )
    )
    w = World(topo, "hetero")
    w.pend(1, "lang", 8, 0.0)
    assert w.pol.allocator is not None
    t = w.pol.allocator.solve(w.snapshot())
    assert t.queue_gpus[0][0] == pytest.approx((8730 / 1.17 - 4168) / 450, rel=1e-6)


def test_the_twin_runs_the_solve_and_places_by_it() -> None:
    # The swap scenario through the twin: both arrive at t=0, the solve then sends vision to
    # Dojo and lang to H200; each job has 1e5 reference seconds of work, so lang ends at
    # 1e5 / 1.082 = 92,421 s and vision at 1e5 / 0.293 = 341,297 s (no failures, no
    # checkpoints).
    from cortex.sim.twin import SimConfig, Twin

    jobs = [
        Job(0, "vision-0", "vision", 8, 1e5, kind="fsd-video"),
        Job(1, "lang-1", "lang", 8, 1e5, kind="llm"),
    ]
    tw = Twin(H200_FIRST, jobs, SimConfig(days=5, policy="hetero", failures=False))
    tw.run()
    assert tw._allocation.targets is not None and tw._allocation.solves >= 1
    assert {j.name: H200_FIRST.flavors[j.run_flavor] for j in jobs} == {
        "vision-0": "Dojo-D1",
        "lang-1": "H200-SXM",
    }
    assert jobs[1].end_s == pytest.approx(1e5 / 1.082, rel=1e-6)
    assert jobs[0].end_s == pytest.approx(1e5 / 0.293, rel=1e-6)


def test_the_solve_and_the_power_books_see_one_site_budget() -> None:
    # One facility model: without a power policy the solve's site watts over idle are the power
    # books' at the design temperature (drive/power_books.py), on a two-flavor fleet of two
    # halls, with nodes down (down nodes keep their idle budget in both).
    from cortex.drive.power_books import PowerBooks
    from cortex.scheduler.hetero import power_rows
    from cortex.scheduler.registry import power_profile

    topo = build(
        parse_fleet(
            {
                "name": "two",
                "site": {"power_cap_mw": 0.2, "pue": 1.3},
                "halls": [
                    {"name": "h1", "groups": [{"flavor": "H100-SXM5", "nodes": 6}]},
                    {"name": "h2", "groups": [{"flavor": "H200-SXM", "nodes": 4}]},
                ],
                "queues": {"cluster_queues": [{"name": "lang", "nominal_share": 1.0}]},
            },
            "test",
        )
    )
    w = World(topo, "hetero")
    w.st.set_down(0)
    books = PowerBooks(
        **PowerBooks.fleet_args(topo, cap_mw=0.2, profile=power_profile("admit", live=True))
    )
    _, budget_w = power_rows(w.snapshot(), ["llm"])
    assert budget_w == pytest.approx(books.site_budget_w(0.0), rel=1e-12)
    assert 0 < budget_w < 0.2e6 / 1.3  # a real bound, under the cap over its PUE


def _stale_targets(waiting: tuple[tuple[float, ...], ...]) -> Targets:
    # As a solve leaves them just after vision's fsd-video job on Dojo ended: vision's target
    # is the 8 Dojo GPUs that job held, lang's the 8 H200 GPUs its llm work holds.
    return Targets(
        solved_at_s=0.0,
        queue_gpus=((0.0, 8.0), (8.0, 0.0)),
        class_share={(0, "fsd-video"): (0.0, 1.0), (1, "llm"): (1.0, 0.0)},
        queue_speed=((1.118, 0.293), (1.082, 0.146)),
        entitlement_eq=(5.644, 4.912),
        throughput_eq=(2.344, 8.656),
        fair_level=0.415,
        total_eq=11.0,
        classes=2,
        waiting_gpus=waiting,
    )


@pytest.mark.parametrize(
    ("waiting", "started"),
    [
        # Without the solve's waiting figures, vision is owed its whole room on Dojo (8 - 0):
        # spare 8 - 8 = 0, lang's 8-GPU job may not start there and Dojo idles.
        ((), []),
        # Vision's only waiting job lists H200 alone (a big run's flavors), so at the solve it
        # waited for 0 GPUs of a class given Dojo: owed min(8, 0) = 0; lang's own room there is
        # min(0 - 0, 0) = 0 (its llm class has no Dojo share): spare 8, lang starts on Dojo.
        (((8.0, 0.0), (0.0, 0.0)), ["lang-2"]),
    ],
)
def test_room_no_waiting_job_can_fill_is_not_held_idle(
    waiting: tuple[tuple[float, ...], ...], started: list[str]
) -> None:
    w = World(H200_FIRST, "hetero")
    w.run(10, "lang", 0, 8)  # H200 is full
    w.pend(1, "vision", 8, 0.0)
    w.jobs[1].flavor_ids = (0,)  # H200 only
    w.pend(2, "lang", 8, 1.0)
    plan = schedule(w.snapshot(_stale_targets(waiting)), w.pol, deep=False)
    assert [s.job.name for s in plan.starts] == started
    assert all(w.topo.flavors[s.flavor] == "Dojo-D1" for s in plan.starts)
    if not started:
        last = plan.blockers[2][-1]  # Dojo, tried after H200 (faster)
        assert (last.code, last.detail["flavor"], last.detail["spare"]) == (
            Code.OVER_TARGET,
            "Dojo-D1",
            0,
        )


def _guarantee_world(profile: str) -> World:
    """Vision's production run (class 1000, H200 only) holds the H200 node: 8 GPUs, 4 of
    them borrowed (nominal 4 each). Lang's normal-class job wants 4 GPUs, either flavor."""
    w = World(H200_FIRST, profile)
    w.run(10, "vision", 0, 8)
    w.jobs[10].priority = 1000
    w.jobs[10].flavor_ids = (0,)
    w.pend(1, "lang", 4, 0.0)
    return w


def test_guarded_flavors_are_where_other_queues_run_the_top_class() -> None:
    w = _guarantee_world("hetero")
    # Vision's class-1000 job accepts H200 only: lang is guarded there, nobody else anywhere.
    assert guarded_flavors(w.snapshot()).tolist() == [[False, False], [True, False]]


def test_a_queue_takes_its_guarantee_back_from_a_higher_class() -> None:
    # priority: lang's job finds H200 full and starts on Dojo (4 x 0.146); nothing preempted.
    base = _guarantee_world("priority")
    plan = schedule(base.snapshot(), base.pol, deep=True)
    assert _placed(base, plan) == {"lang-1": "Dojo-D1"} and plan.preemptions == []
    # hetero: lang's entitlement plan (alone on 4 + 4, demand 4) is 4 H200 (1.082 > 0.146):
    # H200 is guarded for lang, so its target there is 4 and vision's 4. Lang tries H200
    # first (under target): full. Dojo has 8 spare, but lang may take its guarantee back on
    # H200 (0 + 4 <= nominal 4 while vision borrows 4), so it does not spill there; the
    # search evicts vision's run (vision borrows before it goes: 8 > 4) and lang starts on
    # H200: 4 x 1.082.
    w = _guarantee_world("hetero")
    assert w.pol.allocator is not None
    t = w.pol.allocator.solve(w.snapshot())
    assert t.queue_gpus[1] == pytest.approx((4.0, 0.0), abs=1e-6)
    plan = schedule(w.snapshot(t), w.pol, deep=True)
    assert [p.job.id for p in plan.preemptions] == [10]
    assert _placed(w, plan) == {"lang-1": "H200-SXM"}
    # The next cycle: lang runs 4 on H200; vision's run is back, for 8 (H200 only), class
    # 1000. Lang holds its nominal and borrows nothing, so it is no victim of vision's
    # (priority preemption would take it back, and the GPUs would flip each minimum runtime):
    # vision waits.
    w2 = World(H200_FIRST, "hetero")
    w2.run(1, "lang", 0, 4)
    w2.pend(10, "vision", 8, 0.0)
    w2.jobs[10].priority = 1000
    w2.jobs[10].flavor_ids = (0,)
    assert w2.pol.allocator is not None
    plan2 = schedule(w2.snapshot(w2.pol.allocator.solve(w2.snapshot())), w2.pol, deep=True)
    assert plan2.preemptions == [] and plan2.starts == []
