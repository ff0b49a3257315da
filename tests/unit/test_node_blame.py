"""Which nodes a failed run is blamed on (control/node_health.blame), from the exit records the
executors write, including hostile detail text."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cortex.control.node_health import (
    KIND_CLUSTER,
    KIND_JOB,
    KIND_LOST,
    KIND_NAMED,
    blame,
    score,
)
from cortex.drive.node_health import QuarantineRules

RAN_ON = ["n1", "n2"]


@pytest.mark.parametrize(
    ("exit_rec", "want"),
    [
        # The executor names the node: a strike.
        ({"node": "n2", "detail": "rank 3 died"}, (["n2"], True, KIND_NAMED)),
        # The Ray executor's node loss (executors/ray/executor.py): only that node, no strike
        # (its loss is the strike, once).
        ({"detail": "node n2 lost: ActorDiedError"}, (["n2"], False, KIND_LOST)),
        # The Ray executor's failed rank: the node whose rank failed first.
        ({"detail": "node n1: exit code 1"}, (["n1"], False, KIND_JOB)),
        # Nothing named: every node it ran on.
        ({"detail": "exit code 1"}, (["n1", "n2"], False, KIND_JOB)),
        # A node it never ran on, in text the job may have written: ignored.
        ({"detail": "node n9 lost: x"}, (["n1", "n2"], False, KIND_JOB)),
        ({"detail": "node ../etc: x"}, (["n1", "n2"], False, KIND_JOB)),
        ({"detail": None}, (["n1", "n2"], False, KIND_JOB)),
        ({"node": "", "detail": ""}, (["n1", "n2"], False, KIND_JOB)),
        # The Ray head lost (executors/ray/headloss.py): the cluster, no node, no strike, and
        # no job failure (drive/runs.py blame "cluster"), whatever node the detail names.
        ({"cluster_lost": True, "detail": "Ray head lost (x)"}, ([], False, KIND_CLUSTER)),
        ({"cluster_lost": True, "node": "n2", "detail": "node n2 lost"}, ([], False, KIND_CLUSTER)),
        # Only the executor's flag says so: text a job could write does not, nor a truthy value.
        ({"detail": "Ray head lost (x)"}, (["n1", "n2"], False, KIND_JOB)),
        ({"cluster_lost": "yes", "detail": ""}, (["n1", "n2"], False, KIND_JOB)),
    ],
)
def test_blame(exit_rec: dict, want: tuple) -> None:
    assert blame(SimpleNamespace(**exit_rec), RAN_ON) == want


def test_a_named_node_is_bounded() -> None:
    nodes, strike, _ = blame(SimpleNamespace(node="x" * 1000, detail=""), RAN_ON)
    assert strike and len(nodes[0]) == 200  # the node_failures column's width


def test_score_falls_by_one_strike_share_and_is_zero_when_drained() -> None:
    r = QuarantineRules(strikes=4, window_s=100.0, burn_in_s=0.0)
    assert [score(k, False, r) for k in (0, 1, 3, 4, 9)] == [1.0, 0.75, 0.25, 0.0, 0.0]
    assert score(0, True, r) == 0.0
