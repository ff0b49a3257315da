"""cortex/gcscope.py for the making of a workload's jobs: young objects collected rarely while
the Jobs are built, nothing frozen (the twin's run freezes them later, with the fleet), the
caller's settings back afterwards; and the same jobs either way."""

from __future__ import annotations

import gc

import pytest

from cortex.gcscope import GC_YOUNG_THRESHOLD, collector_scope
from cortex.workload import synthetic
from cortex.workload.job import Job


def _fields(jobs: list[Job]) -> list[tuple]:
    return [
        (j.id, j.name, j.team, j.gpus, j.work_s, j.priority_class, j.flavors, j.kind,
         j.submit_s, j.ckpt_write_s, j.done_s, j.warm)
        for j in jobs
    ]  # fmt: skip


def test_jobs_are_built_with_young_collections_rare_and_nothing_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int]] = []

    class Spy(Job):
        __slots__ = ()

        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(synthetic, "Job", Spy)
    jobs = synthetic.generate(days=2, seed=3, fleet_gpus=8192, warm=True)
    assert len(seen) == len(jobs) > 300
    assert set(seen) == {(max(before[0], GC_YOUNG_THRESHOLD), 0)}
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_the_jobs_do_not_depend_on_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _fields(synthetic.generate(days=2, seed=3, fleet_gpus=8192, warm=True))
    gc.disable()
    try:
        want = _fields(synthetic.generate(days=2, seed=3, fleet_gpus=8192, warm=True))
    finally:
        gc.enable()
    assert got == want


def test_a_scope_that_does_not_freeze_inside_one_that_does() -> None:
    """A workload made in one thread while a run goes on in another: the inner scope changes
    nothing and leaves the run's frozen heap frozen."""
    before = gc.get_threshold()
    run, make = collector_scope(freeze=True), collector_scope(freeze=False)
    run.__enter__()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    make.__enter__()
    make.__exit__(None, None, None)
    assert gc.get_freeze_count() == frozen
    assert gc.get_threshold()[0] == max(before[0], GC_YOUNG_THRESHOLD)
    run.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_freezes_nest_and_add_up_and_all_thaw_when_the_last_scope_is_out() -> None:
    """A freezing scope inside one that does not freeze (a command's scope around a run)
    freezes; a second freeze adds what was built since; the threshold stays raised and the
    heap frozen until the last scope is out, which puts back both."""
    before = gc.get_threshold()
    rare = max(before[0], GC_YOUNG_THRESHOLD)
    outer, first, second = (collector_scope(freeze=f) for f in (False, True, True))
    outer.__enter__()
    assert gc.get_freeze_count() == 0
    first.__enter__()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    built = [[i] for i in range(1000)]  # new containers, tracked by the collector
    second.__enter__()
    assert gc.get_freeze_count() >= frozen + len(built)
    second.__exit__(None, None, None)
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == rare and gc.get_freeze_count() >= frozen + len(built)
    outer.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_cortex_sim_builds_with_young_collections_rare_and_runs_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`cortex sim`: the command's modules imported, the workload and the twin built with young
    collections rare and nothing frozen; the events seeded with the built heap frozen (a young
    collection there walked all of it: ~45 ms a month); the run with the seeded events frozen
    too; the threshold never back to CPython's between the build and the report; the caller's
    settings back at the end."""
    import importlib

    from typer.testing import CliRunner

    import cortex.cli.main as climain
    import cortex.cli.sim as clisim

    seen: dict[str, tuple[int, int]] = {}

    def state() -> tuple[int, int]:
        return gc.get_threshold()[0], gc.get_freeze_count()

    real_import, real_workload = importlib.import_module, clisim._workload

    def import_module(name: str) -> object:
        seen.setdefault("import", state())
        return real_import(name)

    def workload(*args: object) -> object:
        seen["workload"] = state()
        return real_workload(*args)  # type: ignore[arg-type]

    class Spy(clisim.Twin):
        def __init__(self, *args: object) -> None:
            seen["init"] = state()
            super().__init__(*args)  # type: ignore[arg-type]

        def _seed_events(self) -> None:
            seen["seed"] = state()
            super()._seed_events()

        def _instant_over(self) -> None:
            seen.setdefault("run", state())
            super()._instant_over()

    real_report = clisim.build_report

    def build_report(*args: object, **kwargs: object) -> object:
        seen["report"] = state()
        return real_report(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(clisim, "build_report", build_report)
    monkeypatch.setattr(climain.importlib, "import_module", import_module)
    monkeypatch.setattr(clisim, "_workload", workload)
    monkeypatch.setattr(clisim, "Twin", Spy)
    before = gc.get_threshold()
    res = CliRunner().invoke(
        climain.app, ["sim", "--fleet", "tiny", "--days", "0.2", "--quiet", "--load", "2"]
    )
    assert res.exit_code == 0, res.output
    rare = max(before[0], GC_YOUNG_THRESHOLD)
    assert {k: v for k, v in seen.items() if k not in ("seed", "run", "report")} == dict.fromkeys(
        ("import", "workload", "init"), (rare, 0)
    )
    assert seen["seed"][0] == rare and seen["seed"][1] > 0
    assert seen["run"][0] == rare and seen["run"][1] > seen["seed"][1]  # the seeded events too
    assert seen["report"][0] == rare and seen["report"][1] > 0  # still one scope, frozen
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
