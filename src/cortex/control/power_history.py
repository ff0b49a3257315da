"""Each job's GPU draw over time, kept by the control plane for the job page's power chart and
GET /v1/jobs/{id}/power.

The scheduler thread samples every drawing job's watts every SAMPLE_S (the power books' modelled
figure, or the GPUs' measured draw where the actuator reads every one of them: NVML). Memory is
bounded whatever the run's length: a job keeps at most MAX_POINTS points, and when they are full
neighbouring pairs merge into their mean, so its resolution halves and its whole run stays in
view (a week-long job ends at about 40-minute points). Jobs that stopped drawing keep their
series for the MAX_ENDED most recently stopped; older ones are dropped. Running jobs are bounded
by the fleet's GPUs.

Kept in memory, not in the store: a restart starts every series afresh (Prometheus, scraping
`cortex_power_job_watts` from /metrics, is the long-term record). Readers (API threads) copy one
job's series under a lock the scheduler thread holds only while it appends a sample.

Hand-written: a per-key ring with pairwise merging is a few lines; no library in the stack keeps
bounded, downsampled per-key series in process.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cortex.control.loop_power import LivePower

SAMPLE_S = 15.0  # finest resolution
MAX_POINTS = 480  # per job; full: pairs merge, resolution halves
MAX_ENDED = 2048  # jobs no longer drawing whose series are kept
GAP_STEPS = 2.5  # points further apart than this many steps are drawn with a gap between


class _Series:
    """One job's points: start times, mean watts, and whether every sample was measured."""

    __slots__ = ("_acc_m", "_acc_n", "_acc_t", "_acc_w", "measured", "step_s", "t", "w")

    def __init__(self) -> None:
        self.step_s = SAMPLE_S
        self.t = array("d")
        self.w = array("d")
        self.measured = array("b")
        self._acc_t = 0.0
        self._acc_w = 0.0
        self._acc_n = 0
        self._acc_m = True

    def add(self, now: float, watts: float, measured: bool) -> None:
        """A sample: folded into the open point until the point spans a step, or a gap."""
        if self._acc_n and now - self._acc_t >= self.step_s - 1e-9:
            self._close()
        if not self._acc_n:
            self._acc_t, self._acc_w, self._acc_m = now, 0.0, True
        self._acc_w += watts
        self._acc_n += 1
        self._acc_m = self._acc_m and measured

    def _close(self) -> None:
        self.t.append(self._acc_t)
        self.w.append(self._acc_w / self._acc_n)
        self.measured.append(1 if self._acc_m else 0)
        self._acc_n = 0
        if len(self.t) >= MAX_POINTS:
            self._halve()

    def _halve(self) -> None:
        n = len(self.t) // 2 * 2
        t, w, m = self.t, self.w, self.measured
        self.t = array("d", (t[i] for i in range(0, n, 2)))
        self.w = array("d", ((w[i] + w[i + 1]) / 2 for i in range(0, n, 2)))
        self.measured = array("b", (m[i] & m[i + 1] for i in range(0, n, 2)))
        if n < len(t):  # an odd one out stays as it is
            self.t.append(t[-1])
            self.w.append(w[-1])
            self.measured.append(m[-1])
        self.step_s *= 2

    def points(self) -> tuple[float, list[float], list[float], list[bool]]:
        """(step, times, watts, measured), the open point included."""
        t, w, m = list(self.t), list(self.w), [bool(x) for x in self.measured]
        if self._acc_n:
            t.append(self._acc_t)
            w.append(self._acc_w / self._acc_n)
            m.append(self._acc_m)
        return self.step_s, t, w, m


@dataclass(frozen=True)
class DrawSeries:
    """What a reader gets: at most the points asked for, a None watts where the job drew
    nothing for a while (preempted, paused, requeued)."""

    job_id: int
    step_s: float
    t: list[float]
    watts: list[float | None]
    measured: list[bool | None]
    running: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "step_s": self.step_s,
            "running": self.running,
            "t": self.t,
            "watts": self.watts,
            "measured": self.measured,
        }


def _thin(
    step: float, t: list[float], w: list[float], m: list[bool], points: int
) -> tuple[float, list[float], list[float], list[bool]]:
    """At most `points` points: groups of k consecutive ones merged into their mean."""
    k = -(-len(t) // points)
    if k <= 1:
        return step, t, w, m
    ts, ws, ms = [], [], []
    for i in range(0, len(t), k):
        ts.append(t[i])
        ws.append(sum(w[i : i + k]) / len(w[i : i + k]))
        ms.append(all(m[i : i + k]))
    return step * k, ts, ws, ms


class DrawHistory:
    def __init__(self) -> None:
        self._live: dict[int, _Series] = {}
        self._ended: OrderedDict[int, _Series] = OrderedDict()
        self._lock = threading.Lock()
        self._next_s = float("-inf")

    def due(self, now: float) -> bool:
        return now >= self._next_s

    def sample(self, now: float, draws: Iterable[tuple[int, float, bool]]) -> None:
        """Each drawing job's (id, watts, measured) now (scheduler thread, when `due`). A job
        absent from `draws` stopped drawing: its series moves to the ended ones."""
        self._next_s = now + SAMPLE_S
        with self._lock:
            seen = set()
            for jid, watts, measured in draws:
                seen.add(jid)
                s = self._live.get(jid)
                if s is None:
                    s = self._ended.pop(jid, None) or _Series()  # requeued: one series
                    self._live[jid] = s
                s.add(now, watts, measured)
            for jid in [j for j in self._live if j not in seen]:
                self._ended[jid] = self._live.pop(jid)
                self._ended.move_to_end(jid)
            while len(self._ended) > MAX_ENDED:
                self._ended.popitem(last=False)

    def series(self, job_id: int, points: int) -> DrawSeries | None:
        """None for a job never sampled (or dropped). At most `points` points; those further
        apart than GAP_STEPS steps get a None between them (so fewer than 2 x `points`
        entries), so a chart does not join across the gap."""
        with self._lock:
            s = self._live.get(job_id)
            running = s is not None
            s = s or self._ended.get(job_id)
            if s is None:
                return None
            step, t, w, m = s.points()
        step, t, w, m = _thin(step, t, w, m, points)
        ts: list[float] = []
        ws: list[float | None] = []
        ms: list[bool | None] = []
        for i, x in enumerate(t):
            if i and x - t[i - 1] > GAP_STEPS * step:
                ts.append((x + t[i - 1]) / 2)
                ws.append(None)
                ms.append(None)
            ts.append(x)
            ws.append(w[i])
            ms.append(m[i])
        return DrawSeries(job_id, step, ts, ws, ms, running)

    def __len__(self) -> int:
        return len(self._live) + len(self._ended)


def record_draws(power: LivePower, now: float) -> None:
    """Sample the live power books' running jobs (scheduler thread, once a tick: when due)."""
    hist = power.history
    if not hist.due(now):
        return
    devices = power.loop.mirror.devices_by_job()
    rows = (
        (jid, jp.per_gpu_w * len(devices.get(jid, ())), tuple(devices.get(jid, ())))
        for jid, jp in power.books.jobs.items()
    )
    act = power.actuator
    hist.sample(now, job_draws(rows, act.draw_w if act is not None else None))


def job_draws(
    jobs: Iterable[tuple[int, float, tuple[int, ...]]], read: Callable[[int], float | None] | None
) -> list[tuple[int, float, bool]]:
    """(job, watts, measured) for each job with devices: the GPUs' measured draw where `read`
    (the actuator's) answers for every one of them, else the modelled watts given."""
    out = []
    for jid, modelled_w, devices in jobs:
        if not devices:
            continue  # admitted, not launched: draws nothing yet
        got = [read(d) for d in devices] if read is not None else [None]
        if all(x is not None for x in got):
            out.append((jid, float(sum(x for x in got if x is not None)), True))
        else:
            out.append((jid, modelled_w, False))
    return out
