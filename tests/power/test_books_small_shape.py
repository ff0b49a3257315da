"""The books' shape of a small placement (drive/power_books.py PowerBooks._shape_of) on a fleet
without rack caps is read in one frame and one Python pass (_uncapped_shape), not through
placement_shape; it must be placement_shape's answer exactly: the same node cap (inf), the same
GPUs, and the same halls in the same order with the same sums. A fleet with rack caps still
reads placement_shape (the node cap is the least over the nodes)."""

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
    nodes = draw(
        st.lists(st.sampled_from(_NODES), min_size=1, max_size=SHAPE_MEMO_NODES, unique=True)
    )
    whole = draw(st.booleans())
    return tuple((n, 8 if whole else draw(st.integers(1, 8))) for n in nodes)


@given(_placements())
@example(((_B1, 8), (_B1 - 1, 3), (_B1 + 1, 5), (_B1 - 2, 8)))  # hall 1 first, then 0, then 1
@example(((_B1 - 1, 2), (_B1 - 2, 8), (_B1, 4)))  # the last node alone in another hall
@settings(max_examples=400, deadline=None)
def test_a_small_shape_is_placement_shapes_answer(placement: tuple[tuple[int, int], ...]) -> None:
    assert UNCAPPED.min_node_cap_w == math.inf
    for pw in (UNCAPPED, CAPPED):
        want = _plain(pw, placement)
        assert _same(pw._shape_of(placement), want)
        if len(placement) > 1:  # admission's own path (one node: placement_shape directly)
            view = pw.view(0.0)
            assert _same(_shape(view, placement), want)


def test_small_shapes_by_hand() -> None:
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
