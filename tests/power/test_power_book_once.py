"""A start's watts are booked once (scheduler/power.py Grant.shape, snapshot.Start.power_shape,
drive/power_jobs.py start): what power admission read of a placement (node cap under the rack
budgets, GPUs held, GPUs per hall) travels with the Start, and the driver's books book the start
from it instead of reading the placement again. It must be what the books would read of that
very placement, for every start a cycle plans, the preemptor's included."""

from __future__ import annotations

import math
import random

import pytest

import testkit
from cortex.scheduler.power import hall_shares
from cortex.sim.power import PowerConfig, PowerRuntime
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job

# Two halls of two pods each, under a site cap that binds and rack budgets under the racks'
# TDP, so that node caps are finite and hall shares and cap levels vary.
FLEET = testkit.two_hall_power_fleet("book-once")
RACK_KW = 30.0


def _plain(pw: PowerRuntime, placement: tuple[tuple[int, int], ...]) -> tuple:
    node_cap = (
        min(pw.node_max_cap_w[n] for n, _ in placement)
        if pw.min_node_cap_w < math.inf
        else math.inf
    )
    shares: dict[int, int] = {}
    for n, k in placement:
        h = pw.topo.node_hall[n]
        shares[h] = shares.get(h, 0) + k
    return node_cap, sum(shares.values()), shares


def _jobs(seed: int) -> list[Job]:
    rng = random.Random(seed)
    out = []
    for i in range(60):
        gpus = rng.choice([1, 4, 8, 16, 24, 40, 64])
        prio = rng.choice(["preemptible", "normal", "normal", "production"])
        out.append(
            Job(
                i,
                f"j{i}",
                "a",
                gpus,
                rng.uniform(0.3, 6.0) * 3600.0,
                priority_class=prio,
                kind=rng.choice(["llm", "fsd-video", "generic"]),
                submit_s=rng.uniform(0.0, 12 * 3600.0),
                ckpt_write_s=60.0,
            )
        )
    return out


@pytest.mark.parametrize("policy", ["full", "cap", "admit", "none"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_start_books_the_shape_of_its_own_placement(
    policy: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {"shaped": 0}
    booked = PowerRuntime.start

    def spy(self, job, flavor, gang, placement, level, t, shape=None, fill=False):
        if shape is not None:
            seen["shaped"] += 1
            assert shape[0] == _plain(self, placement)[0]
            assert shape[1] == _plain(self, placement)[1]
            assert list(shape[2].items()) == list(_plain(self, placement)[2].items())
        return booked(self, job, flavor, gang, placement, level, t, shape, fill)

    monkeypatch.setattr(PowerRuntime, "start", spy)
    cfg = SimConfig(
        days=1.0,
        failures=False,
        policy="priority",
        debug=True,
        # No policy and no rack caps: the twin's start gives a whole-node gang's shape from
        # its pods' counts (RESULTS §145)
        power=PowerConfig(
            policy, rack_cap_kw=RACK_KW if policy != "none" else None, temperature_c=30.0
        ),
    )
    jobs = _jobs(seed)
    Twin(FLEET, jobs, cfg).run()
    assert seen["shaped"] > (20 if policy != "none" else 5)  # the starts carry their shape
    assert sum(j.preemptions for j in jobs) > 0  # preemptors' starts were among them


@pytest.mark.parametrize("rack_kw", [RACK_KW, None])
def test_a_start_with_its_shape_books_what_one_without_books(rack_kw: float | None) -> None:
    """Also the one-node start read without placement_shape (most starts, no power policy)."""
    pw = PowerRuntime.build(FLEET, PowerConfig("full", rack_cap_kw=rack_kw), 86400.0)
    assert (pw.min_node_cap_w < math.inf) == (rack_kw is not None)
    rng = random.Random(3)
    for i in range(200):
        nodes = rng.sample(range(16), rng.randint(1, 6))
        placement = tuple((n, rng.choice([8, 8, 3])) for n in nodes)
        gang = sum(k for _, k in placement)
        job = Job(i, "j", "a", gang, 3600.0, kind=rng.choice(["llm", "generic"]))
        level = rng.randrange(len(pw.levels))
        plain = pw.start(job, 0, gang, placement, level, 100.0 * i)
        a = pw.jobs.pop(job.id)
        shaped = pw.start(job, 0, gang, placement, level, 100.0 * i, _plain(pw, placement))
        b = pw.jobs.pop(job.id)
        assert plain == shaped
        assert (a.per_gpu_w, a.inc_w, a.halls, a.kept, a.level, a.node_cap_w, a.key) == (
            b.per_gpu_w,
            b.inc_w,
            b.halls,
            b.kept,
            b.level,
            b.node_cap_w,
            b.key,
        )
        assert list(a.halls) == list(b.halls)
        assert (a.gang, a.seq + 1) == (b.gang, b.seq) and a.gang == gang
        assert a.key[3] == pw.topo.node_hall[placement[0][0]]  # the class's hall: the first node's
    assert hall_shares(pw.topo.node_hall, ((0, 8), (9, 8))) == {0: 8, 1: 8}
