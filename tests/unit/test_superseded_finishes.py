"""The twin's superseded finishes (bench/RESULTS.md section 134): a finish entry whose run has
moved its end (a cap move) or stopped is dropped by the engine, unhandled and uncounted. The
same workloads with an engine that hands every finish to a `_finish` that tests it itself (the
twin before) give the same reports, job books and metrics but `events`, lower by exactly the
finishes that `_finish` found stale, which `superseded` counts."""

from __future__ import annotations

import json
import random

import pytest

import cortex.sim.twin as twin_mod
from cortex.sim.power import CapEvent, PowerConfig
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.states import JobState
from testkit import TINY


class _Handed(Twin):
    """The twin as it was: every finish handled, the stale ones returning at once."""

    stale = 0

    def _finish(self, job: Job, epoch: int) -> None:
        if job.epoch != epoch or job.state is not JobState.RUNNING:
            self.stale += 1
            return
        super()._finish(job, epoch)


_FIELDS = ("state", "run_start_s", "est_end_s", "epoch", "restarts", "end_s", "done_s")


def _run(cls: type[Twin], cfg: SimConfig, seed: int) -> tuple[Twin, dict, list[tuple]]:
    rng = random.Random(seed)
    jobs = [
        Job(
            i, f"j{i}", rng.choice("ab"), rng.choice([1, 2, 4, 8, 16, 32, 64]),
            rng.uniform(0.2, 10.0) * 3600.0, priority_class=rng.choice(["normal", "production"]),
            kind="llm", submit_s=rng.uniform(0.0, cfg.days * 86400.0 * 0.8),
            ckpt_write_s=rng.choice([None, 60.0]),
        )
        for i in range(200)
    ]  # fmt: skip
    jobs.sort(key=lambda j: j.submit_s)
    tw = cls(TINY, jobs, cfg).run()
    report = build_report(tw)
    m = tw.metrics
    raw = (m.alloc_gpu_s, m.energy_j, m.queue_bins.tolist(), m.energy_bins.tolist())
    return tw, report, [tuple(getattr(j, k) for k in _FIELDS) for j in jobs] + [raw]


POWER = {
    "none": None,
    "cap": PowerConfig("full", site_cap_mw=0.07, temperature_c=20.0),
    "event": PowerConfig(
        "full", site_cap_mw=1.0, temperature_c=20.0, cap_events=(CapEvent(40000.0, 21600.0, 0.05),)
    ),
}


@pytest.mark.parametrize("power", sorted(POWER))
@pytest.mark.parametrize("seed", range(2))
def test_superseded_finishes_change_only_the_event_count(
    power: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = SimConfig(days=1.5, seed=seed, power=POWER[power], failure_scale=40.0)
    tw, got, got_books = _run(Twin, cfg, seed)
    with monkeypatch.context() as mp:
        mp.setattr(twin_mod, "_finish_stands", lambda job, epoch: True)  # the engine hands all
        old, want, want_books = _run(_Handed, cfg, seed)
    assert isinstance(old, _Handed)
    assert old.superseded == 0
    assert tw.superseded == old.stale > 0
    assert got.pop("events") + tw.superseded == want.pop("events")
    assert got.pop("timing")["superseded_finishes"] == tw.superseded
    for r in (got, want):
        r.pop("wall_s")
        r.pop("timing", None)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    # The books before the report's rounding: the metrics' float sums are split at fewer
    # instants, so they may round otherwise in the last bits.
    assert got_books[:-1] == want_books[:-1]
    for x, y in zip(got_books[-1], want_books[-1], strict=True):
        assert x == pytest.approx(y, rel=1e-12)
