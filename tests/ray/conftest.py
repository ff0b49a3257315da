"""The Ray tests run on a real cluster: skipped, with the reason, only when `ray` is not
installed (`pip install -e '.[ray]'`; .ci/run installs it, so CI runs them)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Before Ray's import, as cortex.executors.ray sets it (it may come later): a Ray call that
# outlives a test's cluster or its scripted Ray must fail, never start a local cluster in the
# pytest process (its driver ends the whole run with os._exit(1) when that cluster goes).
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
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
