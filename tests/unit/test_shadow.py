"""EASY backfill's shadow (cycle._shadow): when a blocked head's GPUs will be free if running
jobs end as estimated, and how many GPUs beyond its need are free then.

Fleet `tiny` (8 nodes x 8 GPUs) unless a case says otherwise; `now` is 0.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st_
from sortedcontainers import SortedList

import testkit
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.shadow import SHADOW_WALK_MAX
from cortex.scheduler.shadow import shadow as _shadow
from cortex.scheduler.state import ClusterState
from cortex.scheduler.statement import Statement


def _run(st: ClusterState, jid: int, placement: tuple, end: float) -> None:
    testkit.running_job(st, jid, placement, end=end)


def test_counts_free_gpus_then_ends_in_order_and_reports_the_extra() -> None:
    # 8 free (node 7); jobs end at 100 (16 GPUs) and 200 (24). A 20-GPU head: 8 + 16 = 24 >= 20
    # at 100, 4 left over.
    st, _, _ = testkit.setup_cycle()
    _run(st, 1, ((0, 8), (1, 8)), 100.0)
    _run(st, 2, ((2, 8), (3, 8), (4, 8)), 200.0)
    _run(st, 3, ((5, 8), (6, 8)), 900.0)
    assert _shadow(st, Statement(st), 0, 20, 0.0) == (100.0, 4)
    # Never earlier than now.
    assert _shadow(st, Statement(st), 0, 20, 150.0) == (150.0, 4)
    # More than the fleet holds: never.
    assert _shadow(st, Statement(st), 0, 72, 0.0) == (math.inf, 0)


def test_skips_jobs_the_statement_evicted_and_goes_on() -> None:
    # Job 1 (ending at 100) was evicted in this cycle: its GPUs are already counted free, so
    # the walk skips it and reaches job 2 at 200: 8 + 16 (evicted, now free) + 24 = 48 >= 40.
    st, _, _ = testkit.setup_cycle()
    one = testkit.running_job(st, 1, ((0, 8), (1, 8)), end=100.0)
    _run(st, 2, ((2, 8), (3, 8), (4, 8)), 200.0)
    _run(st, 3, ((5, 8), (6, 8)), 900.0)
    stmt = Statement(st)
    stmt.evict(one)
    assert _shadow(st, stmt, 0, 40, 0.0) == (200.0, 8)
    stmt.rollback()


def test_a_gang_blocked_by_topology_counts_from_zero() -> None:
    # 16 free but as 4 GPUs on each of nodes 0-3: a 16-GPU gang (2 whole nodes) cannot use
    # them, so the count starts from zero: 8 (job 10 at 100) + 7 (job 11 at 150) = 15 < 16,
    # + 8 (job 12 at 200) = 23: shadow 200, and no extra (counts cannot say where a
    # fragmented head fits).
    st, _, _ = testkit.setup_cycle()
    for n in range(4):
        _run(st, 20 + n, ((n, 4),), 900.0)
    _run(st, 10, ((4, 8),), 100.0)
    _run(st, 11, ((5, 7),), 150.0)
    _run(st, 24, ((5, 1),), 900.0)
    _run(st, 12, ((6, 8),), 200.0)
    _run(st, 13, ((7, 8),), 900.0)
    assert st.free_gpus[0] == 16
    assert _shadow(st, Statement(st), 0, 16, 0.0) == (200.0, 0)


def test_a_single_node_head_blocked_by_topology_keeps_the_free_count_and_no_extra() -> None:
    # 8 free as 4 + 4 (nodes 0, 1): an 8-GPU head fits no node, but the free GPUs still count
    # for a gang within one node: 8 + 4 (job 10 at 100) = 12 >= 8: shadow 100, extra 0.
    st, _, _ = testkit.setup_cycle()
    _run(st, 20, ((0, 4),), 900.0)
    _run(st, 21, ((1, 4),), 900.0)
    _run(st, 10, ((2, 4),), 100.0)
    _run(st, 22, ((2, 4),), 900.0)
    _run(st, 11, ((3, 8),), 200.0)
    _run(st, 12, tuple((n, 8) for n in range(4, 8)), 900.0)
    assert _shadow(st, Statement(st), 0, 8, 0.0) == (100.0, 0)


def test_the_walk_stops_after_its_limit_and_takes_the_end_reached() -> None:
    # 40 nodes, all busy: 320 one-GPU jobs ending at 1, 2, ..., 320. A head of 320 GPUs would
    # need every end; the walk gives up at index SHADOW_WALK_MAX (the 257th end, t = 257).
    spec = {"name": "w", "halls": [{"name": "h", "groups": [
        {"flavor": "H100-SXM5", "nodes": 40, "nodes_per_pod": 8}]}]}  # fmt: skip
    st, _, _ = testkit.setup_cycle(build(parse_fleet(spec, "test")))
    for i in range(320):
        _run(st, 1000 + i, ((i // 8, 1),), float(i + 1))
    assert _shadow(st, Statement(st), 0, 320, 0.0) == (float(SHADOW_WALK_MAX + 1), 0)


# ---- the memo of the last answer per flavor (RESULTS.md, section 57) ----


def _loop_reference(st: Any, f: int, need: int, now: float) -> tuple[float, int]:
    """`_shadow` as it was before section 57, nothing evicted, kept verbatim."""
    acc = st.free_gpus[f]
    fragmented = acc >= need
    if fragmented and need > st.gpn[f]:
        acc = 0
    for i, (end_s, _job_id, gpus) in enumerate(st.ends[f]):
        acc += gpus
        if acc >= need:
            return max(end_s, now), 0 if fragmented else acc - need
        if i >= SHADOW_WALK_MAX:
            return max(end_s, now), 0
    return math.inf, 0


_OP = st_.one_of(
    st_.tuples(st_.just("add"), st_.integers(0, 40), st_.sampled_from([1, 4, 8, 16, 64])),
    st_.tuples(st_.just("drop"), st_.integers(0, 10**6), st_.just(0)),
    st_.tuples(st_.just("ask"), st_.integers(0, 3000), st_.integers(0, 64)),
)


@settings(max_examples=300, deadline=None)
@given(
    base=st_.integers(0, 300),
    ops=st_.lists(st_.tuples(st_.integers(0, 1), _OP), max_size=60),
)
def test_the_memo_answers_as_the_walk_would_after_any_change(base: int, ops: list) -> None:
    """Two flavors; ends added and removed (at the front, inside and past the walk limit), free
    GPUs moved, and questions asked in between: every answer is the fresh walk's. Fails if
    the memo ignores the ends, the free count or the need."""
    st = SimpleNamespace(
        free_gpus=[0, 0], gpn=[8, 8], ends=[SortedList(), SortedList()], shadow_memo={}
    )
    for i in range(base):  # enough ends that the walk limit binds
        st.ends[i % 2].add((float(i), i, 8))
    next_id = 10**6
    stmt = SimpleNamespace(evicted=set())
    for f, (op, a, b) in ops:
        if op == "add":
            next_id += 1
            st.ends[f].add((float(a) * 7.5, next_id, b))
        elif op == "drop" and st.ends[f]:
            del st.ends[f][a % len(st.ends[f])]
        elif op == "ask":
            st.free_gpus[f] = b
            for now in (0.0, 100.0):
                assert _shadow(st, stmt, f, a, now) == _loop_reference(st, f, a, now)
