"""A level move's rate change (sim/runs.py RunBooks._set_rate) keeps the run's progress and moves
its end: it reads `_end_time`'s sum from the values it has just set rather than calling it. Its
books must be what main's version (kept here verbatim) leaves: the same progress, clock mark,
rate, end (clamped to now), epoch, FINISH push and ends entry, on a heat-slowed clock."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from sortedcontainers import SortedList

from cortex.sim.engine import FINISH
from cortex.sim.runs import RunBooks


@dataclass
class _Job:
    id: int
    run_flavor: int
    alloc_gpus: int
    run_dur_s: float
    run_vacc: float
    run_vmark: float
    run_k: float
    est_end_s: float
    epoch: int


class _Engine:
    def __init__(self) -> None:
        self.pushed: list[tuple] = []
        self.parked: dict[object, tuple] = {}
        self.parks = 0

    def push(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        self.pushed.append((t, prio, kind, a, b))

    def park(self, owner: object, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        # A later end parked behind the run's entry on the heap (RESULTS section 134): the
        # same entry, with the sequence a push now would take; main pushed it.
        self.parks += 1
        self.parked[owner] = (t, prio, kind, a, b)
        self.pushed.append((t, prio, kind, a, b))


class _State:
    def __init__(self, ends: list[SortedList]) -> None:
        self.ends = ends


class _Books(RunBooks):
    def __init__(self, now: float, clock_v: list[float], clock_k: list[float]) -> None:
        self.now = now
        self._clock_v, self._clock_k, self._clock_tick = clock_v, clock_k, 900.0
        self.engine = _Engine()  # type: ignore[assignment]
        self.state = _State([SortedList(), SortedList()])  # type: ignore[assignment]
        self._fin_last: dict[int, tuple[float, int]] = {}

    def set_rate_main(self, job: _Job, k: float, clock: float | None, moved: list | None) -> None:
        """Main's (6059b23) _set_rate, verbatim."""
        if clock is None:
            clock = self._clock(self.now)
        # _run_elapsed's sum, with the clock read once
        job.run_vacc = job.run_vacc + job.run_k * (clock - job.run_vmark)
        job.run_vmark = clock
        job.run_k = k
        was = (job.est_end_s, job.id, job.alloc_gpus)
        job.est_end_s = self._end_time(job)  # type: ignore[arg-type]
        if moved is None:
            ends = self.state.ends[job.run_flavor]
            ends.remove(was)
            ends.add((job.est_end_s, job.id, job.alloc_gpus))
        else:
            moved.append((job.run_flavor, was, (job.est_end_s, job.id, job.alloc_gpus)))
        job.epoch += 1
        self.engine.push(job.est_end_s, FINISH, FINISH, job, job.epoch)


def _world(seed: int, heat: bool) -> tuple[_Books, _Books, list[_Job], list[_Job]]:
    rng = random.Random(seed)
    ks = [rng.choice([1.0, 0.97, 0.9, 0.75]) if heat else 1.0 for _ in range(200)]
    cv: list[float] = []
    v = 0.0
    for k in ks:
        cv.append(v)
        v += k * 900.0
    now = rng.uniform(1e4, 1.5e5)
    books = [_Books(now, list(cv) if heat else [], list(ks) if heat else []) for _ in range(2)]
    jobs: list[list[_Job]] = [[], []]
    for i in range(60):
        dur = rng.uniform(10.0, 2e5)
        vacc = rng.uniform(0.0, dur * 1.2)  # some past their work: the end clamps to now
        mark = rng.uniform(0.0, now)
        k = rng.choice([1.0, 0.93, 0.8, 0.6])
        end = rng.uniform(now, now + 1e5)
        for side in (0, 1):
            j = _Job(i, i % 2, rng.choice([1, 8]) if side == 0 else jobs[0][-1].alloc_gpus,
                     dur, vacc, mark, k, end, i)  # fmt: skip
            jobs[side].append(j)
            books[side].state.ends[j.run_flavor].add((j.est_end_s, j.id, j.alloc_gpus))
    return books[0], books[1], jobs[0], jobs[1]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("heat", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_a_rate_change_leaves_main_books(seed: int, heat: bool, batched: bool) -> None:
    new, old, new_jobs, old_jobs = _world(seed, heat)
    rng = random.Random(seed + 100)
    moved_new: list | None = [] if batched else None
    moved_old: list | None = [] if batched else None
    clock = None if seed % 2 else new._clock(new.now)
    for jn, jo in zip(new_jobs, old_jobs, strict=True):
        k = rng.choice([1.0, 0.95, 0.85, 0.7, 0.55])
        new._set_rate(jn, k, clock, moved_new)  # type: ignore[arg-type]
        old.set_rate_main(jo, k, clock, moved_old)
        assert jn == jo
    assert new.engine.pushed == old.engine.pushed  # type: ignore[attr-defined]
    assert new.engine.parks > 0  # type: ignore[attr-defined]
    assert moved_new == moved_old
    assert [list(e) for e in new.state.ends] == [list(e) for e in old.state.ends]
    # the clamp to now is reached
    assert any(p[0] == new.now for p in new.engine.pushed)  # type: ignore[attr-defined]
