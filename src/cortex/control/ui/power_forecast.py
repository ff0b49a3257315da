"""The power page's forecast: the site's facility draw over the next hours if the jobs running
now end at their estimated ends, against the cap in force.

The ends are the ones the start estimator runs the scheduler forward from (control/estimate.py:
each running job's `est_end_s`, one already past it ending now). Watts come from the power
books the loop publishes (`LivePower.report()`: each job's IT watts over idle) through the one
facility model (power/cooling.py) at the outdoor temperature in force. That line is the floor
of the draw. A second line adds the waiting jobs at the estimator's starts, held at the cap
(ui/forecast_waiting.py says what that leaves out). Neither has jobs still exiting, measured
excess over the books (both short-lived), nor changes of the cap or the temperature (no
schedule of them exists)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cortex.control.ui.forecast_waiting import waiting_starts
from cortex.workload.states import PENDING


@dataclass
class Forecast:
    now: float
    t: list[float]  # sample times (epoch s), `now` first
    facility_w: list[float]
    it_w: list[float]
    cap_w: float
    temp_c: float
    jobs: int  # running jobs in the forecast (booked and drawing)
    overdue: int  # of them, past their estimated end (ending now, as the estimator has them)
    waiting: int  # jobs waiting
    waiting_gpus: int
    # The draw with the waiting jobs at their estimated starts, held at the cap
    # (ui/forecast_waiting.py); how many of them start in it; samples the cap held.
    with_waiting_w: list[float] = field(default_factory=list)
    waiting_in: int = 0
    capped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "t": self.t,
            "facility_w": self.facility_w,
            "it_w": self.it_w,
            "cap_w": self.cap_w,
            "temp_c": self.temp_c,
            "jobs": self.jobs,
            "overdue": self.overdue,
            "waiting": self.waiting,
            "waiting_gpus": self.waiting_gpus,
            "with_waiting_w": self.with_waiting_w,
            "waiting_in": self.waiting_in,
            "capped": self.capped,
        }


def forecast(svc: Any, hours: float, points: int) -> Forecast | None:
    """None without a power policy. `points` samples from now to now + `hours`, evenly; the
    draw at a sample counts the jobs whose estimated end is after it."""
    power = svc.loop.power
    if power is None:
        return None
    snap = power.report()
    b = power.books
    now = svc.clock.time()
    temp = snap.outdoor_temp_c
    jobs = dict(svc.loop.mirror.jobs)  # copied whole: the scheduler thread writes it
    ends, watts = [], []
    for jid, (_, _, devs) in snap.jobs.items():
        job = jobs.get(jid)
        if job is None or not devs:  # gone, or booked but not drawing yet
            continue
        ends.append(max(float(job.est_end_s), now))
        watts.append(snap.books[jid][2])
    end = np.asarray(ends, dtype=np.float64)
    over = np.asarray(watts, dtype=np.float64)
    order = np.argsort(end, kind="stable")
    end, over = end[order], over[order]
    # Watts still drawing after each end: the suffix sums of the sorted increments.
    after = np.concatenate([np.cumsum(over[::-1])[::-1], [0.0]])
    t = now + np.linspace(0.0, hours * 3600.0, points)
    # The first sample is now (every job counted); a later one counts the jobs ending after it.
    first = np.searchsorted(end, t, side="right")
    first[0] = 0
    it = snap.idle_it_w + after[first]
    facility = [b.cooling.facility_w(float(x), b.nameplate_it_w, temp) for x in it]
    waiting = [j for j in jobs.values() if j.state in PENDING]
    starts = waiting_starts(svc.loop) if waiting else []
    extra = np.zeros(len(t))
    for s, e, w in starts:  # drawing from its start until its end (an end at a sample: over)
        extra[(t >= s) & (t < e)] += w
    # The cap holds back the waiting jobs, never what already runs (the floor).
    raw = [b.cooling.facility_w(float(x), b.nameplate_it_w, temp) for x in it + extra]
    with_waiting = [max(f0, min(f, snap.site_cap_w)) for f0, f in zip(facility, raw, strict=True)]
    capped = sum(1 for f0, f in zip(facility, raw, strict=True) if f > max(f0, snap.site_cap_w))
    return Forecast(
        now=now,
        t=[float(x) for x in t],
        facility_w=facility,
        it_w=[float(x) for x in it],
        cap_w=snap.site_cap_w,
        temp_c=temp,
        jobs=len(ends),
        overdue=int(np.count_nonzero(end <= now)),
        waiting=len(waiting),
        waiting_gpus=sum(j.gpus for j in waiting),
        with_waiting_w=with_waiting,
        waiting_in=sum(1 for s, _, _ in starts if s <= t[-1]),
        capped=capped,
    )
