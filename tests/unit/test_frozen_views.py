"""The scheduler's views are read-only (tests/frozen_views.py): short twin runs of every profile
and power policy assign no field of a Snapshot, Start, Allocation, PowerView, Grant or CapJob
after building it, and the guard that says so does catch a write made through the driver.

(The control plane's cycle under the same guard: tests/control/test_frozen_views_loop.py.)"""

from __future__ import annotations

import dataclasses
import os

import pytest

from cortex.fleet.topology import Topology
from cortex.scheduler.cap_solver import CapJob
from cortex.scheduler.capacity import Allocation
from cortex.scheduler.cycle import Policies
from cortex.scheduler.power import Grant, PowerView
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Snapshot, Start
from cortex.sim.power import PowerConfig
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from frozen_views import GUARDED, ViewWriteError, WritesSnapshot
from testkit import MIXED, TINY

DAYS = 0.5
# Site caps between the idle and the busy fleet's facility draw (tiny: ~41 and ~80 kW, see
# tests/power; mixed: ~108 kW idle): admission caps starts, the solver re-levels and pauses.
TIGHT_MW = {TINY.name: 0.06, MIXED.name: 0.15}


def _views() -> list[object]:
    job = Job(1, "j", "a", 8, 100.0)
    place = ((0, 8),)
    return [
        Snapshot(0.0, None, None, None, None),
        Start(job, 0, place, 8, 8),
        Allocation(0, place, 8),
        PowerView(0.0, [0.0], (1.0,), 0, lambda k, f: 0.0, [0.0], [0.0], [0], [0.0]),
        Grant(0, 1.0, {0: 1.0}),
        CapJob(1, ("a", 0, 0, 0), 0, 0.0, 8, 1.0, (1.0,), (1.0,), ((0, 1.0),)),
    ]


def test_every_view_class_is_listed() -> None:
    assert {type(v) for v in _views()} == set(GUARDED)


@pytest.mark.usefixtures("frozen_views")
@pytest.mark.parametrize("view", _views(), ids=lambda v: type(v).__name__)
def test_the_guard_refuses_a_reassignment_and_allows_construction(view: object) -> None:
    allowed = GUARDED[type(view)]  # the first field a driver may not write
    name = next(f.name for f in dataclasses.fields(view) if f.name not in allowed)  # type: ignore[arg-type]
    with pytest.raises(ViewWriteError, match=rf"{type(view).__name__}\.{name} re-assigned"):
        setattr(view, name, getattr(view, name))
    with pytest.raises(ViewWriteError, match="deleted"):
        delattr(view, name)
    copy = dataclasses.replace(view)  # type: ignore[type-var]
    assert copy == view


def _jobs() -> list[Job]:
    """More work than the fleet holds, in gangs of 1-32 GPUs, three priority classes and power
    kinds, an elastic job each hour: queues, backfill, preemptions, caps and pauses."""
    jobs = []
    for i in range(60):
        jobs.append(
            Job(
                i,
                f"j{i}",
                ("research", "fsd")[i % 2],
                (1, 2, 4, 8, 16, 32)[i % 6],
                (1 + i % 5) * 3600.0,
                priority_class=("normal", "preemptible", "production")[i % 3],
                kind=("llm", "fsd-video", "optimus-policy")[i % 3],
                submit_s=i * 600.0,
                ckpt_write_s=30.0,
                elastic_min=8 if i % 12 == 5 else None,
            )
        )
    return jobs


def _run(topo: Topology, profile: str | Policies, power: str | None) -> Twin:
    pc = (
        None
        if power is None
        else PowerConfig(power, site_cap_mw=TIGHT_MW[topo.name], temperature_c=30.0)
    )
    cfg = SimConfig(
        days=DAYS,
        seed=1,
        failures=True,
        policy=profile if isinstance(profile, str) else "priority",
        policies=None if isinstance(profile, str) else profile,
        power=pc,
    )
    return Twin(topo, _jobs(), cfg).run()


@pytest.mark.usefixtures("frozen_views")
@pytest.mark.parametrize("power", [None, "none", "admit", "cap", "full"])
@pytest.mark.parametrize("profile", ["fifo", "priority", "las", "hetero"])
def test_the_twin_writes_no_view(profile: str, power: str | None) -> None:
    tw = _run(TINY, profile, power)
    assert tw.metrics.cycles > 0
    if power in ("cap", "full"):
        assert tw.pw is not None and tw.pw.n_capped + tw.pw.paused > 0  # the power paths ran


@pytest.mark.usefixtures("frozen_views")
@pytest.mark.parametrize("power", [None, "cap"])
def test_the_hetero_twin_on_two_flavors_writes_no_view(power: str | None) -> None:
    tw = _run(MIXED, "hetero", power)
    assert tw._allocation.solves > 0  # the allocation LP ran: its Snapshot copy was built
    if power is not None:
        assert tw.pw is not None and tw.pw.n_capped + tw.pw.paused > 0


def _wrong() -> Policies:
    pol = policies("priority")
    return dataclasses.replace(pol, ordering=WritesSnapshot(pol.ordering))


@pytest.mark.usefixtures("frozen_views")
def test_a_policy_that_writes_the_snapshot_fails_the_guarded_twin() -> None:
    with pytest.raises(ViewWriteError, match=r"Snapshot\.now_s"):
        _run(TINY, _wrong(), None)


@pytest.mark.skipif(bool(os.environ.get("CORTEX_FROZEN_VIEWS")), reason="guarded everywhere")
def test_the_same_wrong_policy_runs_unguarded() -> None:
    # The guard is what fails it: without it the no-op write goes unseen.
    _run(TINY, _wrong(), None)


class _WritesTarget:
    """A wrong power policy: `inner`'s admission, after writing a solver level back into the
    view's `target` (the driver's own dict; a no-op write, still a write)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.writes = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def admit(self, view: PowerView, *args: object, **kw: object) -> object:
        for key, level in list(view.target.items())[:1]:
            self.writes += 1
            view.target[key] = level  # type: ignore[index]
        return self.inner.admit(view, *args, **kw)  # type: ignore[attr-defined]


def _run_writing_target() -> _WritesTarget:
    pc = PowerConfig("full", site_cap_mw=TIGHT_MW[TINY.name], temperature_c=30.0)
    tw = Twin(TINY, _jobs(), SimConfig(days=DAYS, seed=1, failures=True, power=pc))
    wrong = _WritesTarget(tw.pol.power)
    tw.pol = dataclasses.replace(tw.pol, power=wrong)  # type: ignore[arg-type]
    tw.run()
    return wrong


@pytest.mark.usefixtures("frozen_views")
def test_a_power_policy_that_writes_the_solver_targets_fails_the_guarded_twin() -> None:
    with pytest.raises(TypeError, match="does not support item assignment"):
        _run_writing_target()


@pytest.mark.skipif(bool(os.environ.get("CORTEX_FROZEN_VIEWS")), reason="guarded everywhere")
def test_the_same_target_write_runs_unguarded() -> None:
    assert _run_writing_target().writes > 0  # it did write: only the guard sees it


@pytest.mark.usefixtures("frozen_views")
def test_the_guarded_view_reads_the_drivers_later_writes() -> None:
    target: dict = {("a", 0, 0, 0): 1}
    halls = [5.0, 6.0]
    view = PowerView(0.0, halls, (1.0,), 0, lambda k, f: 0.0, [0.0], [0.0], [0], [0.0], target)
    with pytest.raises(TypeError):
        view.hall_headroom_w[0] = 1.0  # type: ignore[index]
    target[("b", 0, 0, 0)] = 2  # the driver's books move on: the view is live, not a copy
    halls[1] = 7.0
    assert view.target[("b", 0, 0, 0)] == 2 and list(view.hall_headroom_w) == [5.0, 7.0]
    assert view.hall_headroom_w[1:] == [7.0]
