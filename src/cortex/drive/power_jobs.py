"""The power books' per-job part, shared by both drivers: each running job's draw, cap level
and IT increment, its ladder of cap levels, and the shares of the site and hall budgets it holds.

A mixin of PowerBooks (drive/power_books.py), split out so that budgets stay apart from the
per-job books; it reads the books' fields and keeps no state of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from operator import add, sub
from typing import TYPE_CHECKING, cast

from cortex.power.curve import draw_fractions
from cortex.scheduler.cap_solver import (
    W_UNIT,
    CapClass,
    CapJob,
    CapPlan,
    ClassKey,
    cap_classes,
    class_steps,
    floor_sums,
    hall_ladder,
    quantize,
    raise_classes,
    solve_caps,
)
from cortex.scheduler.power import PowerPolicy, Shape, placement_shape
from cortex.workload.calibration import CalibrationTable
from cortex.workload.job import Job

if TYPE_CHECKING:
    from cortex.fleet.topology import Topology
    from cortex.power.curve import CapCurve
    from cortex.scheduler.state import Placement


@dataclass
class _JobPower:
    per_gpu_w: float  # mean draw per GPU in this run (capped or not)
    inc_w: float  # budgeted IT increment over idle
    actual_w: float  # increment already drawing (a staggered start fills in by waves)
    halls: dict[int, float]
    kept: float  # throughput kept at this cap, relative to uncapped
    level: int
    node_cap_w: float
    key: ClassKey
    waves: int = 1  # a staggered start draws in `waves` equal steps a minute apart
    waves_done: int = 0
    capjob: CapJob | None = None
    gang: int = 0
    seq: int = 0  # the books' count of starts when it started: the order of self.jobs
    # Its run's ladder (per-GPU draw, IT increment, throughput kept per level): `ladder`'s
    # answer for its flavor, gang and node cap, which a run keeps; read at each level move.
    lad: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]] = ((), (), ())
    # Under a policy, its class and (wholly in the class's hall) its ladder's key there, else
    # None, as its start found them (its stop reads them back). Set by that start alone, not by
    # __init__ (a start without a policy pays nothing), and read only under a policy: unset,
    # each reads as the class default None, which a compiled build (cortex.compile) lacks.
    cls: _Class | None = field(default=None, init=False, repr=False, compare=False)
    wk: tuple[int, float] | None = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class _Class:
    """A class's members as the solver reads them, kept as they start and stop: most lie wholly
    in the class's hall and are counted per ladder (gang, node cap); the rest by id."""

    lv: int  # the level all its members sit at, else -1 (power_moves.py kept_moves reads it)
    members: dict[int, None] = field(default_factory=dict)  # in start order
    whole: dict[tuple[int, float], int] = field(default_factory=dict)  # no zero counts
    split: dict[int, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    # The sums as a solve last read them (kept_classes): [gain, ladder sums, hall sums in hall
    # order, steps, `whole` then], and after them what kept_classes last made of them; the next
    # solve adds the ladders whose counts moved since. None: made anew (split member; new class).
    made: list | None = None


class JobPowerBooks:
    """Per-job draw, caps and budget shares (see PowerBooks for the fields)."""

    topo: Topology
    curve: CapCurve
    levels: tuple[float, ...]
    jobs: dict[int, _JobPower]
    inc_total_w: float
    actual_total_w: float
    hall_inc_w: list[float]
    hall_actual_w: list[float]
    n_capped: int
    min_node_cap_w: float
    node_max_cap_w: list[float]
    staggered: int
    _ladders: dict
    _per_cache: dict
    _draw_cache: dict
    _classes: dict[ClassKey, _Class]
    _qcache: dict
    _seq: int
    policy: PowerPolicy | None  # None: power is modelled, never managed (no solve reads classes)

    def ramp_limit_it_w(self, t: float) -> float:
        raise NotImplementedError

    def add_step(self, t: float, it_w: float, now: float | None = None) -> None:
        raise NotImplementedError

    def draw_w(self, kind: str, flavor: int) -> float:
        """Mean training draw per GPU: measured by `cortex.training.calibrate` where the
        calibration table has the kind on this flavor (workload/data/calibration.csv), else the
        kind's fraction of TDP (power/data/draw_by_kind.csv)."""
        key = (kind, flavor)
        got = self._draw_cache.get(key)
        if got is None:
            acc = self.topo.accelerators[flavor]
            row = CalibrationTable.load().get(kind, acc.name)
            if row is not None and row.gpu_power_w and row.confidence in ("M", "D"):
                got = min(row.gpu_power_w, acc.tdp_w)
            else:
                fr = draw_fractions()
                got = fr.get(kind, fr["generic"]) * acc.tdp_w
            self._draw_cache[key] = got
        return got

    def kept(self, flavor: int, cap_w: float, draw_w: float) -> float:
        """Throughput kept at a per-GPU cap, relative to the uncapped run (whose own peaks TDP
        already clips: a cap at TDP keeps exactly 1)."""
        if draw_w <= 0:  # a device that draws nothing in the catalog (a CPU slot) loses nothing
            return 1.0
        acc = self.topo.accelerators[flavor]
        name = acc.name
        cap = min(cap_w, acc.tdp_w)
        return self.curve.kept(name, cap / draw_w) / self.curve.kept(name, acc.tdp_w / draw_w)

    def ladder(
        self, job: Job, flavor: int, gang: int, node_cap_w: float
    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """Per level: per-GPU draw, IT increment, throughput kept (cached: few distinct keys)."""
        return self.ladder_of(job.kind, flavor, gang, node_cap_w)

    def ladder_of(
        self, kind: str, flavor: int, gang: int, node_cap_w: float
    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """`ladder` by the job's kind, the only part of a job a ladder reads."""
        key = (kind, flavor, gang, node_cap_w)
        got = self._ladders.get(key)
        if got is None:
            got = self._ladders[key] = self._ladder(kind, flavor, gang, node_cap_w)
        return got

    def _ladder(
        self, kind: str, flavor: int, gang: int, node_cap_w: float
    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        tdp = self.topo.accelerators[flavor].tdp_w
        idle = self.topo.accelerators[flavor].idle_w
        draw = self.draw_w(kind, flavor)
        caps = [min(lv * tdp, node_cap_w) for lv in self.levels]
        per = [min(c, draw) for c in caps]
        kept = [self.kept(flavor, c, draw) for c in caps]
        _concave(per, kept)
        inc = tuple(gang * (p - idle) for p in per)
        return tuple(per), inc, tuple(kept)

    def _ladder_w(self, kind: str, flavor: int, level: int, node_cap_w: float) -> float:
        """Per-GPU draw at a level (PowerView.ladder_w: every admission try, ~112k a month
        under `full`). Kept by kind, then flavor, then node cap, each a dict of its own: three
        look-ups of cheap keys (a kind's hash is kept by its string) cost less than making a
        tuple key and hashing it at every call."""
        try:
            return self._per_cache[kind][flavor][node_cap_w][level]
        except KeyError:
            per = self._ladder(kind, flavor, 1, node_cap_w)[0]
            self._per_cache.setdefault(kind, {}).setdefault(flavor, {})[node_cap_w] = per
            return per[level]

    def _inc_of(self, job_id: int) -> tuple[float, dict[int, float]]:
        """A running job's IT increment, site-wide and per hall."""
        jp = self.jobs.get(job_id)
        if jp is None:
            return 0.0, {}
        return jp.inc_w, {h: jp.inc_w * s for h, s in jp.halls.items()}

    def start(
        self,
        job: Job,
        flavor: int,
        gang: int,
        placement: Placement,
        level: int,
        t: float,
        shape: Shape | None = None,
        fill: bool = False,
    ) -> tuple[float, int]:
        """Book a start at the cap level its Start carries. Returns (throughput kept, waves): a
        start larger than the ramp window's allowance draws in `waves` steps a minute apart.
        `shape`: the placement's (node cap, GPUs held, GPUs per hall) as power admission read
        it from these books' view (Start.power_shape); None: read here. `fill`: `fill` it too."""
        node_hall = self.topo.node_hall
        if shape is None:  # placement_shape answers a one-node start (most starts) without loops
            shape = placement_shape(node_hall, self.node_max_cap_w, self.min_node_cap_w, placement)
        node_cap, held, shares = shape
        if len(shares) == 1:  # one hall (nearly every start): the comprehension's one entry
            [(h0, k0)] = shares.items()
            halls = {h0: k0 / held}
        else:
            halls = {h: k / held for h, k in shares.items()}
        kind = job.kind
        lad = self._ladders.get((kind, flavor, gang, node_cap))  # ladder()'s memo, read here
        if lad is None:
            lad = self.ladder(job, flavor, gang, node_cap)
        per, inc, kept = lad
        inc_w = inc[level]
        limit = self.ramp_limit_it_w(t)
        waves = 1
        if inc_w > limit:
            waves = math.ceil(inc_w / limit)
            self.staggered += 1
        self._seq += 1
        jp = _JobPower(
            per[level], inc_w, 0.0, halls, kept[level], level, node_cap,
            (kind, flavor, job.priority, node_hall[placement[0][0]]), waves, 0, None, gang,
            self._seq, lad,
        )  # fmt: skip
        self.jobs[job.id] = jp
        if self.policy is not None:
            # It joins its class (the solver's; none without a policy), written out here: two
            # calls fewer a run than a method each way (RESULTS §136). A member wholly in the
            # class's hall is counted per ladder (gang, node cap), the rest kept by id.
            jid, key, classes = job.id, jp.key, self._classes
            cls = classes.get(key)
            if cls is None:
                cls = classes[key] = _Class(level)
            elif cls.lv != level:
                cls.lv = -1
            cls.members[jid] = None
            jp.cls = cls
            if len(halls) == 1 and halls.get(key[3]) == 1.0:
                w = cls.whole
                lk = jp.wk = (gang, node_cap)
                w[lk] = w.get(lk, 0) + 1
            else:
                jp.wk = None
                cls.split[jid] = tuple(halls.items())
                cls.made = None
        self.n_capped += level > 0
        self.inc_total_w += inc_w
        hall_inc = self.hall_inc_w
        if fill:  # `fill`'s first wave, halls in one loop (two calls fewer a start: RESULTS §145)
            jp.waves_done = 1
            d = jp.actual_w = inc_w / waves  # inc_w * 1 / waves, over the 0.0 drawn: the same
            self.actual_total_w += d
            hall_actual = self.hall_actual_w
            for h, s in halls.items():
                hall_inc[h] += inc_w * s
                hall_actual[h] += d * s
        else:
            for h, s in halls.items():
                hall_inc[h] += inc_w * s
        if waves == 1:  # nearly every start: the loop's one step (t + 0.0 and inc_w / 1)
            self.add_step(t, inc_w, now=t)
        else:
            for i in range(waves):
                self.add_step(t + 60.0 * i, inc_w / waves, now=t)
        return jp.kept, waves

    def fill(self, job_id: int) -> None:
        """The next wave of a (possibly staggered) start begins to draw."""
        jp = self.jobs.get(job_id)
        if jp is None or jp.waves_done >= jp.waves:
            return
        jp.waves_done += 1
        self._set_actual(jp, jp.inc_w * jp.waves_done / jp.waves)

    def _set_actual(self, jp: _JobPower, actual_w: float) -> None:
        d = actual_w - jp.actual_w
        jp.actual_w = actual_w
        self.actual_total_w += d
        for h, s in jp.halls.items():
            self.hall_actual_w[h] += d * s

    def stop(self, job_id: int) -> None:
        jp = self.jobs.pop(job_id)
        if self.policy is not None:  # it leaves the class its start joined
            cls = jp.cls
            assert cls is not None  # set by its start (under a policy)
            members = cls.members
            del members[job_id]
            lk = jp.wk
            if not members:
                del self._classes[jp.key]
            elif lk is None:
                del cls.split[job_id]
                cls.made = None
            else:
                w = cls.whole
                n = w[lk] - 1
                if n:
                    w[lk] = n
                else:
                    del w[lk]
        self.n_capped -= jp.level > 0
        self.inc_total_w -= jp.inc_w
        self.actual_total_w -= jp.actual_w
        for h, s in jp.halls.items():
            self.hall_inc_w[h] -= jp.inc_w * s
            self.hall_actual_w[h] -= jp.actual_w * s

    def relevel(self, job: Job, level: int) -> float:
        """Move a running job to another cap level; returns its new throughput kept."""
        jp = self.jobs[job.id]
        per, inc, kept = jp.lad  # ladder(job, job.run_flavor, job.run_gpus, jp.node_cap_w)
        inc_w = inc[level]
        d = inc_w - jp.inc_w
        # Waves already up draw at the new cap; those still to come fill to it (_set_actual's
        # sums, in the same loop as the increment's: each total adds in its own order).
        actual_w = inc_w * jp.waves_done / jp.waves
        da = actual_w - jp.actual_w
        self.inc_total_w += d
        self.actual_total_w += da
        hall_inc, hall_actual = self.hall_inc_w, self.hall_actual_w
        for h, s in jp.halls.items():
            hall_inc[h] += d * s
            hall_actual[h] += da * s
        self.n_capped += (level > 0) - (jp.level > 0)
        if (cls := jp.cls) is not None and cls.lv != level:  # under a policy (a plan's move)
            cls.lv = -1  # (kept_moves sets the level its moves take a class to before them)
        jp.per_gpu_w, jp.inc_w, jp.kept, jp.level = per[level], inc_w, kept[level], level
        jp.actual_w = actual_w
        return jp.kept

    def cap_jobs(
        self, running: Mapping[int, Job], speed: Mapping[tuple[str, int], float]
    ) -> list[CapJob]:
        return [self._cap_job(jid, jp, running, speed) for jid, jp in self.jobs.items()]

    def _cap_job(
        self,
        jid: int,
        jp: _JobPower,
        running: Mapping[int, Job],
        speed: Mapping[tuple[str, int], float],
    ) -> CapJob:
        cj = jp.capjob
        if cj is None:  # built once per run: a run's ladder and class never change
            job = running[jid]
            kind, flavor, gpus, cap = job.kind, job.run_flavor, job.run_gpus, jp.node_cap_w
            gain = speed[(kind, flavor)]
            _, inc, kept = self.ladder_of(kind, flavor, gpus, cap)
            # Its ladder in the solver's units from the memo the class sums read (the same
            # quantize over the same ladder and gain), not quantized again per run.
            q = self._q_of(kind, flavor, gpus, cap, gain)[0]
            cj = jp.capjob = CapJob(
                jid, jp.key, job.priority, job.run_start_s, gpus, gain, kept, inc,
                tuple(jp.halls.items()), q,
            )  # fmt: skip
        return cj

    def _q_of(self, kind: str, flavor: int, gang: int, node_cap_w: float, gain: float) -> tuple:
        """A ladder in the solver's units (cap_solver.quantize), as a member's CapJob has it."""
        key = (kind, flavor, gang, node_cap_w, gain)
        got = self._qcache.get(key)
        if got is None:
            # Through the memo's accessor: a copy of the books with its ladders emptied (the live
            # loop's regrow) keeps the sums of runs booked before, whose ladders are made again.
            _, inc, kept = self.ladder_of(kind, flavor, gang, node_cap_w)
            got = self._qcache[key] = (quantize(inc, kept, float(gang * gain)), inc)
        return got

    def kept_classes(
        self, running: Mapping[int, Job], speed: Mapping[tuple[str, int], float]
    ) -> list[CapClass]:
        """The running jobs' classes from the sums kept as they start and stop: equal to
        cap_classes(self.cap_jobs(...)) (exact integers, classes in the order of their first
        members), without reading every job."""
        n = len(self.levels)
        out = []
        jobs = self.jobs
        # In the order of each class's first member's start (starts are numbered apart, so no
        # ties), as a stable sort would: decorated by a comprehension, no key call per class.
        order = sorted(
            [
                (jobs[next(iter(cls.members))].seq, i, key, cls)
                for i, (key, cls) in enumerate(self._classes.items())
            ]
        )
        for _, _, key, cls in order:
            kind, flavor, prio, hall = key
            gain = speed[(kind, flavor)]
            made = cls.made
            hq = None
            if made is not None and made[0] == gain and cls.whole != made[4]:
                # A split member always has GPUs in its class's hall, so the hall's sums exist
                # whenever the class has members; the look-up only guards that. Most classes
                # have sums in their own hall alone (no dict made for that one entry).
                mh = made[2]
                if len(mh) == 1:
                    if mh[0][0] == hall:
                        hq = mh[0][1]
                else:
                    hq = dict(mh).get(hall)
                if hq is None:
                    made = cls.made = self._make_class(key, cls, gain)
            elif made is None or made[0] != gain:
                made = cls.made = self._make_class(key, cls, gain)
            if hq is not None:
                # The ladders whose counts moved since (new or changed counts, then those gone),
                # added in by C-level maps: integer sums, so the order they come in is moot.
                # With no split member the hall's sums are the site's first n (every member
                # lies wholly in the hall): copied once, not summed again per ladder. The
                # counts are read entry by entry (no set of (ladder, count) pairs made of
                # either), a count down by one subtracts the ladder (no product), and those
                # gone are looked for only when fewer than the old entries were found again.
                q, was, now = made[1], made[4], cls.whole
                whole = not cls.split
                q_of = self._q_of
                found = 0
                for lk, c in now.items():
                    w = was.get(lk)
                    if w is None:
                        k = c
                    else:
                        found += 1
                        k = c - w
                        if not k:
                            continue
                    v = q_of(kind, flavor, lk[0], lk[1], gain)[0]
                    if k == 1:
                        q[:] = map(add, q, v)
                        if not whole:
                            hq[:] = map(add, hq, v)  # its first n: the IT increments
                    elif k == -1:
                        q[:] = map(sub, q, v)
                        if not whole:
                            hq[:] = map(sub, hq, v)
                    else:
                        kv = list(map(k.__mul__, v))
                        q[:] = map(add, q, kv)
                        if not whole:
                            hq[:] = map(add, hq, kv)
                if found < len(was):
                    for lk in was.keys() - now.keys():
                        v = q_of(kind, flavor, lk[0], lk[1], gain)[0]
                        k = was[lk]
                        kv = v if k == 1 else list(map(k.__mul__, v))
                        q[:] = map(sub, q, kv)
                        if not whole:
                            hq[:] = map(sub, hq, kv)
                if whole:
                    hq[:] = q[:n]
                made[3], made[4] = None, now.copy()
            steps = made[3]
            if steps is None:
                steps = made[3] = class_steps(made[1], made[2], n)
            # The class as the last solve read it, for the same books, running jobs and speeds
            # (its sums are the same lists, moved in place): kept after `made`'s five entries, its
            # steps set anew. A CapClass and its members' partial per class cost ~6.7k, 26 a solve.
            got = made[5] if len(made) > 5 else None
            if got is not None and got[1] is running and got[2] is speed and got[3] is self:
                cc = got[0]
                cc.steps = steps
            else:
                cc = CapClass(
                    key,
                    prio,
                    made[1],
                    made[2],
                    partial(self._members, cls.members, running, speed),
                    steps,
                )
                del made[5:]
                made.append((cc, running, speed, self))
            out.append(cc)
        return out

    def _members(
        self,
        ids: Mapping[int, None],
        running: Mapping[int, Job],
        speed: Mapping[tuple[str, int], float],
    ) -> list[CapJob]:
        """A class's members as CapJobs, in start order (for the class a solve stops in). A
        run's CapJob is made once, at the first solve that reads it: those made are read in
        place (a split class lists ~50 members; a call per member cost 2.4x the read), the
        missing ones made."""
        jobs = self.jobs
        got = [jobs[j].capjob for j in ids]
        if all(got):  # a CapJob is always true (no __bool__ or __len__); None is not
            return cast("list[CapJob]", got)
        return [
            self._cap_job(j, jobs[j], running, speed) if cj is None else cj
            for j, cj in zip(ids, got, strict=True)
        ]

    def _make_class(self, key: ClassKey, cls: _Class, gain: float) -> list:
        """A class's sums from its members (kept_classes' `made`)."""
        kind, flavor, _, hall = key
        n = len(self.levels)
        q = [0] * (2 * n)
        for (gang, cap), count in cls.whole.items():
            v = self._q_of(kind, flavor, gang, cap, gain)[0]
            # Integer sums by C-level maps (the same integers as a comprehension's).
            q = list(map(add, q, v if count == 1 else map(count.__mul__, v)))
        halls: dict[int, list[int]] = {}
        if cls.whole:
            halls[hall] = q[:n]
        for jid, hs in cls.split.items():
            jp = self.jobs[jid]
            v, inc = self._q_of(kind, flavor, jp.gang, jp.node_cap_w, gain)
            q = list(map(add, q, v))
            for h, sh in hs:
                w = v[:n] if sh == 1.0 else hall_ladder(inc, sh)
                got = halls.get(h)
                halls[h] = list(w) if got is None else list(map(add, got, w))
        return [gain, q, sorted(halls.items()), None, cls.whole.copy()]

    def solve_kept(
        self,
        running: Mapping[int, Job],
        speed: Mapping[tuple[str, int], float],
        site_budget_w: float,
        hall_budget_w: Sequence[float],
        head: CapJob | None = None,
    ) -> CapPlan:
        """solve_caps(self.cap_jobs(...) + [head]) read from the kept class sums: the same plan.
        A floor that does not fit (step 1 pauses, job by job) goes to solve_caps itself."""
        n = len(self.levels)
        classes = self.kept_classes(running, speed)
        if head is not None:
            hc, _ = cap_classes([head])
            classes.append(hc[0])
        sb, hb = site_budget_w * W_UNIT, [b * W_UNIT for b in hall_budget_w]
        site, halls = floor_sums(classes, len(hb), n - 1)
        if (
            self.policy is None  # no classes kept
            or not classes
            or site > sb
            or any(w > b for w, b in zip(halls, hb, strict=True))
        ):
            jobs = self.cap_jobs(running, speed)
            return solve_caps([*jobs, head] if head else jobs, site_budget_w, hall_budget_w, n)
        c_level, moved = raise_classes(classes, site, halls, sb, hb, n)
        at = {c.key: lv for c, lv in zip(classes, c_level, strict=True)}
        # Each job at its class's level: every booked job (a class's member) at 0, uncapped (~71%
        # of a month's entries), by a C-level dict.fromkeys over the books, then the members of
        # the classes at other levels one by one: the same entries as one dict over self.jobs,
        # in the books' order, which no reader depends on (cap_moves orders the moves itself).
        levels = dict.fromkeys(self.jobs, 0)
        for key, cls in self._classes.items():
            lv = at[key]
            if lv:
                for jid in cls.members:
                    levels[jid] = lv
        if head is not None:
            levels[head.id] = c_level[-1]
        levels.update(moved)
        return CapPlan(levels, [], at, moved)

    def head_cap_job(self, job: Job, flavor: int, gain: float, t: float) -> CapJob:
        """A pending job as a member of a solve (its hall is not known before placement)."""
        gang = job.gpus
        _, inc, kept = self.ladder(job, flavor, gang, self.min_node_cap_w)
        key = (job.kind, flavor, job.priority, -1)
        return CapJob(
            id=job.id,
            key=key,
            priority=job.priority,
            start_s=t,
            gpus=gang,
            gain=gain,
            kept=kept,
            inc_w=inc,
            halls=(),
        )


def _concave(per: list[float], kept: list[float]) -> None:
    """Keep only the levels on the upper concave hull of (draw, throughput kept); a level off it
    takes the values of the level above it. The solver's greedy order is optimal only on a
    concave ladder: a cap just under a job's mean draw saves few watts (the draw is the mean)
    but costs the clipped peaks, so for power-bound work the top steps are not concave."""
    best: dict[float, float] = {}
    for x, y in zip(per, kept, strict=True):
        best[x] = max(best.get(x, -1.0), y)
    hull: list[tuple[float, float]] = []
    for x, y in sorted(best.items()):
        while len(hull) >= 2:
            (ax, ay), (bx, by) = hull[-2], hull[-1]
            if (bx - ax) * (y - ay) - (by - ay) * (x - ax) >= 0:
                hull.pop()  # b lies on or below the chord from a to this point
            else:
                break
        hull.append((x, y))
    vertices = set(hull)
    for i in range(1, len(per)):  # level 0 (uncapped) is the top vertex
        if (per[i], kept[i]) not in vertices:
            per[i], kept[i] = per[i - 1], kept[i - 1]
