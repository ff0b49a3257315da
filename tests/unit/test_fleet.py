"""Fleets: the presets load and build to their published sizes, the topology cuts groups into
pods, racks and halls as the spec says, and bad fleet specs raise InputError naming the field."""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cortex.errors import InputError
from cortex.fleet.power import PowerModel
from cortex.fleet.spec import PRESETS, FleetSpec, load_fleet_spec, parse_fleet
from cortex.fleet.topology import Topology, build
from cortex.power.cooling import CoolingModel


def _fleet(*halls: list[Any], **extra: Any) -> dict[str, Any]:
    """A fleet dict with one hall per argument, each a list of node groups."""
    return {
        "name": "t",
        "halls": [{"name": f"h{i}", "groups": groups} for i, groups in enumerate(halls)],
        **extra,
    }


def _build(data: dict[str, Any]) -> Topology:
    return build(parse_fleet(data, "test.yaml"))


def _peak_mw(topo: Topology) -> float:
    it = PowerModel.for_topology(topo).peak_it_w(topo.flavor_gpus())
    cool = CoolingModel.for_pue(topo.spec.site.pue)
    return cool.facility_w(it, it, cool.design_temp_c) / 1e6


# ---- presets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_loads_and_builds(preset: str) -> None:
    spec = load_fleet_spec(preset)
    assert isinstance(spec, FleetSpec) and spec.name == preset
    topo = build(spec)
    assert topo.n_nodes == sum(g.nodes for h in spec.halls for g in h.groups)
    assert topo.total_gpus == sum(g.nodes * g.gpus_per_node for h in spec.halls for g in h.groups)
    assert len(topo.node_pod) == len(topo.node_rack) == len(topo.node_hall) == topo.n_nodes
    assert sorted(n for nodes in topo.pod_nodes for n in nodes) == list(range(topo.n_nodes))
    assert topo.hall_names == tuple(h.name for h in spec.halls)
    assert _peak_mw(topo) > 0


def test_preset_files_match_the_preset_list() -> None:
    presets = resources.files("cortex.fleet").joinpath("presets").iterdir()
    names = [p.name.removesuffix(".yaml") for p in presets if p.name.endswith(".yaml")]
    assert sorted(names) == sorted(PRESETS)


def test_cortex_2024_has_100k_gpus_half_h100_half_h200() -> None:
    topo = build(load_fleet_spec("cortex-2024"))
    assert topo.total_gpus == 100_000
    assert topo.n_nodes == 12_500
    assert dict(zip(topo.flavors, topo.flavor_gpus(), strict=True)) == {
        "H100-SXM5": 50_000,
        "H200-SXM": 50_000,
    }


def test_colossus_memphis_has_100k_h100() -> None:
    topo = build(load_fleet_spec("colossus-memphis"))
    assert topo.flavors == ("H100-SXM5",)
    assert topo.total_gpus == 100_000


def test_cortex_2026_peak_facility_power_is_about_500_mw() -> None:
    topo = build(load_fleet_spec("cortex-2026"))
    assert _peak_mw(topo) == pytest.approx(500.0, rel=0.10)


# ---- topology --------------------------------------------------------------------------------
def _runs(values: list[int]) -> list[int]:
    """Lengths of the runs of equal consecutive values."""
    out: list[int] = []
    for i, v in enumerate(values):
        if i and v == values[i - 1]:
            out[-1] += 1
        else:
            out.append(1)
    return out


def test_100_nodes_in_pods_of_32_give_32_32_32_4() -> None:
    topo = _build(_fleet([{"flavor": "H100-SXM5", "nodes": 100, "nodes_per_pod": 32}]))
    assert topo.n_pods == 4
    assert [len(p) for p in topo.pod_nodes] == [32, 32, 32, 4]
    assert _runs(topo.node_pod) == [32, 32, 32, 4]
    assert topo.node_pod == sorted(topo.node_pod)
    # Racks of 4 (the default) tile each pod: 8 + 8 + 8 + 1.
    assert topo.n_racks == 25
    assert _runs(topo.node_rack) == [4] * 25


def test_racks_never_span_pods() -> None:
    # 10 nodes per pod and 4 per rack: each pod holds racks of 4, 4 and 2.
    topo = _build(
        _fleet([{"flavor": "H100-SXM5", "nodes": 25, "nodes_per_pod": 10, "nodes_per_rack": 4}])
    )
    assert [len(p) for p in topo.pod_nodes] == [10, 10, 5]
    assert _runs(topo.node_rack) == [4, 4, 2, 4, 4, 2, 4, 1]
    assert topo.n_racks == 8
    for rack in range(topo.n_racks):
        pods = {topo.node_pod[n] for n in range(topo.n_nodes) if topo.node_rack[n] == rack}
        assert len(pods) == 1


def test_halls_and_groups_get_their_own_pods() -> None:
    topo = _build(
        _fleet(
            [
                {"flavor": "H100-SXM5", "nodes": 6, "nodes_per_pod": 4},
                {"flavor": "H200-SXM", "nodes": 3, "nodes_per_pod": 4},
            ],
            [{"flavor": "H100-SXM5", "nodes": 5, "nodes_per_pod": 4}],
        )
    )
    assert topo.flavors == ("H100-SXM5", "H200-SXM")
    assert [len(p) for p in topo.pod_nodes] == [4, 2, 3, 4, 1]
    assert topo.pod_hall == [0, 0, 0, 1, 1]
    assert topo.pod_flavor == [0, 0, 1, 0, 0]
    assert topo.node_hall == [0] * 9 + [1] * 5
    assert topo.node_flavor == [0] * 6 + [1] * 3 + [0] * 5
    for p, nodes in enumerate(topo.pod_nodes):
        assert all(topo.node_pod[n] == p for n in nodes)
        assert {topo.node_hall[n] for n in nodes} == {topo.pod_hall[p]}
        assert {topo.node_flavor[n] for n in nodes} == {topo.pod_flavor[p]}
    assert topo.flavor_nodes() == [11, 3]
    assert topo.flavor_gpus() == [88, 24]
    assert topo.total_gpus == 112


def test_gpus_per_node_and_overhead_follow_the_group() -> None:
    topo = _build(
        _fleet(
            [
                {
                    "flavor": "B200-GB200",
                    "nodes": 36,
                    "gpus_per_node": 4,
                    "nodes_per_pod": 18,
                    "nodes_per_rack": 18,
                    "node_overhead_w": 123.0,
                }
            ]
        )
    )
    assert topo.flavor_gpus_per_node == (4,)
    assert topo.total_gpus == 144
    assert topo.n_pods == 2 and topo.n_racks == 2
    assert topo.node_overhead_w == [123.0] * 36


# ---- bad specs -------------------------------------------------------------------------------
GROUP = {"flavor": "H100-SXM5", "nodes": 4}


def _with_group(**changes: Any) -> dict[str, Any]:
    group = {**GROUP, **changes}
    return _fleet([{k: v for k, v in group.items() if v is not None}])


def _without(key: str) -> dict[str, Any]:
    data = _fleet([GROUP])
    del data[key]
    return data


def _queues(*queues: dict[str, Any]) -> dict[str, Any]:
    return _fleet([GROUP], queues={"cluster_queues": list(queues)})


def _hall(**changes: Any) -> dict[str, Any]:
    data = _fleet([GROUP])
    data["halls"][0].update(changes)
    return data


# (id, fleet data, the field InputError must name, with list indices written `.0`)
BAD_SPECS = [
    ("unknown-flavor", _with_group(flavor="Z9000"), "halls.0.groups.0.flavor"),
    ("zero-nodes", _with_group(nodes=0), "halls.0.groups.0.nodes"),
    ("negative-nodes", _with_group(nodes=-4), "halls.0.groups.0.nodes"),
    ("nodes-not-a-number", _with_group(nodes="many"), "halls.0.groups.0.nodes"),
    ("fractional-nodes", _with_group(nodes=4.5), "halls.0.groups.0.nodes"),
    ("zero-gpus-per-node", _with_group(gpus_per_node=0), "halls.0.groups.0.gpus_per_node"),
    ("zero-nodes-per-pod", _with_group(nodes_per_pod=0), "halls.0.groups.0.nodes_per_pod"),
    ("zero-nodes-per-rack", _with_group(nodes_per_rack=0), "halls.0.groups.0.nodes_per_rack"),
    ("negative-overhead", _with_group(node_overhead_w=-1.0), "halls.0.groups.0.node_overhead_w"),
    ("unknown-group-field", _with_group(colour="blue"), "halls.0.groups.0.colour"),
    (
        "mixed-node-sizes",
        _fleet([GROUP, {**GROUP, "gpus_per_node": 4}]),
        "halls.0.groups.1.gpus_per_node",
    ),
    ("missing-halls", _without("halls"), "halls"),
    ("missing-name", _without("name"), "name"),
    ("empty-halls", _fleet(), "halls"),
    ("empty-groups", _fleet([]), "halls.0.groups"),
    ("empty-hall-name", _hall(name=""), "halls.0.name"),
    ("negative-cooling", _hall(cooling_mw=-1.0), "halls.0.cooling_mw"),
    (
        "duplicate-hall-names",
        _fleet([GROUP]) | {"halls": [{"name": "h", "groups": [GROUP]}] * 2},
        "halls",
    ),
    ("unknown-top-field", _fleet([GROUP], colour="blue"), "colour"),
    ("pue-below-1", _fleet([GROUP], site={"pue": 0.9}), "site.pue"),
    ("unknown-site-field", _fleet([GROUP], site={"colour": "blue"}), "site.colour"),
    ("zero-storage", _fleet([GROUP], storage_write_gbps=0), "storage_write_gbps"),
    (
        "shares-over-1",
        _queues({"name": "a", "nominal_share": 0.7}, {"name": "b", "nominal_share": 0.7}),
        "queues",
    ),
    ("duplicate-queue", _queues({"name": "a"}, {"name": "a"}), "queues"),
    ("bad-queue-name", _queues({"name": "A b"}), "queues.cluster_queues.0.name"),
    (
        "queue-flavor-not-in-fleet",
        _queues({"name": "a", "nominal_gpus": {"B200-HGX": 8}}),
        "queues.cluster_queues.0.nominal_gpus",
    ),
    ("group-not-a-mapping", _fleet([5]), "halls.0.groups.0"),
]  # fmt: skip


def _normal(field: str) -> str:
    """`halls[0].groups[1]` and `halls.0.groups.1` name the same field."""
    return re.sub(r"\[(\d+)\]", r".\1", field)


@pytest.mark.parametrize(
    ("data", "field"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_raises_input_error_naming_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as info:
        parse_fleet(copy.deepcopy(data), "bad.yaml")
    err = info.value
    assert err.source == "bad.yaml"
    assert _normal(err.field) == field
    assert err.reason
    assert str(err).startswith("bad.yaml: ") and "\n" not in str(err)


@pytest.mark.parametrize("data", [None, [], ["name: x"], "name: x", 3], ids=repr)
def test_a_fleet_that_is_not_a_mapping_is_an_input_error(data: Any) -> None:
    with pytest.raises(InputError) as info:
        parse_fleet(data, "bad.yaml")
    assert info.value.field == "<root>"


def test_boolean_node_count_is_rejected() -> None:
    with pytest.raises(InputError) as info:
        parse_fleet(_with_group(nodes=True), "bad.yaml")
    assert _normal(info.value.field) == "halls.0.groups.0.nodes"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: x\nhalls: [\n", "<yaml>"),
        ("", "<root>"),
        ("- a\n- b\n", "<root>"),
        ("name: x\nhalls:\n  - name: h\n    groups: [{flavor: H100-SXM5, nodes: -1}]\n", "nodes"),
    ],
    ids=["yaml-syntax", "empty-file", "a-list", "negative-nodes"],
)
def test_bad_fleet_files_raise_input_error(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_fleet_spec(path)
    assert info.value.source == str(path)
    assert info.value.field.endswith(field)


def test_missing_file_that_is_not_a_preset() -> None:
    with pytest.raises(InputError) as info:
        load_fleet_spec("no-such-fleet")
    assert info.value.field == "<file>"
    assert "cortex-2024" in info.value.reason  # lists the presets


def test_a_file_fleet_round_trips_to_the_same_topology(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    spec = load_fleet_spec("tiny")
    path.write_text(spec.model_dump_json())  # JSON is YAML
    again = build(load_fleet_spec(path))
    topo = build(spec)
    assert again.spec == spec
    assert (again.node_pod, again.node_rack, again.node_hall) == (
        topo.node_pod,
        topo.node_rack,
        topo.node_hall,
    )
