"""PowerView.floor_gpu_w (admission's cheap bound, asked at every try: PowerBooks._floor_gpu_w
behind the one functools.cache the books' views share): asked in any order, kinds and flavors
interleaved, again after it kept them, each answer must be the formula's for that kind and
flavor, as fresh books give it."""

from __future__ import annotations

import itertools

from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim.power import PowerConfig, PowerRuntime

TOPO = build(load_fleet_spec("cortex-2026"))  # flavors of different watts


def _formula(pw: PowerRuntime, kind: str, f: int) -> float:
    per = min(pw.levels[-1] * TOPO.accelerators[f].tdp_w, pw.draw_w(kind, f))
    return min(per, pw.min_node_cap_w) - TOPO.accelerators[f].idle_w


def test_each_kind_and_flavor_gets_its_own_floor_in_any_order() -> None:
    kinds = ("llm", "vision", "generic", "eval")
    flavors = range(len(TOPO.flavors))
    # A floor of 90% of TDP is above some kinds' draw: kinds differ as well as flavors
    for cfg in (
        PowerConfig("full", levels=(1.0, 0.9)),
        PowerConfig("full", levels=(1.0, 0.9), rack_cap_kw=200.0),
    ):
        pw = PowerRuntime.build(TOPO, cfg, 86400.0)
        want = {(k, f): _formula(pw, k, f) for k in kinds for f in flavors}
        assert len(set(want.values())) > len(kinds)  # flavors differ within a kind
        pairs = list(itertools.product(kinds, flavors))
        for order in (pairs, pairs[::-1], pairs[1::2] + pairs[::2]):
            books = PowerRuntime.build(TOPO, cfg, 86400.0)
            floor = books.view(0.0).floor_gpu_w
            assert floor is not None
            for _ in range(2):  # asked again: the kept answer
                for k, f in order:
                    assert floor(k, f) == want[(k, f)], (k, f)
                    assert books._floor_gpu_w(k, f) == want[(k, f)], (k, f)
