"""The Ray tests run on a real cluster: skipped, with the reason, only when `ray` is not
installed (`pip install -e '.[ray]'`; .ci/run installs it, so CI runs them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")

from raykit import LoopbackCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    """A head (no GPUs, no labels) and two 8-GPU nodes, node-a and node-b, in pod p1."""
    c = LoopbackCluster()
    try:
        c.add("node-a", **{"cortex.pod": "p1", "cortex.rack": "r1"})
        c.add("node-b", **{"cortex.pod": "p1", "cortex.rack": "r2"})
        c.cluster.wait_for_nodes()
        yield c
    finally:
        c.shutdown()
