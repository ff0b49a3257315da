"""A solve's level moves re-key the moved runs' ends (sim/runs.py _move_ends): noted in the state
and applied when the ends are next read, one by one where they are few among a flavor's ends,
else the list rebuilt. Either way each flavor's ends must be what removing and adding them one
by one leaves, and a moved end that is not there must be refused as remove() refuses it."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from sortedcontainers import SortedList

import testkit
from cortex.scheduler.cap_solver import CapPlan
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.state import ClusterState
from cortex.sim.power import CapEvent, PowerConfig, PowerRuntime
from cortex.sim.runs import RunBooks
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.synthetic import generate


def _state_with(ends: list[tuple[float, int, int]]) -> ClusterState:
    topo = testkit.MIXED
    st = ClusterState(topo, QueueConfig.build(None, topo, ["a"]))
    nodes = st.flavor_node_ids[0]
    for k, (end, jid, gpus) in enumerate(ends):
        job = Job(jid, f"j{jid}", "a", gpus, 100.0)
        job.est_end_s = end
        st.start(job, 0, 0, ((nodes[k % len(nodes)], gpus),))
    return st


@pytest.mark.parametrize("n_moved", [1, 5, 40, 100])
def test_moved_ends_are_the_one_by_one_ends(n_moved: int) -> None:
    # Noted in the state (ClusterState.move_ends), applied at the next read: one by one, or the
    # flavor rebuilt where many are noted; either way what removing and adding them one by one
    # leaves.
    rng = random.Random(n_moved)
    ends = [(rng.uniform(0.0, 1e5), i, 1) for i in range(100)]
    moved = []
    for was in rng.sample(ends, n_moved):
        moved.append((0, was, (rng.uniform(0.0, 1e5), was[1], was[2])))
    want = SortedList(ends)
    for _, was, now in moved:
        want.remove(was)
        want.add(now)
    books = SimpleNamespace(state=_state_with(ends))
    assert list(books.state.ends[0]) == sorted(ends)
    RunBooks._move_ends(books, moved)  # type: ignore[arg-type]
    assert list(books.state.ends[0]) == list(want)
    assert list(books.state.ends[1]) == []


def test_a_moved_end_that_is_not_there_is_refused() -> None:
    ends = [(float(i), i, 1) for i in range(10)]
    books = SimpleNamespace(state=_state_with(ends))
    moved = [(0, (99.0, 99, 1), (1.0, 99, 1))] + [(0, e, (e[0] + 0.5, e[1], 1)) for e in ends[:5]]
    RunBooks._move_ends(books, moved)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        _ = books.state.ends


@pytest.mark.parametrize("ramp_mw_per_min", [None, 0.002])
def test_after_every_solve_the_ends_are_the_running_jobs_ends(
    monkeypatch: pytest.MonkeyPatch, ramp_mw_per_min: float | None
) -> None:
    seen = {"moves": 0, "kept": 0, "put off": 0}
    apply = Twin._apply_levels

    def spy(self: Twin, levels: dict[int, int], plan: CapPlan | None = None) -> None:
        apply(self, levels, plan)
        for f, ends in enumerate(self.state.ends):
            want = sorted(
                (j.est_end_s, j.id, j.alloc_gpus)
                for j in self.state.running.values()
                if j.run_flavor == f
            )
            assert list(ends) == want
        seen["moves"] += len(levels)
        # Every job at its plan's level but a raise the ramp window put off (the kept solves'
        # plans read class by class: none of the lowers skipped)
        assert all(self.pw.jobs[j].level >= lv for j, lv in levels.items())
        seen["put off"] += sum(self.pw.jobs[j].level > lv for j, lv in levels.items())

    moves = PowerRuntime.cap_moves

    def read(self: PowerRuntime, levels: dict, running: dict, plan: CapPlan | None = None):
        seen["kept"] += plan is not None and plan.moved is not None  # read class by class
        want = moves(self, levels, running)  # every entry read (a raise put off is listed again)
        got = moves(self, levels, running, plan)
        assert got == want
        return got

    monkeypatch.setattr(Twin, "_apply_levels", spy)
    monkeypatch.setattr(PowerRuntime, "cap_moves", read)
    fleet = testkit.stress_power_fleet()
    jobs = generate(days=2.0, seed=1, fleet_gpus=fleet.total_gpus, flavors=fleet.flavors, load=1.3)
    pc = PowerConfig(
        "full",
        rack_cap_kw=40.0,
        cap_events=(CapEvent(20 * 3600.0, 6 * 3600.0, 0.22),),
        heat_waves=((30 * 3600.0, 10 * 3600.0, 8.0),),
        ramp_limit_mw_per_min=ramp_mw_per_min,
    )
    Twin(fleet, jobs, SimConfig(days=2.0, seed=1, power=pc, debug=True)).run()
    assert seen["moves"] > 50 and seen["kept"] > 5
    assert (seen["put off"] > 5) == (ramp_mw_per_min is not None)  # a tight ramp puts raises off


def test_a_solves_moves_come_lowers_first_then_higher_priorities_first() -> None:
    # PowerBooks.cap_moves: the level changes of a plan, in the order both drivers make them:
    # every lower (it frees watts) before any raise (a raise spends the ramp window), higher
    # priorities first within each; jobs whose level does not change are not moves.
    from types import SimpleNamespace

    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build
    from cortex.sim.power import PowerConfig, PowerRuntime

    pw = PowerRuntime.build(build(load_fleet_spec("tiny")), PowerConfig("full"), 86400.0)
    now = {1: 2, 2: 2, 3: 0, 4: 3, 5: 1, 6: 4}  # job -> its level now
    prio = {1: 10, 2: 30, 3: 20, 4: 40, 5: 5, 6: 50}
    pw.jobs = {j: SimpleNamespace(level=lv, seq=j) for j, lv in now.items()}  # type: ignore[misc]
    running = {j: SimpleNamespace(priority=p) for j, p in prio.items()}
    plan = {1: 0, 2: 1, 3: 3, 4: 3, 5: 4, 6: 5}
    moves = pw.cap_moves(plan, running)  # type: ignore[arg-type]
    # lowers (level index up): 3 (prio 20), 5 (5), 6 (50); raises: 1 (10), 2 (30); 4 stays
    assert moves == [(6, 5), (3, 3), (5, 4), (2, 1), (1, 0)]


@pytest.mark.parametrize("seed", range(6))
def test_a_solves_moves_are_in_start_order_whatever_order_the_plan_lists_them(seed: int) -> None:
    # The kept solve lists a plan's levels class by class; cap_moves must give the moves in the
    # order the plain rule gives them over the plan in start order (the books' order): lowers,
    # then raises, higher priorities first, and within those the earlier start first.

    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build
    from cortex.sim.power import PowerRuntime

    rng = random.Random(seed)
    pw = PowerRuntime.build(build(load_fleet_spec("tiny")), PowerConfig("full"), 86400.0)
    ids = rng.sample(range(1000), 80)  # in start order
    pw.jobs = {  # type: ignore[misc]
        j: SimpleNamespace(level=rng.randrange(9), seq=k + 1) for k, j in enumerate(ids)
    }
    running = {j: SimpleNamespace(priority=rng.choice([1, 10, 100])) for j in ids}
    plan = {j: rng.randrange(9) for j in ids}
    want = [(j, plan[j]) for j in ids if pw.jobs[j].level != plan[j]]
    want.sort(key=lambda m: (m[1] < pw.jobs[m[0]].level, -running[m[0]].priority))
    listed = dict(rng.sample(list(plan.items()), len(plan)))
    assert pw.cap_moves(listed, running) == want  # type: ignore[arg-type]
    assert pw.cap_moves(plan, running) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(4))
def test_a_level_move_reads_the_ladder_its_run_started_on(seed: int) -> None:
    # relevel (and the twin's raise step) read the ladder a run kept at its start instead of
    # asking `ladder` again: after random starts on racks of different node caps, stops and
    # moves, every running job's draw, increment and throughput kept are ladder()'s at its level.
    from test_kept_class_sums import FLEET, KINDS

    from cortex.sim.power import PowerRuntime
    from cortex.workload.job import Job

    rng = random.Random(seed)
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=30.0), 86400.0)
    running: dict[int, Job] = {}
    for i in range(300):
        op = rng.random()
        if op < 0.45 or len(running) < 3:
            nodes = rng.sample(range(16), rng.randint(1, 3))
            placement = tuple((n, rng.choice([8, 8, 4])) for n in nodes)
            gang = sum(k for _, k in placement)
            job = Job(1000 + i, "j", "a", gang, 3600.0, kind=rng.choice(KINDS))
            job.run_flavor, job.run_gpus = 0, gang
            pw.start(job, 0, gang, placement, rng.randrange(len(pw.levels)), 10.0 * i)
            running[job.id] = job
        elif op < 0.65:
            pw.stop(running.pop(rng.choice(list(running))).id)
        else:
            pw.relevel(running[rng.choice(list(running))], rng.randrange(len(pw.levels)))
        for job in running.values():
            jp = pw.jobs[job.id]
            per, inc, kept = pw.ladder(job, 0, job.run_gpus, jp.node_cap_w)
            assert jp.lad == (per, inc, kept)
            lv = jp.level
            assert (jp.per_gpu_w, jp.inc_w, jp.kept) == (per[lv], inc[lv], kept[lv])
