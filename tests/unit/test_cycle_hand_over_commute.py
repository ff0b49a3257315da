"""`Statement.hand_over` keeps a preempting pass whose log is not in the driver's order when
every start logged before an eviction commutes with it (`Statement._commutes`: another flavor,
or pods apart and the start's nodes and pods left without free capacity): the side-by-side runs
of test_cycle_hand_over (every plan and every index, in its iteration order, against a rollback
and the driver's stops and starts) on one flavor and on two, with passes kept that way and
passes refused by it both counted (bench/RESULTS.md, section 113)."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
import test_cycle_hand_over as th
import test_cycle_hand_over_flavors as thf

from cortex.scheduler.statement import Statement
from cortex.workload.job import Job

WORLDS = {"one_flavor": th._world, "two_flavors": thf._world}


@pytest.mark.parametrize("world", sorted(WORLDS))
@pytest.mark.parametrize("profile", sorted(th.POLICIES))
def test_a_pass_kept_out_of_the_drivers_order_is_the_drivers_state(
    profile: str, world: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {True: 0, False: 0}
    real = Statement._commutes

    def counted(self: Statement, log: Any) -> bool:
        got = real(self, log)
        seen[got] += 1
        return got

    monkeypatch.setattr(Statement, "_commutes", counted)
    monkeypatch.setattr(th, "_world", WORLDS[world])
    for seed in range(60):
        th._run(seed, th.POLICIES[profile])
    assert seen[True] > 0 and seen[False] > 0


def _moves_world(seed: int, fleet: Any) -> tuple[Any, dict[int, Any]]:
    """th._world's running jobs (partial nodes, two-node gangs) on `fleet`, pending none."""
    st, _, jobs = th._world(seed, th.POLICIES["priority"], fleet=fleet, border=11)
    return st, {j: v for j, v in jobs.items() if j in st.running}


def _free_placement(st: Any, rng: random.Random) -> tuple[int, Any] | None:
    """A random placement on what is free now: one to three whole free nodes of one flavor,
    or part of one node's free GPUs."""
    f = rng.randrange(len(st.gpn))
    g = st.gpn[f]
    nodes = [n for n in st.flavor_node_ids[f] if st.node_free[n] > 0 and n not in st.cordoned]
    whole = [n for n in nodes if st.node_free[n] == g]
    if whole and rng.random() < 0.5:
        got = sorted(rng.sample(whole, rng.randint(1, min(3, len(whole)))))
        return f, tuple((n, g) for n in got)
    if not nodes:
        return None
    n = rng.choice(nodes)
    return f, ((n, rng.randint(1, st.node_free[n])),)


def _moves(seed: int, fleet: Any) -> tuple[bool, bool]:
    """A random log of evictions and starts on the statement, against the same moves in the
    driver's order (evictions first) on a twin state: (hand_over kept it, states equal)."""
    rng = random.Random(seed)
    a, running = _moves_world(seed, fleet)
    b, running_b = _moves_world(seed, fleet)
    sa, sb = Statement(a), Statement(b)
    log: list[tuple[str, Any, Any]] = []
    for i in range(rng.randint(2, 9)):
        left = [j for j in sorted(running) if all(x[1].id != j for x in log if x[0] == "e")]
        if left and rng.random() < 0.5:
            job = running[rng.choice(left)]
            sa.evict(job)
            log.append(("e", job, None))
            continue
        got = _free_placement(a, rng)
        if got is None:
            continue
        job = Job(5000 + i, f"s{i}", "a", sum(k for _, k in got[1]), 100.0)
        job.queue_idx = rng.randrange(2)
        sa.allocate(job, got[0], got[1])
        log.append(("s", job, got))
    for kind, job, _ in log:
        if kind == "e":
            sb.evict(running_b[job.id])
    for kind, job, got in log:
        if kind == "s":
            sb.allocate(job, got[0], got[1])
    plan = SimpleNamespace(
        preemptions=[SimpleNamespace(job=j) for k, j, _ in log if k == "e"],
        starts=[SimpleNamespace(job=j) for k, j, _ in log if k == "s"],
    )
    # A plan whose evictions or starts the log holds in another order is not the driver's.
    for key in ("preemptions", "starts"):
        items = getattr(plan, key)
        if len({id(x.job) for x in items}) > 1:
            other = SimpleNamespace(**{**vars(plan), key: items[::-1]})
            assert not sa.hand_over(other, False)  # type: ignore[arg-type]
    kept = sa.hand_over(plan, False)  # type: ignore[arg-type]
    same = th._state_key(a)[:4] == th._state_key(b)[:4]
    return kept, same


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_moves_kept_out_of_order_leave_the_drivers_state(world: str) -> None:
    fleet = th.FLEET if world == "one_flavor" else thf.TWO
    count = {(k, s): 0 for k in (True, False) for s in (True, False)}
    for seed in range(600):
        kept, same = _moves(seed, fleet)
        assert same or not kept, seed
        count[kept, same] += 1
    # Kept out of order, and refused where the order does change an index: the check matters.
    assert count[True, True] > 0 and count[False, False] > 0, count
