"""The heatmap when a pod's nodes are not consecutive in node order (a node that joined later
with a pod label takes the next index, after other pods' nodes): its cells are sent and drawn
in topology order (`views.display_order`), so a pod is one block, and the page maps a cell back
to its node for the tooltip and the click. Here the fleet file labels alternate nodes into
two pods, which gives the same shape without a join."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from uikit import FLAVOR, GPN, LiveUi, Page, UiEnv, cell_screen, fleet, serving

from cortex.control.ui import views
from cortex.fleet.spec import FleetSpec, HallSpec, NodeGroup
from cortex.fleet.topology import build

WAIT_MS = 60_000  # generous: see uikit.Page
# Nodes 0, 2, 4, 6 in pod p1; 1, 3, 5, 7 in pod p2.
PODS = ["p1", "p2"] * 4
ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


def _spec() -> FleetSpec:
    group = NodeGroup(
        flavor=FLAVOR, nodes=8, gpus_per_node=GPN, nodes_per_pod=4, nodes_per_rack=4,
        pods=PODS, racks=[f"r-{p}" for p in PODS],
    )  # fmt: skip
    return FleetSpec(name="ui-interleaved", halls=[HallSpec(name="h1", groups=[group])])


def _env(tmp_path: Path) -> UiEnv:
    return UiEnv(f"sqlite:///{tmp_path / 'cortex.db'}", tmp_path, spec=_spec())


def test_cells_are_sent_in_pod_order_with_the_map_back_to_nodes(tmp_path: Path) -> None:
    env = _env(tmp_path)
    try:
        topo = env.svc.loop.topo
        assert [topo.node_pod[n] for n in range(8)] == [0, 1] * 4  # the shape under test
        c = env.login(env.fsd)
        meta = c.get("/ui/heatmap/meta").json()
        assert meta["order"] == ORDER
        assert meta["pod_start"] == [0, 4]  # two blocks; in node order it was 8 one-node pods
        env.ex.report("gpu-00003", False)  # node 3 lost: at position 5 of the cells
        env.svc.loop.tick()
        got = list(c.get("/ui/heatmap.bin").content)
        assert got == [views.IDLE] * 5 + [views.DOWN] + [views.IDLE] * 2
    finally:
        env.svc.close()


@pytest.mark.parametrize("when", ["during", "before"])
def test_a_node_joining_while_the_bytes_are_read_does_not_fail_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # A join sets the loop's topology first and rebuilds the cluster state later in that tick,
    # so a request can see the grown topology with the old states ("before"), or the loop can
    # swap it in while the request reads the states ("during"). The order of the grown fleet
    # then indexed past the states (IndexError, a 500 on the dashboard). The bytes of the nodes
    # read are sent, in their order; the page sees the count change at its next refresh.
    env = _env(tmp_path)
    loop = env.svc.loop
    old = loop.topo
    grown = FleetSpec(name="grown", halls=[HallSpec(name="h1", groups=[NodeGroup(
        flavor=FLAVOR, nodes=10, gpus_per_node=GPN, nodes_per_pod=4, nodes_per_rack=4,
        pods=[*PODS, "p1", "p2"], racks=[f"r-{p}" for p in [*PODS, "p1", "p2"]],
    )])])  # fmt: skip
    states = views.node_states

    def joined_meanwhile(lp: object) -> object:
        got = states(lp)
        loop.topo = build(grown)
        return got

    try:
        env.ex.report("gpu-00003", False)  # node 3 lost: at position 5 of the cells
        loop.tick()
        c = env.login(env.fsd)
        if when == "during":
            monkeypatch.setattr(views, "node_states", joined_meanwhile)
        else:
            loop.topo = build(grown)
        r = c.get("/ui/heatmap.bin")
        assert r.status_code == 200
        assert list(r.content) == [views.IDLE] * 5 + [views.DOWN] + [views.IDLE] * 2
    finally:
        loop.topo = old
        env.svc.close()


@pytest.mark.parametrize("when", ["during", "before"])
@pytest.mark.parametrize("color", ["power", "temp", "cooling"])
def test_a_node_joining_while_the_power_colors_are_read_does_not_fail_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str, color: str
) -> None:
    # The same gap for the colors computed from the power books: they sized arrays by the
    # grown topology and mixed them with the old states (`idle[10] * free[8]`, `out[10][down[8]]`),
    # a 500 until the tick rebuilt the states. The nodes the states cover are sent, as above.
    env = UiEnv(f"sqlite:///{tmp_path / 'cortex.db'}", tmp_path, spec=_spec(), **POWER)
    loop = env.svc.loop
    old = loop.topo
    states = views.node_states

    def joined_meanwhile(lp: object) -> object:
        got = states(lp)
        loop.topo = build(_grown())
        return got

    try:
        env.ex.report("gpu-00003", False)
        loop.tick()
        c = env.login(env.fsd)
        want = c.get(f"/ui/heatmap.bin?color={color}")
        assert want.status_code == 200 and len(want.content) == 8
        if when == "during":
            monkeypatch.setattr(views, "node_states", joined_meanwhile)
        else:
            loop.topo = build(_grown())
        r = c.get(f"/ui/heatmap.bin?color={color}")
        assert r.status_code == 200
        assert r.content == want.content
        assert r.content[5] == views.USED_DOWN
    finally:
        loop.topo = old
        env.svc.close()


def _grown() -> FleetSpec:
    pods = [*PODS, "p1", "p2"]
    group = NodeGroup(
        flavor=FLAVOR, nodes=10, gpus_per_node=GPN, nodes_per_pod=4, nodes_per_rack=4,
        pods=pods, racks=[f"r-{p}" for p in pods],
    )  # fmt: skip
    return FleetSpec(name="grown", halls=[HallSpec(name="h1", groups=[group])])


def test_a_fleet_in_pod_order_sends_no_order() -> None:
    assert views.display_order(build(fleet())) is None


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveUi]:
    with serving(_env(tmp_path)) as srv:
        yield srv


def test_a_pod_is_one_block_and_a_cell_finds_its_node(page: Page, live: LiveUi) -> None:
    env = live.env
    env.ex.report("gpu-00003", False)
    page.login(env.fsd)
    page.page.wait_for_function(
        "() => { const h = window.cortexHeatmap; if (h && h.refresh) h.refresh();"
        " return h && h.states && h.states[5] === 3; }",
        polling=300,
        timeout=WAIT_MS,
    )
    page.page.select_option("#heat-layout", "pods")
    page.page.wait_for_function("() => window.cortexHeatmap.layout.how === 'pods'")
    xs = page.page.evaluate("() => [...Array(8).keys()].map(i => cortexHeatmap.origin(i)[0])")
    # Pod p1's nodes (even) all left of pod p2's (odd): two blocks side by side.
    assert max(xs[0::2]) < min(xs[1::2])
    x, y = cell_screen(page, 3)
    page.page.mouse.move(x, y)
    tip = page.page.inner_text("#heat-tip")
    assert "node #3" in tip and "pod 1" in tip and "down" in tip
    page.page.mouse.click(x, y)
    card = page.page.wait_for_selector("#node-card[data-index='3']", timeout=WAIT_MS)
    assert card is not None and "gpu-00003" in card.inner_text()
    page.shot("heatmap-interleaved-pods")
    page.assert_clean()
