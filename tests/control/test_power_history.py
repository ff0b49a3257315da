"""The per-job draw history (control/power_history.py): points merge in pairs when full, so
memory stays bounded and the whole run stays in view; gaps where a job drew nothing; the
ended jobs kept are bounded; measured draw only where every GPU answers."""

from __future__ import annotations

import pytest

from cortex.control import power_history as ph
from cortex.control.power_history import DrawHistory, job_draws


def _feed(h: DrawHistory, samples: list[tuple[float, dict[int, float]]]) -> None:
    for now, draws in samples:
        h.sample(now, [(j, w, False) for j, w in draws.items()])


def test_full_points_merge_in_pairs_and_the_step_doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_POINTS 4, a sample every 15 s of 100, 200, ... W. The 5th sample closes the 4th
    point: (0,100) (15,200) (30,300) (45,400) merge to (0,150) (30,350), step 30. Then 500 at
    60 and 600 at 75 share a 30 s point (mean 550), closed by 700 at 90, still open."""
    monkeypatch.setattr(ph, "MAX_POINTS", 4)
    h = DrawHistory()
    _feed(h, [(15.0 * i, {1: 100.0 * (i + 1)}) for i in range(7)])
    got = h.series(1, 100)
    assert got is not None and got.running
    assert got.step_s == 30.0
    assert got.t == [0.0, 30.0, 60.0, 90.0]
    assert got.watts == [150.0, 350.0, 550.0, 700.0]


def test_a_long_run_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 samples of one job never hold more than MAX_POINTS (+1 open) points."""
    monkeypatch.setattr(ph, "MAX_POINTS", 64)
    h = DrawHistory()
    for i in range(10_000):
        h.sample(15.0 * i, [(7, 1.0, True)])
    got = h.series(7, 2000)
    assert got is not None and len(got.t) <= 65
    assert got.t[0] == 0.0  # the start of the run is still in view
    assert all(got.measured)


def test_a_job_that_stops_drawing_leaves_a_gap_and_keeps_its_series() -> None:
    """Drawing at 0 and 15, not at 30 (preempted), again at 90: 90 - 15 = 75 s > 2.5 x 15, so
    a None sits between them at (15 + 90) / 2 = 52.5."""
    h = DrawHistory()
    _feed(h, [(0.0, {3: 10.0}), (15.0, {3: 20.0}), (30.0, {})])
    got = h.series(3, 100)
    assert got is not None and not got.running
    assert got.watts == [10.0, 20.0]
    _feed(h, [(90.0, {3: 40.0})])
    got = h.series(3, 100)
    assert got is not None and got.running
    assert got.t == [0.0, 15.0, 52.5, 90.0]
    assert got.watts == [10.0, 20.0, None, 40.0]
    assert got.measured == [False, False, None, False]


def test_ended_jobs_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ph, "MAX_ENDED", 2)
    h = DrawHistory()
    _feed(h, [(0.0, {1: 1.0, 2: 1.0, 3: 1.0}), (15.0, {})])  # all three end together
    assert len(h) == 2
    assert h.series(1, 10) is None  # the oldest ended (first inserted) is dropped
    assert h.series(3, 10) is not None
    assert h.series(99, 10) is None  # never seen


def test_points_asked_thin_by_means() -> None:
    """10 points of 0..9 W, 4 asked: groups of ceil(10 / 4) = 3: means 1, 4, 7, 9; step x 3."""
    h = DrawHistory()
    _feed(h, [(15.0 * i, {1: float(i)}) for i in range(10)])
    got = h.series(1, 4)
    assert got is not None
    assert got.watts == [1.0, 4.0, 7.0, 9.0]
    assert got.t == [0.0, 45.0, 90.0, 135.0]
    assert got.step_s == 45.0


def test_measured_only_where_every_gpu_answers() -> None:
    reads = {0: 300.0, 1: 310.0, 2: None}
    got = job_draws([(1, 999.0, (0, 1)), (2, 555.0, (1, 2)), (3, 50.0, ())], reads.get)
    # job 1: 300 + 310 measured; job 2: GPU 2 unreadable: its modelled 555; job 3 not launched.
    assert got == [(1, 610.0, True), (2, 555.0, False)]
    assert job_draws([(1, 999.0, (0,))], None) == [(1, 999.0, False)]
