"""Scheduler scenario tables, part two: quota and borrowing limits, blocker reasons with their
numbers, rejection at submit, and backfill beside a fragmented head. Placements and start times
computed by hand, as in test_scheduler_scenarios.py (its docstring has the conventions)."""

from __future__ import annotations

from typing import Any

import pytest
from scenario_kit import (
    QUOTA,
    TINY,
    _cycle,
    _job,
    _nodes,
    _pend,
    _run,
    _setup,
    _twin,
    _use,
)

from cortex.fleet.topology import Topology
from cortex.scheduler.reasons import Code
from cortex.scheduler.snapshot import Plan
from cortex.sim.report import build_report
from cortex.workload.job import Job
from cortex.workload.states import JobState


# ---- quota and borrowing limits --------------------------------------------------------------
@pytest.mark.parametrize(
    ("a_nodes", "b_nodes", "team", "gpus", "expect"),
    [
        (5, 0, 0, 8, "start"),  # a: 40 + 8 = 48 = 32 nominal + 16 borrowable
        (5, 0, 0, 16, (16, "a", 40, 32, 16)),
        (5, 0, 0, 9, (16, "a", 40, 32, 16)),  # 9 GPUs hold two whole nodes
        (6, 0, 0, 1, (1, "a", 48, 32, 16)),
        (0, 2, 1, 1, (1, "b", 16, 16, 0)),  # b may not borrow at all
        (0, 1, 1, 8, "start"),  # b: 8 + 8 = its nominal 16
        (4, 0, 2, 32, "start"),  # c borrows without limit
    ],
)
def test_borrowing_limit_table(
    a_nodes: int, b_nodes: int, team: int, gpus: int, expect: str | tuple
) -> None:
    st, pend, pol = _setup(QUOTA, teams=("a", "b", "c"))
    _use(st, dict.fromkeys(range(a_nodes), 8), team=0)
    _use(st, dict.fromkeys(range(7, 7 - b_nodes, -1), 8), team=1)
    _pend(pend, 1, gpus, 10.0, team=team)
    plan = _cycle(st, pend, pol)
    if expect == "start":
        assert [s.job.id for s in plan.starts] == [1]
        return
    assert plan.starts == []
    (r,) = plan.blockers[1]
    need, queue, usage, nominal, limit = expect  # type: ignore[misc]
    assert r.code is Code.BORROWING_LIMIT
    assert r.detail == {"need": need, "flavor": "H100-SXM5", "queue": queue, "usage": usage,
                        "nominal": nominal, "limit": limit}  # fmt: skip
    assert r.message == (f"needs {need} H100-SXM5; queue {queue} uses {usage} of nominal "
                         f"{nominal} + borrowing limit {limit}")  # fmt: skip


def _over_the_limit() -> Plan:
    # a holds its ceiling (48) until 5000; c holds node 6 until 1000; node 7 is free. a asks
    # for 16 more (over 32 + 16), then c asks for 8 for 5000 s.
    st, pend, pol = _setup(QUOTA, teams=("a", "b", "c"))
    _run(st, 101, tuple((n, 8) for n in range(6)), end=5000.0, team=0)
    _run(st, 102, ((6, 8),), end=1000.0, team=2)
    _pend(pend, 1, 16, 100.0, team=0)
    _pend(pend, 2, 8, 5000.0, team=2)
    return _cycle(st, pend, pol)


def test_job_over_its_borrowing_limit_does_not_reserve_the_flavor() -> None:
    # Quota keeps job 1 from starting at any reserved time, so it must not hold back job 2.
    plan = _over_the_limit()
    assert _nodes(plan) == {2: [7]}
    assert all(r.code is not Code.RESERVED_FOR_HEAD for rs in plan.blockers.values() for r in rs)


def test_job_over_its_borrowing_limit_is_reported_as_such() -> None:
    (r,) = _over_the_limit().blockers[1]
    assert r.code is Code.BORROWING_LIMIT
    assert (r.detail["usage"], r.detail["nominal"], r.detail["limit"]) == (48, 32, 16)


def test_borrowing_limit_over_time() -> None:
    # a holds 48 (its ceiling) from t=0, so a's third job waits although 16 GPUs are free,
    # while c's job, arriving later, starts at once. a's job starts when a's first two end.
    jobs = [
        _job(1, 32, 1000, 0, team="a"),
        _job(2, 16, 1000, 0, team="a"),
        _job(3, 8, 100, 0, team="a"),
        _job(4, 8, 2000, 10, team="c"),
    ]
    tw = _twin(jobs, topo=QUOTA)
    starts = {j.id: (j.first_start_s, j.end_s) for j in jobs}
    assert starts == {1: (0, 1000), 2: (0, 1000), 3: (1000, 1100), 4: (10, 2010)}
    assert tw.metrics.blocked == {"BorrowingLimit": 2}  # cycles at t=0 and t=10


# ---- blocker reasons with their numbers ------------------------------------------------------
@pytest.mark.parametrize(
    ("used", "down", "gpus", "code", "detail", "message"),
    [
        (dict.fromkeys(range(7), 8), (), 16, Code.INSUFFICIENT_CAPACITY,
         {"need": 16, "free": 8}, "needs 16 H100-SXM5, 8 free"),
        (dict.fromkeys(range(7), 8), (), 12, Code.INSUFFICIENT_CAPACITY,
         {"need": 16, "free": 8}, "needs 16 H100-SXM5, 8 free"),
        (dict.fromkeys(range(8), 8), (), 1, Code.INSUFFICIENT_CAPACITY,
         {"need": 1, "free": 0}, "needs 1 H100-SXM5, 0 free"),
        ({4: 8}, (0, 1, 2, 3), 40, Code.INSUFFICIENT_CAPACITY,
         {"need": 40, "free": 24}, "needs 40 H100-SXM5, 24 free"),  # a down pod
        (dict.fromkeys(range(8), 2), (), 16, Code.TOPOLOGY_UNAVAILABLE,
         {"need": 16, "free": 48, "largest_block": 0, "block": "pod"},
         "needs 16 H100-SXM5, 48 free but fragmented; the largest free pod has 0"),
        (dict.fromkeys(range(8), 5), (), 4, Code.TOPOLOGY_UNAVAILABLE,
         {"need": 4, "free": 24, "largest_block": 3, "block": "node"},
         "needs 4 H100-SXM5, 24 free but fragmented; the largest free node has 3"),
        (dict.fromkeys(range(4, 8), 1), (), 40, Code.TOPOLOGY_UNAVAILABLE,
         {"need": 40, "free": 60, "largest_block": 32, "block": "pod"},
         "needs 40 H100-SXM5, 60 free but fragmented; the largest free pod has 32"),
    ],
    ids=["capacity", "capacity-rounded", "full", "down-pod", "fragmented-gang",
         "fragmented-node", "pod-too-small"],
)  # fmt: skip
def test_blocker_reasons_table(
    *,
    used: dict[int, int],
    down: tuple[int, ...],
    gpus: int,
    code: Code,
    detail: dict[str, int],
    message: str,
) -> None:
    st, pend, pol = _setup()
    for n in down:
        st.set_down(n)
    _use(st, used)
    _pend(pend, 1, gpus, 10.0)
    plan = _cycle(st, pend, pol)
    assert plan.starts == []
    (r,) = plan.blockers[1]
    assert r.code is code
    assert r.detail == {"flavor": "H100-SXM5", **detail}
    assert r.message == message
    assert plan.reasons_for(1) == [r]


# ---- rejection at submit ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("topo", "team", "gpus", "kw", "code", "detail"),
    [
        (TINY, "a", 72, {}, Code.NEVER_FITS, {"need": 72, "most": 64}),
        (TINY, "a", 65, {}, Code.NEVER_FITS, {"need": 65, "most": 64}),
        (TINY, "a", 64, {}, None, None),
        (TINY, "a", 128, {"elastic_min": 64}, None, None),  # its minimum fits
        (QUOTA, "a", 49, {}, Code.NEVER_FITS, {"need": 49, "most": 48}),  # 56 > 32 + 16
        (QUOTA, "a", 41, {}, None, None),  # 48: exactly a's ceiling
        (QUOTA, "b", 17, {}, Code.NEVER_FITS, {"need": 17, "most": 16}),
        (QUOTA, "c", 64, {}, None, None),
        (QUOTA, "zzz", 1, {}, Code.UNKNOWN_QUEUE, {"team": "zzz"}),
        (
            TINY,
            "a",
            1,
            {"priority_class": "urgent"},
            Code.UNKNOWN_PRIORITY_CLASS,
            {"priority_class": "urgent", "known": ["normal", "preemptible", "production"]},
        ),
        (TINY, "a", 1, {"flavors": ("B200-HGX",)}, Code.NO_FLAVOR, {"flavors": ["B200-HGX"]}),
    ],
)
def test_rejection_at_submit(
    *,
    topo: Topology,
    team: str,
    gpus: int,
    kw: dict[str, Any],
    code: Code | None,
    detail: dict | None,
) -> None:
    job = Job(1, "j", team, gpus, 100.0, submit_s=10.0, **kw)
    other = Job(2, "ok", "a", 8, 100.0, submit_s=20.0)
    tw = _twin([job, other], topo=topo)
    report = build_report(tw)
    assert other.state is JobState.COMPLETED
    if code is None:
        assert job.state is JobState.COMPLETED and tw.rejected == []
        return
    assert job.state is JobState.REJECTED
    assert job.first_start_s == -1
    assert job not in list(tw.pending)
    ((rj, reason),) = tw.rejected
    assert rj is job and reason.code is code and reason.detail == detail
    assert report["jobs"]["rejected_by_reason"] == {code.value: 1}
    assert report["jobs"]["pending_at_end"] == 0


def test_fragmented_head_leaves_no_extra_for_long_backfill() -> None:
    # Every node runs 6 GPUs (2 free each: 16 free in all), so a 4-GPU head is blocked by
    # topology, not count. Node 0's job ends at 1000, the others at 5000. Counting GPUs would
    # say 16 + 6 - 4 = 18 are spare at 1000, but where the head fits is unknown: a job that
    # runs past 1000 must wait (ReservedForHead), a job that ends before 1000 may start.
    st, pend, pol = _setup()
    for n in range(8):
        _run(st, 100 + n, ((n, 6),), end=1000.0 if n == 0 else 5000.0)
    _pend(pend, 1, 4, 100.0)
    _pend(pend, 2, 2, 3000.0)  # would end at 3000, after the head's reserved start
    _pend(pend, 3, 2, 500.0)  # ends at 500
    plan = _cycle(st, pend, pol)
    assert plan.blockers[1][0].code is Code.TOPOLOGY_UNAVAILABLE
    (r,) = plan.blockers[2]
    assert r.code is Code.RESERVED_FOR_HEAD and r.detail["shadow_s"] == 1000.0
    assert [s.job.id for s in plan.starts] == [3]
