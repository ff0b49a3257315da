"""QueueConfig (scheduler/queues.py): queue shares and per-flavor quotas resolved to GPUs, the
default queues without a spec, and the lookup of a team's queue. Numbers derived by hand."""

from __future__ import annotations

import pytest

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.scheduler.queues import QueueConfig

# 8 H200 nodes (64 GPUs) and 4 H100 nodes (32 GPUs).
GROUPS = [{"flavor": "H200-SXM", "nodes": 8, "nodes_per_pod": 4},
          {"flavor": "H100-SXM5", "nodes": 4, "nodes_per_pod": 4}]  # fmt: skip


def _topo(queues: dict | None = None) -> Topology:
    data: dict = {"name": "q", "halls": [{"name": "h", "groups": GROUPS}]}
    if queues is not None:
        data["queues"] = queues
    return build(parse_fleet(data, "test"))


def _flavors(topo: Topology) -> tuple[int, int]:
    return topo.flavors.index("H200-SXM"), topo.flavors.index("H100-SXM5")


def test_each_quota_source_resolves_to_gpus() -> None:
    topo = _topo({
        "cohort": "research",
        "priority_classes": {"high": 7, "low": 1},
        "min_runtime_s": 120.0,
        "cluster_queues": [
            # a: a share of 0.5 everywhere, but 12 H100s by count at queue level.
            {"name": "a", "nominal_share": 0.5, "nominal_gpus": {"H100-SXM5": 12}},
            # b: a share of 0.25 and a borrowing share of 0.5, except on H200 where its flavor
            # quota gives a borrowing share of 0.125.
            {"name": "b", "nominal_share": 0.25, "borrowing_limit_share": 0.5,
             "flavor_quotas": {"H200-SXM": {"borrowing_limit_share": 0.125}}},
        ],
    })  # fmt: skip
    qc = QueueConfig.build(topo.spec.queues, topo)
    a, b = qc.queues
    h200, h100 = _flavors(topo)
    # a: 0.5 * 64 = 32 H200; 12 H100 by count (not 0.5 * 32 = 16); no limit given: None.
    assert (a.nominal[h200], a.nominal[h100]) == (32, 12)
    assert a.borrowing_limit == (None, None)
    # b: 0.25 * 64 = 16 H200, 0.25 * 32 = 8 H100; limits 0.125 * 64 = 8 H200 (the flavor
    # quota's share wins), 0.5 * 32 = 16 H100 (the queue's share).
    assert (b.nominal[h200], b.nominal[h100]) == (16, 8)
    assert (b.borrowing_limit[h200], b.borrowing_limit[h100]) == (8, 16)
    assert (a.index, b.index, a.name, b.name) == (0, 1, "a", "b")
    # The cohort owns the whole fleet: 64 H200, 32 H100.
    assert (qc.cohort_nominal[h200], qc.cohort_nominal[h100]) == (64, 32)
    assert qc.cohort == "research"
    assert qc.priority_classes == {"high": 7, "low": 1} and qc.min_runtime_s == 120.0


def test_a_flavor_quota_overrides_the_queue_level_count() -> None:
    topo = _topo({"cluster_queues": [
        {"name": "a", "nominal_share": 0.5, "nominal_gpus": {"H100-SXM5": 12},
         "flavor_quotas": {"H100-SXM5": {"nominal_share": 0.25, "borrowing_limit_gpus": 3}}},
    ]})  # fmt: skip
    (a,) = QueueConfig.build(topo.spec.queues, topo).queues
    h200, h100 = _flavors(topo)
    # H100: the flavor quota's 0.25 * 32 = 8 beats the queue's 12; its limit is 3 by count.
    assert (a.nominal[h100], a.borrowing_limit[h100]) == (8, 3)
    # H200 has no flavor quota: the queue's 0.5 * 64 = 32, no limit.
    assert (a.nominal[h200], a.borrowing_limit[h200]) == (32, None)


def test_without_a_spec_each_team_gets_an_equal_share() -> None:
    topo = _topo()
    h200, h100 = _flavors(topo)
    qc = QueueConfig.build(None, topo, ["b", "a", "b"])
    # Two distinct teams, sorted: 1/2 each of 64 H200 = 32 and of 32 H100 = 16; unlimited.
    assert qc.names == ("a", "b")
    assert [(q.nominal[h200], q.nominal[h100]) for q in qc.queues] == [(32, 16), (32, 16)]
    assert all(q.borrowing_limit == (None, None) for q in qc.queues)
    assert qc.cohort == "default"


def test_without_a_spec_or_teams_there_is_one_default_queue() -> None:
    topo = _topo()
    h200, h100 = _flavors(topo)
    qc = QueueConfig.build(None, topo)
    assert qc.names == ("default",) and qc.index("default") == 0
    (q,) = qc.queues
    assert (q.nominal[h200], q.nominal[h100]) == (64, 32)  # the whole fleet: share 1/1


def test_index_of_an_unknown_team_names_it() -> None:
    qc = QueueConfig.build(None, _topo(), ["a", "b"])
    assert (qc.index("a"), qc.index("b")) == (0, 1)
    with pytest.raises(KeyError) as err:
        qc.index("zeta")
    assert err.value.args == ("zeta",)
