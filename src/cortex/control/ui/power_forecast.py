"""The power page's forecast: the site's facility draw over the next hours if the jobs running
now end at their estimated ends, against the cap in force.

The ends are the ones the start estimator runs the scheduler forward from (control/estimate.py:
each running job's `est_end_s`, one already past it ending now). Watts come from the power
books the loop publishes (`LivePower.report()`: each job's IT watts over idle) through the one
facility model (power/cooling.py) at the outdoor temperature in force. What it leaves out, so
it is a floor and not a prediction of the draw: the waiting jobs that will start as these end
(their starts depend on the whole forward run and its power decisions), jobs still exiting and
measured excess over the books (both short-lived), and changes of the cap or the temperature
(no schedule of them exists)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

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
    waiting: int  # jobs waiting, not in the forecast
    waiting_gpus: int

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
    )
