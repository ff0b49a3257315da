"""The Ray executor's pure parts, without Ray: the fleet read from node labels (hostile and
odd input included), the rank split over nodes, names, and the executor-neutral handle."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cortex.executors.nodes import NodeInfo, build_fleet
from cortex.executors.ray import gang as g
from cortex.executors.ray.fleet import read_nodes
from cortex.executors.spec import GangHandle, Handle, LaunchSpec, handle_from_dict


def raw(node_id: str, alive: bool = True, gpus: Any = 8, **labels: str) -> dict[str, Any]:
    return {
        "NodeID": node_id,
        "Alive": alive,
        "NodeManagerAddress": "127.0.0.9",
        "Resources": {"CPU": 4.0, "GPU": gpus} if gpus is not None else {"CPU": 4.0},
        "Labels": {"ray.io/node-id": node_id, **labels},
    }


def test_nodes_are_keyed_on_their_label_and_odd_ones_left_out_with_a_reason() -> None:
    view = read_nodes(
        [
            raw("h", gpus=None),  # the head: no label, no GPUs
            raw("a", **{"cortex.node": "n1", "cortex.pod": "p", "cortex.rack": "r"}),
            raw("b", gpus=2.5, **{"cortex.node": "n2"}),  # fractional GPUs
            raw("c", **{"cortex.node": "n3", "cortex.flavor": "TPU-v9"}),  # not in the catalog
            raw("d", gpus=4, **{"cortex.node": "n4"}),  # 4 GPUs; H100-SXM5 nodes have 8 here
            raw("e", **{"cortex.node": "x" * 300}),
            {"NodeID": "f", "Labels": None, "Resources": None},  # nothing at all
        ],
        "H100-SXM5",
    )
    assert list(view.nodes) == ["n1"]
    assert view.nodes["n1"] == NodeInfo("n1", "H100-SXM5", 8, "p", "r", True, "127.0.0.9")
    why = view.ignored
    assert why["h"] == "no cortex.node label" and why["f"] == "no cortex.node label"
    assert "no whole GPUs" in why["b"] and "not in the fleet catalog" in why["c"]
    assert why["d"] == "node n4: 4 GPUs, but its flavor H100-SXM5 has 8"
    assert "longer than 253" in why["e"]


def test_defaults_and_accelerator_type_flavor() -> None:
    node = raw("a", **{"cortex.node": "n1"})
    node["Resources"]["accelerator_type:H200"] = 1.0
    view = read_nodes([node], "H100-SXM5")
    # No pod or rack label: pod "default", a rack of its own; flavor from Ray's resource.
    assert view.nodes["n1"] == NodeInfo("n1", "H200-SXM", 8, "default", "n1", True, "127.0.0.9")


def test_a_rejoined_node_is_the_same_node_under_a_new_ray_id() -> None:
    view = read_nodes(
        [
            raw("old", alive=False, gpus=None, **{"cortex.node": "n1"}),
            raw("new", **{"cortex.node": "n1"}),
        ],
        "H100-SXM5",
    )
    assert view.ray_ids == {"n1": "new"} and view.nodes["n1"].alive
    down = read_nodes([raw("old", alive=False, gpus=None, **{"cortex.node": "n1"})], "H100-SXM5")
    assert down.nodes["n1"].alive is False


def dead(node_id: str, name: str, reason: Any, message: str = "") -> dict[str, Any]:
    r = raw(node_id, alive=False, gpus=None, **{"cortex.node": name})
    return {**r, "DeathReason": reason, "DeathReasonMessage": message}


def test_a_node_that_left_on_purpose_is_told_from_one_that_failed() -> None:
    # Ray's NodeDeathInfo.Reason: 1 expected termination, 2 unexpected, 3 drained for
    # preemption, 4 drained as idle (tests/ray checks the numbers against Ray).
    view = read_nodes(
        [
            dead("a", "n1", 3, "rack maintenance"),
            dead("b", "n2", 2, "raylet crashed"),
            dead("c", "n3", 4),
            dead("d", "n4", 1, "x" * 500),
            dead("e", "n5", [3]),  # not a number: no reason, never a crash
            dead("f", "n6", 3, "drained"),
            raw("g", **{"cortex.node": "n6"}),  # back under a new id: nothing planned now
        ],
        "H100-SXM5",
    )
    assert view.planned == {
        "n1": "drained by Ray (preemption): rack maintenance",
        "n3": "drained by Ray (idle)",
        "n4": "stopped by its operator: " + "x" * 200,  # the message is bounded
    }
    assert not view.nodes["n2"].alive and view.nodes["n6"].alive


def test_fleet_groups_nodes_in_a_stable_order() -> None:
    def n(name: str, pod: str) -> NodeInfo:
        return NodeInfo(name, "H100-SXM5", 8, pod, name, True)

    fleet = build_fleet([n("b2", "p2"), n("a1", "p1"), n("b1", "p2"), n("a2", "p1")])
    assert fleet.names == ["a1", "a2", "b1", "b2"]  # by pod, then name
    (group,) = fleet.spec.halls[0].groups
    assert (group.nodes, group.nodes_per_pod, group.nodes_per_rack) == (4, 2, 1)
    with pytest.raises(ValueError, match="no usable node"):
        build_fleet([])


@pytest.mark.parametrize(
    ("devices", "nprocs", "ranks"),
    [
        ((8, 8), 16, [(0, 1, 2, 3, 4, 5, 6, 7), (8, 9, 10, 11, 12, 13, 14, 15)]),
        ((8, 8), 4, [(0, 1), (2, 3)]),
        # 3 ranks over 8 + 8: 1.5 each, the tie goes to the first node.
        ((8, 8), 3, [(0, 1), (2,)]),
        # 6 ranks over 2 + 4 devices: 2 and 4.
        ((2, 4), 6, [(0, 1), (2, 3, 4, 5)]),
        # 2 ranks over 1 + 7 devices: every node gets one, though 7/8 of 2 rounds to 2.
        ((1, 7), 2, [(0,), (1,)]),
    ],
)
def test_ranks_split_over_nodes_by_devices(
    devices: tuple[int, ...], nprocs: int, ranks: list[tuple[int, ...]]
) -> None:
    nodes = tuple((f"n{i}", tuple(range(k))) for i, k in enumerate(devices))
    parts = g.split(nodes, nprocs)
    assert [p.ranks for p in parts] == ranks
    assert [p.node for p in parts] == [f"n{i}" for i in range(len(devices))]


def test_split_refuses_what_it_cannot_place() -> None:
    with pytest.raises(ValueError, match="nodes:"):
        g.split((), 4)
    with pytest.raises(ValueError, match="nprocs: 1 ranks cannot cover 2 nodes"):
        g.split((("a", (0,)), ("b", (0,))), 1)


def test_names_round_trip_and_foreign_names_are_not_ours() -> None:
    assert g.parse_name(g.pg_name(12, 3)) == (12, 3, None)
    assert g.parse_name(g.agent_name(12, 3, 1)) == (12, 3, 1)
    for name in ("cortex-1", "other-1-2", "cortex-1-2-x", "cortex--1-2", ""):
        assert g.parse_name(name) is None


def test_handles_of_both_kinds_come_back_from_their_dicts() -> None:
    local = Handle(1, 2, 100, 100, 5, "boot", "/r", "/r/o", "/r/e", (0, 1))
    stored = local.to_dict()
    assert "kind" not in stored  # as every handle stored before the Ray executor
    assert handle_from_dict(stored) == local
    gang = GangHandle(1, 2, "ray", "/r", "/r/o", "/r/e", (0, 1), {"pg": "cortex-1-2"})
    assert handle_from_dict(gang.to_dict()) == gang
    with pytest.raises(ValueError, match=r"handle\.payload"):
        handle_from_dict({**gang.to_dict(), "payload": [1]})
    with pytest.raises(ValueError, match=r"handle\.job_id"):
        handle_from_dict({**gang.to_dict(), "job_id": True})
    with pytest.raises(ValueError, match="handle:"):
        handle_from_dict([1, 2])  # type: ignore[arg-type]


def _spec(nodes: Any, devices: list[int]) -> LaunchSpec:
    return LaunchSpec(1, 1, ["true"], {}, None, devices, nprocs=2, nodes=nodes)


def test_launch_spec_checks_its_nodes() -> None:
    _spec((("a", (0,)), ("b", (0,))), [0, 1]).validate()
    with pytest.raises(ValueError, match="do not add up"):
        _spec((("a", (0,)),), [0, 1]).validate()
    with pytest.raises(ValueError, match="repeated node name"):
        _spec((("a", (0,)), ("a", (1,))), [0, 1]).validate()
    with pytest.raises(ValueError, match="non-negative"):
        _spec((("a", (-1,)), ("b", (0,))), [0, 1]).validate()
    with pytest.raises(ValueError, match="pairs"):
        _spec(("a",), [0]).validate()


@pytest.mark.parametrize("name", ["!node-a", "a b/../c", "-lead", "x" * 64, "n\n1"])
def test_a_label_outside_rays_value_syntax_is_left_out(name: str) -> None:
    """Found by review: JSON labels skip Ray's own check, and "!node-a" in a bundle's label
    selector means "not node-a" (the bundle could land on any node)."""
    view = read_nodes([raw("a", **{"cortex.node": name})], "H100-SXM5")
    assert view.nodes == {} and "not a valid label value" in view.ignored["a"]


@pytest.mark.parametrize("gpus", [float("nan"), float("inf")])
def test_a_non_finite_gpu_count_is_left_out(gpus: float) -> None:
    view = read_nodes([raw("a", gpus=gpus, **{"cortex.node": "n1"})], "H100-SXM5")
    assert view.nodes == {} and "no whole GPUs" in view.ignored["a"]


def test_a_stop_that_overtakes_the_start_starts_no_rank(tmp_path: Path) -> None:
    """Found by review: an actor runs concurrent calls in any order; a stop that came first
    set the kill deadline, then start spawned the ranks, SIGKILLed after the grace period with
    no SIGTERM (no checkpoint). Now no rank starts and the node reports exit 75."""
    from cortex.executors.ray.agent import NodeAgent

    agent = NodeAgent(1, 1, 0, "n1", [0, 1], str(tmp_path))
    agent.stop(5.0)
    assert agent.start(["sleep", "60"], {}, None, {"grace_s": 5.0}) == []
    verdict = agent.wait(5.0)
    assert verdict is not None and verdict["exit_code"] == 75 and agent.procs == {}


def test_a_node_that_cannot_open_its_logs_reports_a_failure(tmp_path: Path) -> None:
    """Found by review: a run dir the node cannot write (not on a shared file system) killed
    the watcher thread before any verdict: the gang stayed 'running' for good."""
    from cortex.executors.ray.agent import NodeAgent

    (tmp_path / "file").write_text("")
    agent = NodeAgent(1, 1, 0, "n1", [0, 1], str(tmp_path / "file" / "run"))
    agent.start(["true"], {}, None, {"grace_s": 1.0})
    verdict = agent.wait(10.0)
    assert verdict is not None and verdict["exit_code"] == 127
    assert verdict["failed_rank"] == 0


def test_drains_due_with_a_deadline_near_or_without_one_after_the_wait() -> None:
    from cortex.control.loop_fleet import drains_due

    deadlines = {"a": 10_000.0, "d": 20_000.0}
    # b drained (no deadline) since t=1000, c since t=1500; d also in undated: its deadline wins.
    undated = {"b": 1000.0, "c": 1500.0, "d": 0.0}
    kw = {"lead_s": 60.0, "after_s": 500.0}
    # t=1499: b's wait ends at 1000 + 500 = 1500, c's at 2000; a is due from 10000 - 60 = 9940.
    assert drains_due(deadlines, undated, 1499.0, **kw) == {}
    assert drains_due(deadlines, undated, 1500.0, **kw) == {"b": "none; stopped after 500 s"}
    # 10,000 s after the epoch is 02:46:40 on 1970-01-01; d (due from 19940) is not yet.
    assert drains_due(deadlines, undated, 9940.0, **kw) == {
        "a": "1970-01-01T02:46:40Z",
        "b": "none; stopped after 500 s",
        "c": "none; stopped after 500 s",
    }
    assert drains_due({}, {"b": 1000.0}, 1000.0, lead_s=0.0, after_s=0.0) == {
        "b": "none; stopped after 0 s"
    }


def _topo(nodes: list[NodeInfo]) -> Any:
    from cortex.fleet.topology import build

    return build(build_fleet(nodes, name="ray", keep_order=True).spec)


def test_pods_and_racks_are_the_labelled_ones_and_a_joined_node_lands_in_its_pod() -> None:
    h, b = "H100-SXM5", "B200-HGX"
    first = [
        NodeInfo("a", h, 8, "p1", "r1"),
        NodeInfo("b", h, 8, "p1", "r2"),
        NodeInfo("c", h, 8, "p2", "r1"),  # rack r1 of pod p2: not p1's r1
        NodeInfo("d", b, 8, "p1", "r9"),  # another flavor: a pod of its own, though named p1
    ]
    t = _topo(first)
    # Pods by first use: (H100, p1) 0, (H100, p2) 1, (B200, p1) 2; racks likewise.
    assert (t.node_pod, t.node_rack, t.n_pods, t.n_racks) == ([0, 0, 1, 2], [0, 1, 2, 3], 3, 4)
    assert t.pod_nodes == [(0, 1), (2,), (3,)] and t.pod_flavor == [0, 0, 1]
    # e joins after d (a later group, as membership appends it) labelled p2/r1: with c, in
    # pod 1 and rack 2; f names a new pod: pod 3, rack 4. Earlier ids unchanged.
    grown = _topo([*first, NodeInfo("e", h, 8, "p2", "r1"), NodeInfo("f", h, 8, "p3", "r1")])
    assert grown.node_pod == [0, 0, 1, 2, 1, 3] and grown.node_rack == [0, 1, 2, 3, 2, 4]
    assert grown.pod_nodes == [(0, 1), (2, 4), (3,), (5,)]
    assert grown.pod_flavor == [0, 0, 1, 0] and grown.n_racks == 5


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"pods": ["p1"]}, "give pods and racks together"),
        ({"pods": ["p1"], "racks": ["r1", "r2"]}, "one name per node (1), got 1 and 2"),
        ({"pods": [""], "racks": ["r"]}, "at least 1 character"),
        ({"pods": ["p" * 254], "racks": ["r"]}, "at most 253 characters"),
    ],
)
def test_pod_and_rack_labels_in_a_node_group_are_checked(extra: dict[str, Any], says: str) -> None:
    from pydantic import ValidationError

    from cortex.fleet.spec import NodeGroup

    with pytest.raises(ValidationError, match=re.escape(says)):
        NodeGroup(flavor="H100-SXM5", nodes=1, **extra)
