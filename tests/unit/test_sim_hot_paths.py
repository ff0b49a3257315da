"""The twin's hot paths, made cheaper, against the plain computations they replace (kept here
verbatim): same answers, same books."""

from __future__ import annotations

import bisect
import random
from types import SimpleNamespace

import pytest

from cortex.sim.runs import RunBooks


class _Writes(RunBooks):
    def __init__(self, writes: dict[int, tuple[float, int]]) -> None:
        self._writes = writes
        # as _preempt keeps it: the latest end of any write recorded
        self._writes_until = max((u for u, _ in writes.values()), default=0.0)
        self.now = 0.0


def _victim_wait_reference(
    writes: dict[int, tuple[float, int]], now: float, placement: tuple, gang: int
) -> tuple[float, int]:
    wait, gpus = 0.0, 0
    if not writes:
        return 0.0, 0
    for n, k in placement:
        got = writes.get(n)
        if got is None:
            continue
        until, writers = got
        if until <= now:
            del writes[n]
            continue
        use = min(k, writers, gang - gpus)
        if use > 0:
            gpus += use
            writes[n] = (until, writers - use)
        wait = max(wait, until - now)
    return wait, gpus


@pytest.mark.parametrize("seed", range(20))
def test_victim_wait_matches_the_node_by_node_lookup(seed: int) -> None:
    """Once every victim's write has ended the table is dropped at once; before that, starts
    wait and take writers exactly as the node-by-node lookup says."""
    rng = random.Random(seed)
    writes = {n: (rng.uniform(10, 100), rng.randint(1, 8)) for n in rng.sample(range(40), 12)}
    ref = dict(writes)
    books = _Writes(dict(writes))
    for now in sorted(rng.uniform(0, 130) for _ in range(15)):
        books.now = now
        nodes = rng.sample(range(40), rng.randint(1, 6))
        placement = tuple((n, rng.choice([1, 4, 8])) for n in nodes)
        gang = sum(k for _, k in placement)
        assert books._victim_wait(placement, gang) == _victim_wait_reference(
            ref, now, placement, gang
        )
        # Entries still live are the same; expired ones may be gone from one side only.
        assert {n: v for n, v in books._writes.items() if v[0] > now} == {
            n: v for n, v in ref.items() if v[0] > now
        }
    books.now = 200.0
    assert books._victim_wait(((0, 8),), 8) == (0.0, 0)
    assert books._writes == {}


@pytest.mark.parametrize("seed", range(10))
def test_blocker_counts_in_one_count_match_one_add_per_job(seed: int) -> None:
    """The twin books each pass's blockers by their first reason's code (the pass counted them,
    explain=False): the same counts, and codes new to the books land in the order of their
    first job, as one add per job did."""
    import testkit
    from cortex.scheduler.reasons import Code, Reason
    from cortex.scheduler.snapshot import Plan
    from cortex.sim.twin import SimConfig, Twin

    rng = random.Random(seed)
    codes = [Code.RESERVED_FOR_HEAD, Code.INSUFFICIENT_CAPACITY, Code.TOPOLOGY_UNAVAILABLE]
    codes += [Code.QUOTA_EXCEEDED]
    twin = Twin(testkit.TINY, [], SimConfig(days=1.0, failures=False))
    books = twin.metrics.blocked
    if seed % 2:
        books["ReservedForHead"] = 3
    want = dict(books)
    for _ in range(4):
        plan = Plan()
        blocked = [[Reason(rng.choice(codes)) for _ in range(rng.randint(0, 2))] for _ in range(30)]
        for reasons in blocked:  # as the walk counts them
            if reasons:
                c = reasons[0].code
                plan.first_codes[c] = plan.first_codes.get(c, 0) + 1
        plan.capacity_blocked = rng.randint(0, 3)
        twin._apply(plan)
        for reasons in blocked:  # the plain count, one add per job
            if reasons:
                want[reasons[0].code.value] = want.get(reasons[0].code.value, 0) + 1
        if plan.capacity_blocked:
            key = Code.INSUFFICIENT_CAPACITY.value
            want[key] = want.get(key, 0) + plan.capacity_blocked
        assert list(books.items()) == list(want.items())


def test_the_collector_is_set_for_a_run_and_restored_after_it() -> None:
    """During a run young objects are collected less often and the heap that existed is frozen;
    after it (an error included) the caller's settings are back, and a caller that froze
    objects of its own keeps them frozen."""
    import gc

    from cortex.gcscope import GC_YOUNG_THRESHOLD
    from cortex.sim.engine import gc_for_the_run

    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with gc_for_the_run():
        assert gc.get_threshold()[0] == max(before[0], GC_YOUNG_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), gc_for_the_run():
        raise RuntimeError("a failed run")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_for_the_run():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_runs_that_overlap_leave_the_collector_as_it_was_before_the_first() -> None:
    """Two runs overlapping (threads of one process): the second one in changes nothing, and
    the settings come back only when the last one is out."""
    import gc

    from cortex.gcscope import GC_YOUNG_THRESHOLD
    from cortex.sim.engine import gc_for_the_run

    before = gc.get_threshold()
    first, second = gc_for_the_run(), gc_for_the_run()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first one ends while the second still runs
    assert gc.get_threshold()[0] == max(before[0], GC_YOUNG_THRESHOLD)
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


class _Clock(RunBooks):
    def __init__(self, v: list[float], k: list[float], tick_s: float | None) -> None:
        self._clock_v, self._clock_k = v, k
        # pw None: ticks of one second; else a stand-in with the power config's tick
        self.pw = None if tick_s is None else SimpleNamespace(cfg=SimpleNamespace(tick_s=tick_s))
        self._clock_tick = 1.0 if tick_s is None else tick_s  # as _init_clock keeps it


def _clock_reference(c: _Clock, t: float) -> float:
    if not c._clock_v:
        return t
    tick = c.pw.cfg.tick_s if c.pw is not None else 1.0
    i = min(int(t / tick), len(c._clock_v) - 1)
    return c._clock_v[i] + c._clock_k[i] * (t - i * tick)


def _clock_inv_reference(c: _Clock, v: float) -> float:
    if not c._clock_v:
        return v
    tick = c.pw.cfg.tick_s if c.pw is not None else 1.0
    i = max(bisect.bisect_right(c._clock_v, v) - 1, 0)
    return i * tick + (v - c._clock_v[i]) / c._clock_k[i]


@pytest.mark.parametrize("seed", range(20))
def test_the_run_clock_and_its_inverse_equal_the_plain_formulas(seed: int) -> None:
    """The clock at every start and stop: index clamps written as comparisons; times on tick
    boundaries, past the last tick and before the first clock value read the same ticks."""
    rng = random.Random(seed)
    tick = rng.choice([None, 900.0, 60.0])
    step = 1.0 if tick is None else tick
    n = rng.randint(0, 40)
    k = [rng.choice([1.0, 0.97, rng.uniform(0.8, 1.0)]) for _ in range(n)]
    v, acc = [], rng.choice([0.0, 5.0])  # a first value above 0: some v fall before it
    for kk in k:
        v.append(acc)
        acc += kk * step
    c = _Clock(v, k, tick)
    horizon = (n + 3) * step
    ts = [rng.uniform(0.0, horizon) for _ in range(50)]
    ts += [i * step for i in range(n + 3)] + [0.0, horizon * 2]
    for t in ts:
        assert c._clock(t) == _clock_reference(c, t)
        assert c._clock_inv(t) == _clock_inv_reference(c, t)


@pytest.mark.parametrize("temperature_c", [None, 20.0, 45.0])
def test_the_twin_keeps_the_clock_of_its_weather_and_tick(temperature_c: float | None) -> None:
    """RunBooks._init_clock: the clock's value at each power tick sums the ticks before it,
    each slowed by its heat (none when no tick is slowed), at the power config's tick."""
    from cortex.fleet.spec import load_fleet_spec
    from cortex.fleet.topology import build
    from cortex.sim.power import PowerConfig
    from cortex.sim.twin import SimConfig, Twin

    topo = build(load_fleet_spec("tiny"))
    power = PowerConfig("none", temperature_c=temperature_c, tick_s=600.0)
    twin = Twin(topo, [], SimConfig(days=2.0, power=power))
    assert twin.pw is not None
    ks = [twin.pw.cooling.speed(float(t)) for t in twin.pw.temps]
    assert twin._clock_tick == 600.0
    if all(k == 1.0 for k in ks):
        assert (twin._clock_v, twin._clock_k) == ([], [])
        assert temperature_c == 20.0
    else:
        want, acc = [], 0.0
        for k in ks:
            want.append(acc)
            acc += k * 600.0
        assert (twin._clock_v, twin._clock_k) == (want, ks)
    plain = Twin(topo, [], SimConfig(days=2.0, power=None))
    assert (plain._clock_v, plain._clock_tick) == ([], 1.0)
