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


def test_never_fits_reads_the_same_floor_as_each_gangs_own_ladder() -> None:
    # The floor's least increment is kept per GPU, per (kind, flavors), and multiplied by the
    # gang: for random kinds, gangs (elastic ones too), flavor sets and site caps, the bound
    # and its numbers must be the plain rule's: the least over the flavors of the gang's own
    # ladder's floor increment (fresh books, so no memo answers).
    import random

    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build

    rng = random.Random(7)
    seen = 0
    topo = build(load_fleet_spec("cortex-2026"))  # four flavors of different floor watts
    n_f = len(topo.flavors)
    kinds = ("llm", "fsd-video", "optimus-policy", "generic", "eval")
    # A floor at 0.7 of TDP lies above eval's draw (0.6): kinds differ at the floor there.
    for rack_kw, levels in ((None, (1.0, 0.85, 0.7)), (150.0, (1.0, 0.9, 0.8, 0.7, 0.6))):
        cfg = PowerConfig("full", rack_cap_kw=rack_kw, levels=levels)
        pw = PowerRuntime.build(topo, cfg, HORIZON_S)
        for cap_scale in (1.0, 0.05, 0.01):
            pw.site_cap_w *= cap_scale
            assert pw.never_fits(Job(0, "h", "a", 10**9, 100.0, kind="llm"), (0,)) is not None
            assert pw._never_best is not None
            best = pw._never_best[1]  # the site budget on the coolest moment, over idle
            for i in range(300):
                gpus = rng.choice([1, 2, 7, 8, 64, 512, 4096, 30_000, rng.randint(1, 200_000)])
                job = Job(i, "j", "a", gpus, 100.0, kind=rng.choice(kinds))
                if rng.random() < 0.2:
                    job.elastic_min = rng.randint(1, gpus)
                flavors = tuple(rng.sample(range(n_f), rng.randint(1, n_f)))
                got = pw.never_fits(job, flavors)
                plain = dataclasses.replace(pw, _never_cache={}, _ladders={})
                gang = job.elastic_min or job.gpus
                need = min(plain.ladder(job, f, gang, plain.min_node_cap_w)[1][-1] for f in flavors)
                want = plain.never_fits(job, flavors)
                assert (got is None) == (want is None) == (need <= best), (i, gpus, flavors)
                if got is not None:
                    assert want is not None
                    assert got.detail["need_mw"] == need / 1e6 == want.detail["need_mw"]
                    assert got.detail == want.detail
                    seen += 1
    assert seen > 100  # many gangs refused, with their numbers compared
