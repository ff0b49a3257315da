"""The books' shape of a placement (drive/power_books.py PowerBooks._shape_of) on a fleet without
rack caps is read without placement_shape (_fast_shape): a small placement in one frame and one
Python pass, a large whole-node one by one list comprehension over its nodes. It must be
placement_shape's answer exactly: the same node cap (inf), the same GPUs, and the same halls in
the same order with the same sums; a large one with a partial node, and any placement on a fleet
with rack caps (the node cap is the least over the nodes), read placement_shape itself."""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cortex.drive.power_books import SHAPE_MEMO_NODES
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.scheduler.power import _shape, placement_shape
from cortex.sim.power import PowerConfig, PowerRuntime

TOPO = build(load_fleet_spec("cortex-2024"))
UNCAPPED = PowerRuntime.build(TOPO, PowerConfig("full"), 86400.0)
CAPPED = PowerRuntime.build(TOPO, PowerConfig("full", rack_cap_kw=100.0), 86400.0)
# Nodes around the boundaries of the first three halls: placements that cross them
_B1 = TOPO.node_hall.index(1)
_B2 = TOPO.node_hall.index(2)
_NODES = [*range(_B1 - 40, _B1 + 40), *range(_B2 - 40, _B2 + 40)]


def _plain(pw: PowerRuntime, placement: tuple[tuple[int, int], ...]) -> tuple:
    return placement_shape(TOPO.node_hall, pw.node_max_cap_w, pw.min_node_cap_w, placement)


def _same(got: tuple, want: tuple) -> bool:
    return got[:2] == want[:2] and list(got[2].items()) == list(want[2].items())


@st.composite
def _placements(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    # up to 2.5 times SHAPE_MEMO_NODES: small and large (kept) placements alike
    least = draw(st.sampled_from([1, SHAPE_MEMO_NODES + 1]))
    nodes = draw(st.lists(st.sampled_from(_NODES), min_size=least, max_size=160, unique=True))
    whole = draw(st.sampled_from(["whole", "partial", "one partial"]))
    per_node = draw(st.integers(1, 8))  # a whole-node gang's GPUs per node
    gpus = [per_node if whole != "partial" else draw(st.integers(1, 8)) for _ in nodes]
    if whole == "one partial":  # a whole-node gang but for one node (the check's other branch)
        gpus[draw(st.integers(0, len(gpus) - 1))] = draw(st.integers(1, 8))
    return tuple(zip(nodes, gpus, strict=True))


@given(_placements())
@example(((_B1, 8), (_B1 - 1, 3), (_B1 + 1, 5), (_B1 - 2, 8)))  # hall 1 first, then 0, then 1
@example(((_B1 - 1, 2), (_B1 - 2, 8), (_B1, 4)))  # the last node alone in another hall
@example(tuple((n, 8) for n in range(_B1 - 40, _B1 + 40)))  # large, whole, two halls, in order
@example(tuple((n, 8) for n in [*range(_B1, _B1 + 40), *range(_B1 - 40, _B1)]))  # hall 1 first
@example(tuple((n, 8) for n in range(_B2 - 80, _B2)))  # large, whole, one hall
@example(tuple((n, 8 - (n == _B2 - 1)) for n in range(_B2 - 80, _B2)))  # large, one partial last
@settings(max_examples=400, deadline=None)
def test_a_shape_is_placement_shapes_answer(placement: tuple[tuple[int, int], ...]) -> None:
    assert UNCAPPED.min_node_cap_w == math.inf
    for pw in (UNCAPPED, CAPPED):
        want = _plain(pw, placement)
        assert _same(pw._shape_of(placement), want)
        assert _same(pw._shape_of(placement), want)  # a large one's kept shape
        if len(placement) > 1:  # admission's own path (one node: placement_shape directly)
            view = pw.view(0.0)
            assert _same(_shape(view, placement), want)


def test_shapes_by_hand() -> None:
    # Two whole nodes of hall 1, one of hall 0 between them and a partial one of hall 0: hall 1
    # first (its node comes first) with 16 GPUs, then hall 0 with 8 + 3; one hall alone: a sum.
    p = ((_B1, 8), (_B1 - 1, 8), (_B1 + 1, 8), (_B1 - 2, 3))
    assert _same(UNCAPPED._shape_of(p), (math.inf, 27, {1: 16, 0: 11}))
    q = ((_B1 + 3, 8), (_B1 + 1, 2), (_B1 + 2, 8))
    assert _same(UNCAPPED._shape_of(q), (math.inf, 18, {1: 18}))
    # With rack caps the node cap is the least over the nodes, not inf
    capped = CAPPED._shape_of(q)
    assert capped[0] == min(CAPPED.node_max_cap_w[n] for n, _ in q) < math.inf
    assert capped[1:] == (18, {1: 18})
    # Large whole-node placements: two halls, hall 1 named first, then one hall; one partial
    # node (3 GPUs) among whole ones: its sums
    n = SHAPE_MEMO_NODES + 1
    big = tuple((m, 8) for m in [*range(_B1, _B1 + n - 10), *range(_B1 - 10, _B1)])
    assert _same(UNCAPPED._shape_of(big), (math.inf, 8 * n, {1: 8 * (n - 10), 0: 80}))
    one = tuple((m, 8) for m in range(_B1, _B1 + n))
    assert _same(UNCAPPED._shape_of(one), (math.inf, 8 * n, {1: 8 * n}))
    four = tuple((m, 4) for m in range(_B1 + n, _B1 + 2 * n))  # four GPUs a node
    assert _same(UNCAPPED._shape_of(four), (math.inf, 4 * n, {1: 4 * n}))
    partial = ((_B1 - 1, 3), *one[1:])
    assert _same(UNCAPPED._shape_of(partial), (math.inf, 8 * n - 5, {0: 3, 1: 8 * n - 8}))
