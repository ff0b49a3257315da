"""The power books' per-job part, shared by both drivers: each running job's draw, cap level
and IT increment, its ladder of cap levels, and the shares of the site and hall budgets it holds.

A mixin of PowerBooks (drive/power_books.py), split out so that budgets stay apart from the
per-job books; it reads the books' fields and keeps no state of its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cortex.power.curve import draw_fractions
from cortex.scheduler.cap_solver import CapJob, ClassKey
from cortex.scheduler.power import Shape, placement_shape
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
        key = (job.kind, flavor, gang, node_cap_w)
        got = self._ladders.get(key)
        if got is None:
            got = self._ladders[key] = self._ladder(job, flavor, gang, node_cap_w)
        return got

    def _ladder(
        self, job: Job, flavor: int, gang: int, node_cap_w: float
    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        tdp = self.topo.accelerators[flavor].tdp_w
        idle = self.topo.accelerators[flavor].idle_w
        draw = self.draw_w(job.kind, flavor)
        caps = [min(lv * tdp, node_cap_w) for lv in self.levels]
        per = [min(c, draw) for c in caps]
        kept = [self.kept(flavor, c, draw) for c in caps]
        _concave(per, kept)
        inc = tuple(gang * (p - idle) for p in per)
        return tuple(per), inc, tuple(kept)

    def _ladder_w(self, kind: str, flavor: int, level: int, node_cap_w: float) -> float:
        key = (kind, flavor, node_cap_w)
        per = self._per_cache.get(key)
        if per is None:
            probe = Job(-1, "", "", 1, 1.0, kind=kind)
            per = self._per_cache[key] = self._ladder(probe, flavor, 1, node_cap_w)[0]
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
    ) -> tuple[float, int]:
        """Book a start at the cap level its Start carries. Returns (throughput kept, waves): a
        start larger than the ramp window's allowance draws in `waves` steps a minute apart.
        `shape`: the placement's (node cap, GPUs held, GPUs per hall) as power admission read
        it from these books' view (Start.power_shape); None: read here."""
        if shape is None:
            shape = placement_shape(
                self.topo.node_hall, self.node_max_cap_w, self.min_node_cap_w, placement
            )
        node_cap, held, shares = shape
        per, inc, kept = self.ladder(job, flavor, gang, node_cap)
        halls = {h: k / held for h, k in shares.items()}
        key = (job.kind, flavor, job.priority, self.topo.node_hall[placement[0][0]])
        jp = _JobPower(per[level], inc[level], 0.0, halls, kept[level], level, node_cap, key)
        self.jobs[job.id] = jp
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
        self.n_capped -= jp.level > 0
        self.inc_total_w -= jp.inc_w
        self.actual_total_w -= jp.actual_w
        for h, s in jp.halls.items():
            self.hall_inc_w[h] -= jp.inc_w * s
            self.hall_actual_w[h] -= jp.actual_w * s

    def relevel(self, job: Job, level: int) -> float:
        """Move a running job to another cap level; returns its new throughput kept."""
        jp = self.jobs[job.id]
        per, inc, kept = self.ladder(job, job.run_flavor, job.run_gpus, jp.node_cap_w)
        d = inc[level] - jp.inc_w
        self.inc_total_w += d
        for h, s in jp.halls.items():
            self.hall_inc_w[h] += d * s
        self.n_capped += (level > 0) - (jp.level > 0)
        jp.per_gpu_w, jp.inc_w, jp.kept, jp.level = per[level], inc[level], kept[level], level
        # Waves already up draw at the new cap; those still to come fill to it.
        self._set_actual(jp, jp.inc_w * jp.waves_done / jp.waves)
        return jp.kept

    def cap_jobs(
        self, running: Mapping[int, Job], speed: Mapping[tuple[str, int], float]
    ) -> list[CapJob]:
        out = []
        for jid, jp in self.jobs.items():
            cj = jp.capjob
            if cj is None:  # built once per run: a run's ladder and class never change
                job = running[jid]
                _, inc, kept = self.ladder(job, job.run_flavor, job.run_gpus, jp.node_cap_w)
                cj = jp.capjob = CapJob(
                    id=jid,
                    key=jp.key,
                    priority=job.priority,
                    start_s=job.run_start_s,
                    gpus=job.run_gpus,
                    gain=speed[(job.kind, job.run_flavor)],
                    kept=kept,
                    inc_w=inc,
                    halls=tuple(jp.halls.items()),
                )
            out.append(cj)
        return out

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
