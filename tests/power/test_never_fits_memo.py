"""PowerBooks.never_fits keeps the site budget on the coolest moment between arrivals (it is read
on every one): what it answers must be what fresh books answer after the site cap or the weather
that budget is made of has moved."""

from __future__ import annotations

import dataclasses
import math

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


def test_never_fits_keeps_each_gangs_floor_per_kind_gang_and_flavors() -> None:
    # The floor a gang needs is kept per (kind, gang, flavors) (one look-up per arrival): a gang
    # that fits only on the lighter of two flavors is answered for each set of flavors it may
    # take, in either order, as fresh books answer.
    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build

    topo = build(load_fleet_spec("cortex-2026"))  # flavors of different floor watts
    pw = PowerRuntime.build(topo, PowerConfig("full"), HORIZON_S)
    huge = pw.never_fits(Job(1, "j", "a", 10**8, 100.0, kind="llm"), (0,))
    assert huge is not None
    best = float(huge.detail["most_mw"]) * 1e6
    one = Job(1, "j", "a", 1, 100.0, kind="llm")
    floor = {f: pw.ladder(one, f, 1, pw.min_node_cap_w)[1][-1] for f in range(len(topo.flavors))}
    light, heavy = min(floor, key=floor.__getitem__), max(floor, key=floor.__getitem__)
    gang = int(best // floor[light])  # fits on the light flavor, not on the heavy one
    assert gang * floor[heavy] > best
    job = Job(2, "k", "a", gang, 100.0, kind="llm")
    for order in ([(heavy,), (light,), (heavy, light)], [(light,), (heavy,), (light, heavy)]):
        books = dataclasses.replace(pw)
        for flavors in order:
            got = books.never_fits(job, flavors)
            assert (got is None) == (light in flavors)
            assert (got is None) == (dataclasses.replace(pw).never_fits(job, flavors) is None)


def test_a_job_that_names_no_flavor_is_asked_about_every_flavor() -> None:
    # The twin asks with the job's own flavor_ids, () when it names none: the answer is the one
    # for every flavor, gang by gang around each flavor's limit (the flavors' floors differ),
    # asked first with () or first with every flavor named.
    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build

    topo = build(load_fleet_spec("cortex-2026"))
    pw = PowerRuntime.build(topo, PowerConfig("full"), HORIZON_S)
    every = tuple(range(len(topo.flavors)))
    huge = pw.never_fits(Job(1, "j", "a", 10**8, 100.0, kind="llm"), every)
    assert huge is not None
    best = float(huge.detail["most_mw"]) * 1e6
    # the bound read plainly: the site's IT budget on the coolest moment, over the idle fleet
    plain = pw.cooling.it_budget_w(pw.site_cap_w, pw.nameplate_it_w, float(pw.temps.min()))
    assert huge.detail["most_mw"] == (max(plain, 0.0) - pw.base_all_w) / 1e6
    one = Job(1, "j", "a", 1, 100.0, kind="llm")
    floors = [pw.ladder(one, f, 1, pw.min_node_cap_w)[1][-1] for f in every]
    assert len(set(floors)) > 1
    gangs = sorted({int(best // w) + d for w in floors for d in (0, 1)})
    answers = set()
    for first in ((), every):
        books = dataclasses.replace(pw)
        for gang in gangs:
            job = Job(2, "k", "a", gang, 100.0, kind="llm")
            for flavors in (first, every if first == () else ()):
                got = books.never_fits(job, flavors)
                want = dataclasses.replace(pw).never_fits(job, every)
                assert (got is None) == (want is None), (gang, flavors)
                assert got is None or want is None or got.detail == want.detail
                answers.add(got is None)
    assert answers == {True, False}


def test_a_gangs_floor_is_its_ladders_floor_without_making_its_ladder() -> None:
    # never_fits reads a gang's floor increment as gang * (the per-GPU floor draw - idle) from
    # the per-GPU ladder kept per kind and flavor: the same double as the floor of the gang's
    # own ladder (ladder's formula), for every kind, flavor set and gang, with and without
    # rack caps (a finite least node cap moves the floor), and no gang's ladder is made.
    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build

    topo = build(load_fleet_spec("cortex-2026"))  # flavors of different watts
    every = tuple(range(len(topo.flavors)))
    for cfg in (PowerConfig("full"), PowerConfig("full", rack_cap_kw=150.0)):
        pw = PowerRuntime.build(topo, cfg, HORIZON_S)
        books, plain = pw, PowerRuntime.build(topo, cfg, HORIZON_S)  # no memo shared
        for kind in ("llm", "vision", "generic", "eval"):
            for gang in (1, 3, 8, 9, 64, 1000, 10**8):
                # an elastic gang is asked at its least size
                elastic = Job(1, "j", "a", 2 * gang, 100.0, kind=kind, elastic_min=gang)
                job = Job(1, "j", "a", gang, 100.0, kind=kind)
                for flavors in ((), (0,), every[::-1]):
                    books.never_fits(elastic, flavors)
                    need = books._never_cache[kind][gang][flavors]  # kept under its least size
                    got = books.never_fits(job, flavors)
                    assert books._never_cache[kind][gang][flavors] == need
                    wide = Job(1, "j", "a", 2 * gang, 100.0, kind=kind)  # the elastic's most
                    wide_got = books.never_fits(wide, flavors)
                    assert wide_got is None or wide_got.detail["need_mw"] > need / 1e6
                    want = min(
                        plain.ladder(job, f, gang, plain.min_node_cap_w)[1][-1]
                        for f in flavors or every
                    )
                    assert need == want, (kind, gang, flavors)
                    assert got is None or got.detail["need_mw"] == want / 1e6
                    assert (got is None) == (want <= float(books._never_best[2]))  # type: ignore[index]
        assert books._ladders is not plain._ladders
        assert not any(key[2] > 1 for key in books._ladders)  # no gang's own ladder made
    assert pw.min_node_cap_w < math.inf
