"""PowerBooks.never_fits keeps the site budget on the coolest moment between arrivals (it is read
on every one): what it answers must be what fresh books answer after the site cap or the weather
that budget is made of has moved."""

from __future__ import annotations

import dataclasses

import numpy as np
from test_power_view import FLEET, HORIZON_S

from cortex.scheduler.reasons import Code
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.workload.job import Job


def _most_mw(pw: PowerRuntime) -> float:
    # A gang no site budget takes: its reason names the budget the bound read ("most_mw").
    r = pw.never_fits(Job(1, "j", "a", 100_000, 100.0, kind="llm"), (0,))
    assert r is not None and r.code is Code.NEVER_FITS_POWER
    return float(r.detail["most_mw"])


def test_never_fits_follows_the_site_cap_and_the_weather() -> None:
    pw = PowerRuntime.build(FLEET, PowerConfig("full"), HORIZON_S)
    fresh = dataclasses.replace  # a copy of the books starts without the memo
    first = _most_mw(pw)
    assert _most_mw(pw) == first == _most_mw(fresh(pw))
    pw.site_cap_w *= 0.8  # an operator's lower cap
    lower = _most_mw(pw)
    assert lower < first and lower == _most_mw(fresh(pw))
    pw.temps = np.asarray(pw.temps) + 10.0  # a hotter coolest moment
    hot = _most_mw(pw)
    assert hot < lower and hot == _most_mw(fresh(pw))
    small = Job(2, "k", "a", 8, 100.0, kind="llm")
    assert pw.never_fits(small, (0,)) is None  # one node fits any of these budgets
