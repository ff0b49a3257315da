"""The books' per-GPU draw at a cap level (drive/power_jobs.py `_ladder_w`, the pass view's
`ladder_w`, read at every admission try under a policy) is kept by kind, flavor and node cap in
nested dicts: every answer must be the ladder's own, whatever was asked before, with the memo
emptied (the live loop's regrow) and on two flavors whose ladders differ."""

from __future__ import annotations

import math
import random

import pytest

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.sim.power import PowerConfig, PowerRuntime

KINDS = ("llm", "fsd-video", "generic", "optimus-policy")
# Two flavors of different TDP (their ladders differ at every level), racks of each.
FLEET = build(
    parse_fleet(
        {
            "name": "two-flavors",
            "site": {"name": "lab", "power_cap_mw": 1.0, "pue": 1.2},
            "halls": [
                {
                    "name": "h1",
                    "groups": [
                        {"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4},
                        {"flavor": "B200-HGX", "nodes": 8, "nodes_per_pod": 4},
                    ],
                }
            ],
        },
        "test",
    )
)


def test_ladder_w_is_the_ladders_per_gpu_draw() -> None:
    pw = PowerRuntime.build(FLEET, PowerConfig("full"), 86400.0)
    caps = [math.inf, 500.0, 650.0, 900.0]  # node caps: none, and rack budgets' (finite)
    rng = random.Random(7)
    seen = set()
    for i in range(600):
        kind, flavor = rng.choice(KINDS), rng.randrange(len(FLEET.flavors))
        cap, level = rng.choice(caps), rng.randrange(len(pw.levels))
        want = pw._ladder(kind, flavor, 1, cap)[0][level]
        assert pw._ladder_w(kind, flavor, level, cap) == want
        seen.add((kind, flavor, cap))
        if i == 300:
            pw._per_cache = {}  # the live loop's regrow: a fresh memo
    # Answers that differ by each key's part: the memo may not mix kinds, flavors or caps.
    assert len(seen) == len(KINDS) * 2 * len(caps)
    assert len({pw._ladder_w(k, f, 0, c) for k, f, c in seen}) > 7
    assert pw._ladder_w("llm", 0, 0, 500.0) != pw._ladder_w("llm", 0, 0, math.inf)
    assert pw._ladder_w("llm", 0, 0, math.inf) != pw._ladder_w("llm", 1, 0, math.inf)
    assert pw._ladder_w("llm", 1, 0, math.inf) != pw._ladder_w("generic", 1, 0, math.inf)
    with pytest.raises(IndexError):
        pw._ladder_w("llm", 0, len(pw.levels), math.inf)
