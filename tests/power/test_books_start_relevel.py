"""The books' start, level move and stop (drive/power_jobs.py), cut for issue 11 (the ladder's
memo read in place, the increment kept in a local, the class books asked only where a policy
solves, a move's draw and increment updated in one loop over its halls; the class joined and
left in start and stop themselves, a stop reading the class and ladder key its start kept)
against their earlier form, kept here verbatim: the same sequence of starts (with and without
admission's shape, with the first wave filled by the start or after it), wave fills, level
moves and stops, staggered by a tight ramp, then every run stopped, must leave both books
equal, double for double, in every total, hall, job, class and window entry."""

from __future__ import annotations

import math
import random
from dataclasses import fields

import pytest
from test_kept_class_sums import FLEET, KINDS

import testkit
from cortex.drive import power_jobs
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.workload.job import Job


class _Plain(PowerRuntime):
    """The books' start, relevel, stop and class joins as main 725be00 wrote them (the joins
    as b224b0e's `_join` and `_leave`)."""

    def start(self, job, flavor, gang, placement, level, t, shape=None):  # type: ignore[override]
        # (no `fill`: the test fills the first wave after it, as the earlier twin did)
        node_hall = self.topo.node_hall
        if shape is None:
            shape = power_jobs.placement_shape(
                node_hall, self.node_max_cap_w, self.min_node_cap_w, placement
            )
        node_cap, held, shares = shape
        if len(shares) == 1:
            [(h0, k0)] = shares.items()
            halls = {h0: k0 / held}
        else:
            halls = {h: k / held for h, k in shares.items()}
        lad = self.ladder(job, flavor, gang, node_cap)
        per, inc, kept = lad
        key = (job.kind, flavor, job.priority, node_hall[placement[0][0]])
        self._seq += 1
        jp = power_jobs._JobPower(
            per[level], inc[level], 0.0, halls, kept[level], level, node_cap, key,
            gang=gang, seq=self._seq, lad=lad,
        )  # fmt: skip
        self.jobs[job.id] = jp
        self._join(job.id, jp)
        self.n_capped += level > 0
        self.inc_total_w += jp.inc_w
        for h, s in halls.items():
            self.hall_inc_w[h] += jp.inc_w * s
        limit = self.ramp_limit_it_w(t)
        waves = 1
        if jp.inc_w > limit:
            waves = math.ceil(jp.inc_w / limit)
            self.staggered += 1
        jp.waves = waves
        for i in range(waves):
            self.add_step(t + 60.0 * i, jp.inc_w / waves, now=t)
        return jp.kept, waves

    def _join(self, job_id, jp):
        if self.policy is None:
            return
        cls = self._classes.get(jp.key)
        if cls is None:
            cls = self._classes[jp.key] = power_jobs._Class(-1)
        cls.members[job_id] = None
        hs = jp.halls
        if len(hs) == 1 and hs.get(jp.key[3]) == 1.0:
            w = cls.whole
            lk = (jp.gang, jp.node_cap_w)
            w[lk] = w.get(lk, 0) + 1
        else:
            cls.split[job_id] = tuple(hs.items())
            cls.made = None

    def _leave(self, job_id, jp):
        if self.policy is None:
            return
        cls = self._classes[jp.key]
        del cls.members[job_id]
        if not cls.members:
            del self._classes[jp.key]
        elif cls.split.pop(job_id, None) is not None:
            cls.made = None
        else:
            w = cls.whole
            lk = (jp.gang, jp.node_cap_w)
            n = w[lk] - 1
            if n:
                w[lk] = n
            else:
                del w[lk]

    def stop(self, job_id):
        jp = self.jobs.pop(job_id)
        self._leave(job_id, jp)
        self.n_capped -= jp.level > 0
        self.inc_total_w -= jp.inc_w
        self.actual_total_w -= jp.actual_w
        for h, s in jp.halls.items():
            self.hall_inc_w[h] -= jp.inc_w * s
            self.hall_actual_w[h] -= jp.actual_w * s

    def relevel(self, job, level):
        jp = self.jobs[job.id]
        per, inc, kept = jp.lad
        d = inc[level] - jp.inc_w
        self.inc_total_w += d
        for h, s in jp.halls.items():
            self.hall_inc_w[h] += d * s
        self.n_capped += (level > 0) - (jp.level > 0)
        jp.per_gpu_w, jp.inc_w, jp.kept, jp.level = per[level], inc[level], kept[level], level
        self._set_actual(jp, jp.inc_w * jp.waves_done / jp.waves)
        return jp.kept


def _record(jp: power_jobs._JobPower) -> tuple:
    """A job's record but what only a start under a policy keeps for its stop (`_kept`)."""
    return tuple(getattr(jp, f.name) for f in fields(jp) if f.name not in ("cls", "wk"))


def _kept(pw: PowerRuntime) -> None:
    """What a start kept for its stop: its class, and its ladder's key there where the class
    counts it whole (every GPU in the class's hall); neither without a policy. And each class's
    level where all its members sit at one, as start and relevel mark it (cap_moves' skip of a
    class all at its plan's level)."""
    for jp in pw.jobs.values():
        if pw.policy is None:
            assert getattr(jp, "cls", None) is None and getattr(jp, "wk", None) is None
            continue
        assert jp.cls is pw._classes[jp.key]
        whole = len(jp.halls) == 1 and jp.halls.get(jp.key[3]) == 1.0
        assert jp.wk == ((jp.gang, jp.node_cap_w) if whole else None)
    for cls in pw._classes.values():  # a class's level, where marked, is each member's
        assert cls.lv == -1 or all(pw.jobs[j].level == cls.lv for j in cls.members)


def _books(pw: PowerRuntime) -> tuple:
    classes = {k: (list(c.members), dict(c.whole), dict(c.split)) for k, c in pw._classes.items()}
    return (
        pw.inc_total_w,
        pw.actual_total_w,
        list(pw.hall_inc_w),
        list(pw.hall_actual_w),
        pw.n_capped,
        pw.staggered,
        pw._seq,
        list(pw.window),
        {j: _record(jp) for j, jp in pw.jobs.items()},
        list(pw.jobs),
        classes,
    )


def _stop(new: PowerRuntime, old: _Plain, jid: int, seen: dict[str, int]) -> None:
    jp = new.jobs[jid]
    if jp.cls is not None:
        seen["class emptied"] += len(jp.cls.members) == 1
        seen["split left"] += jp.wk is None and len(jp.cls.members) > 1
        seen["ladder gone"] += jp.wk is not None and jp.cls.whole[jp.wk] == 1
    new.stop(jid)
    old.stop(jid)


@pytest.mark.parametrize("policy", ["full", "none"])
@pytest.mark.parametrize("seed", range(4))
def test_start_move_and_stop_book_what_their_earlier_form_booked(policy: str, seed: int) -> None:
    rng = random.Random(seed)
    # A ramp of 0.004 MW a minute staggers most starts into several waves.
    cfg = PowerConfig(policy, rack_cap_kw=30.0 if seed % 2 else None, ramp_limit_mw_per_min=0.004)
    new = PowerRuntime.build(FLEET, cfg, 86400.0)
    old = _Plain.build(FLEET, cfg, 86400.0)
    running: dict[int, Job] = {}
    seen = {"staggered": 0, "moved mid-fill": 0, "shaped": 0, "classes": 0}
    seen |= {"split": 0, "split left": 0, "class emptied": 0, "ladder gone": 0}
    seen |= {"filled at start": 0, "filled split": 0}
    t = 0.0
    for i in range(400):
        t += rng.choice([0.0, 5.0, 30.0, 61.0])
        op = rng.random()
        if op < 0.4 or len(running) < 3:
            nodes = rng.sample(range(16), rng.randint(1, 3))
            job, placement, gang = testkit.books_job(
                rng, 1000 + i, nodes, KINDS, priority_class=["preemptible", "normal", "production"]
            )
            job.run_flavor, job.run_gpus = 0, gang
            level = rng.randrange(len(new.levels))
            shape = new._shape_of(placement) if rng.random() < 0.5 else None
            seen["shaped"] += shape is not None
            # The twin's start books its first wave too (fill=True): the earlier form's fill
            # right after it (RESULTS §145).
            fill = rng.random() < 0.4
            got = new.start(job, 0, gang, placement, level, t, shape, fill)
            assert got == old.start(job, 0, gang, placement, level, t, shape)
            seen["staggered"] += got[1] > 1
            cls = new.jobs[job.id].cls
            if cls is not None and len(cls.members) == 1:  # a new class: marked at its level
                assert cls.lv == level
            seen["split"] += policy == "full" and new.jobs[job.id].wk is None
            running[job.id] = job
            if fill:
                old.fill(job.id)
                seen["filled at start"] += 1
                seen["filled split"] += len(new.jobs[job.id].halls) > 1
            elif rng.random() < 0.7:
                new.fill(job.id)
                old.fill(job.id)
        elif op < 0.6:
            jid = rng.choice(list(running))
            new.fill(jid)
            old.fill(jid)
        elif op < 0.75:
            _stop(new, old, running.pop(rng.choice(list(running))).id, seen)
        else:
            job = running[rng.choice(list(running))]
            jp = new.jobs[job.id]
            seen["moved mid-fill"] += jp.waves_done < jp.waves
            level = rng.randrange(len(new.levels))
            assert new.relevel(job, level) == old.relevel(job, level)
        seen["classes"] += len(new._classes)
        assert _books(new) == _books(old)
        _kept(new)
    for jid in rng.sample(list(running), len(running)):  # every run stops: each class empties
        _stop(new, old, jid, seen)
        assert _books(new) == _books(old)
        _kept(new)
    assert not new._classes and not new.jobs
    assert seen["staggered"] > 20 and seen["moved mid-fill"] > 10 and seen["shaped"] > 50
    assert seen["filled at start"] > 30 and seen["filled split"] > 5
    assert (seen["classes"] > 0) == (policy == "full")
    if policy == "full":  # each way a stop leaves its class
        assert seen["split left"] > 5 and seen["class emptied"] > 5 and seen["ladder gone"] > 5
        assert seen["split"] > 10
