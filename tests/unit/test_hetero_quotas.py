"""Per-cluster-queue flavor quotas (fleet YAML `flavor_quotas`): resolution to GPUs, the quota
check, and bad input naming the field (in the library and through the CLI, exit 2)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from clikit import cortex_batch
from cortex.errors import InputError
from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.admission import QuotaCheck
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.reasons import Code
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job

# 10 H200 nodes (80 GPUs) and 10 H100 nodes (80 GPUs).
FLEET: dict[str, Any] = {
    "name": "fq",
    "halls": [
        {
            "name": "h",
            "groups": [{"flavor": "H200-SXM", "nodes": 10}, {"flavor": "H100-SXM5", "nodes": 10}],
        }
    ],
    "queues": {
        "cluster_queues": [
            # vision: most of the H200s, few H100s and no borrowing of H100s.
            {
                "name": "vision",
                "nominal_share": 0.5,
                "flavor_quotas": {
                    "H200-SXM": {"nominal_share": 0.75},
                    "H100-SXM5": {"nominal_gpus": 8, "borrowing_limit_gpus": 0},
                },
            },
            {
                "name": "lang",
                "nominal_share": 0.5,
                "borrowing_limit_share": 0.5,
                "flavor_quotas": {"H200-SXM": {"nominal_share": 0.25}},
            },
        ]
    },
}


def _with(path: list[str | int], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(FLEET)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def test_flavor_quotas_resolve_to_gpus() -> None:
    topo = build(parse_fleet(copy.deepcopy(FLEET), "test"))
    qc = QueueConfig.build(topo.spec.queues, topo)
    vision, lang = qc.queues
    h200, h100 = topo.flavors.index("H200-SXM"), topo.flavors.index("H100-SXM5")
    # vision: 0.75 * 80 = 60 H200, 8 H100 (its flavor quota beats its 0.5 share), borrows
    # no H100s and (no limit given) any H200s.
    assert (vision.nominal[h200], vision.nominal[h100]) == (60, 8)
    assert (vision.borrowing_limit[h200], vision.borrowing_limit[h100]) == (None, 0)
    # lang: 0.25 * 80 = 20 H200, its share 0.5 * 80 = 40 H100; borrowing 0.5 * 80 = 40 each.
    assert (lang.nominal[h200], lang.nominal[h100]) == (20, 40)
    assert lang.borrowing_limit == (40, 40)


def test_quota_check_stops_vision_at_its_h100_quota() -> None:
    topo = build(parse_fleet(copy.deepcopy(FLEET), "test"))
    qc = QueueConfig.build(topo.spec.queues, topo)
    st = ClusterState(topo, qc)
    pend = PendingQueues(2, lambda j: (j.id,))
    snap = Snapshot(0.0, st, pend, lambda _k, _f: 1.0, lambda _j, _f, _g: 1.0)
    h200, h100 = topo.flavors.index("H200-SXM"), topo.flavors.index("H100-SXM5")
    job = Job(1, "v", "vision", 16, 1.0)
    job.queue_idx = 0
    # 16 H100s > 8 nominal + 0 borrowing; 16 H200s are well inside 60.
    r = QuotaCheck().check(snap, job, h100, 16)
    assert r is not None and r.code is Code.BORROWING_LIMIT
    assert (r.detail["nominal"], r.detail["limit"]) == (8, 0)
    assert QuotaCheck().check(snap, job, h100, 8) is None
    assert QuotaCheck().check(snap, job, h200, 16) is None


FQ = ["queues", "cluster_queues", 0, "flavor_quotas"]
BAD = [
    # (id, data, field named)
    ("unknown-flavor", _with([*FQ, "B200-HGX"], {"nominal_share": 0.1}),
     "queues.cluster_queues[0].flavor_quotas.B200-HGX"),
    ("share-over-1", _with([*FQ, "H200-SXM"], {"nominal_share": 1.5}),
     "queues.cluster_queues[0].flavor_quotas.H200-SXM.nominal_share"),
    # 0.75 + 0.5 of the H200s: the second queue's entry tips it over.
    ("shares-sum-over-1", _with(["queues", "cluster_queues", 1, "flavor_quotas", "H200-SXM"],
                                {"nominal_share": 0.5}),
     "queues.cluster_queues[1].flavor_quotas.H200-SXM.nominal_share"),
    # 8 + 0.5 * 80 = 48 <= 80 H100s is fine; 76 + 40 = 116 is not.
    ("gpus-over-flavor", _with([*FQ, "H100-SXM5"], {"nominal_gpus": 76}),
     "queues.cluster_queues[1].nominal_share"),
    ("share-and-gpus", _with([*FQ, "H100-SXM5"], {"nominal_gpus": 8, "nominal_share": 0.1}),
     "queues.cluster_queues[0].flavor_quotas.H100-SXM5"),
    ("negative-limit", _with([*FQ, "H100-SXM5"], {"borrowing_limit_gpus": -1}),
     "queues.cluster_queues[0].flavor_quotas.H100-SXM5.borrowing_limit_gpus"),
    ("unknown-field", _with([*FQ, "H100-SXM5"], {"lending_limit": 3}),
     "queues.cluster_queues[0].flavor_quotas.H100-SXM5.lending_limit"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_flavor_quota_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as info:
        parse_fleet(data, "bad.yaml")
    assert info.value.field == field
    assert info.value.reason


def test_bad_flavor_quotas_exit_2_with_one_line(tmp_path: Path) -> None:
    import yaml

    calls = []
    for name, data, _ in BAD[:3]:
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
        calls.append((["fleet", "show", f"{name}.yaml"], tmp_path))
    for (name, _, field), proc in zip(BAD[:3], cortex_batch(calls), strict=True):
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr
        assert f"{name}.yaml" in lines[0] and field in lines[0], lines[0]
