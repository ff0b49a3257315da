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
