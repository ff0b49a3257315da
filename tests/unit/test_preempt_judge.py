"""`PriorityReclaim.judge`, the victim rule with what depends only on the preemptor read once per
search (RESULTS.md, section 113), answers as the rule it replaced did, victim by victim: the
rule as it stood before (`_eligible_before`, kept here as the oracle) over random queues
(minimum runtimes, preemption budgets, nominal quotas, usage over and under them), classes,
flavors and both reclaim modes. `eligible` is the judge asked once, so the control plane and
the twin's search keep one rule."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from cortex.scheduler.placement import alloc_size
from cortex.scheduler.preemption import PriorityReclaim, protected

GPN = (8, 4)  # two flavors of different node sizes: alloc_size differs from the job's GPUs


def _queue_borrows(snap: Any, victim: Any) -> bool:
    f, q, st = victim.run_flavor, victim.queue_idx, snap.state
    return st.usage[q][f] > st.queues.queues[q].nominal[f]


def _borrowing(snap: Any, job: Any, victim: Any) -> bool:
    st = snap.state
    f = victim.run_flavor
    q = st.queues.queues[victim.queue_idx]
    mine = st.queues.queues[job.queue_idx]
    return (
        st.usage[victim.queue_idx][f] > q.nominal[f]
        and st.usage[job.queue_idx][f] + job.gpus <= mine.nominal[f]
    )


def _eligible_before(reclaim_any: bool, snap: Any, job: Any, victim: Any) -> bool:
    """PriorityReclaim.eligible as it was before the judge (main 3f1b72b)."""
    # The live `protected` (hetero and LAS ask it; the judge inlines it): a change to either
    # that the other does not follow fails here.
    if protected(snap, victim):
        return False
    if reclaim_any and victim.queue_idx != job.queue_idx and not _queue_borrows(snap, victim):
        return False
    if victim.priority < job.priority:
        return True
    if victim.queue_idx == job.queue_idx:
        return False
    if not reclaim_any or victim.priority == job.priority:
        return victim.priority == job.priority and _borrowing(snap, job, victim)
    st = snap.state
    f = victim.run_flavor
    alloc = alloc_size(job.gpus, st.gpn[f])
    return st.usage[job.queue_idx][f] + alloc <= st.queues.queues[job.queue_idx].nominal[f]


def _world(rng: random.Random) -> Any:
    queues = [
        SimpleNamespace(
            index=i,
            min_runtime_s=rng.choice([0.0, 600.0, 3600.0]),
            preemption_budget=rng.choice([None, None, 1, 2]),
            nominal=tuple(rng.choice([0, 8, 16, 32]) for _ in GPN),
        )
        for i in range(rng.randint(1, 4))
    ]
    usage = [[max(0, q.nominal[f] + rng.randint(-16, 8)) for f in range(2)] for q in queues]
    st = SimpleNamespace(queues=SimpleNamespace(queues=queues), usage=usage, gpn=list(GPN))
    return SimpleNamespace(state=st, now_s=10_000.0)


def _job(rng: random.Random, snap: Any) -> Any:
    return SimpleNamespace(
        queue_idx=rng.randrange(len(snap.state.queues.queues)),
        priority=rng.choice([10, 100, 1000]),
        gpus=rng.choice([1, 4, 8, 12, 16]),
        run_start_s=snap.now_s - rng.choice([0.0, 599.0, 600.0, 601.0, 3600.0, 1e5]),
        evictions=rng.randint(0, 2),
        run_flavor=rng.randrange(2),
    )


def test_the_judge_answers_as_the_rule_before_it() -> None:
    rng = random.Random(113)
    seen: set[tuple[bool, bool]] = set()
    for _ in range(400):
        snap = _world(rng)
        for reclaim_any in (False, True):
            pol = PriorityReclaim(reclaim_any=reclaim_any)
            job = _job(rng, snap)
            judge = pol.judge(snap, job)  # type: ignore[arg-type]
            for _ in range(20):
                v = _job(rng, snap)
                want = _eligible_before(reclaim_any, snap, job, v)
                assert judge(v) is want, (reclaim_any, vars(job), vars(v))
                assert pol.eligible(snap, job, v) is want  # type: ignore[arg-type]
                seen.add((reclaim_any, want))
    # Both answers in both modes, so the comparison is not vacuous.
    assert seen == {(False, False), (False, True), (True, False), (True, True)}
