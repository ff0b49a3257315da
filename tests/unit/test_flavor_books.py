"""The GPU-hour books by flavor add up: each flavor's categories sum to its installed
GPU-seconds, and each category summed over the flavors is the fleet's (sim/books.py), with
and without power caps and hot spares, on a two-flavor fleet where both flavors work, fail
and get preempted."""

from __future__ import annotations

import pytest

from cortex.fleet.spec import parse_fleet
from cortex.fleet.topology import build
from cortex.sim.books import books_gpu_s, books_gpu_s_by_flavor, categories
from cortex.sim.power import PowerConfig
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job

# Two flavors in two halls, 8-GPU nodes in pods of 4, one partial pod (4+2 H200 nodes).
MIXED = build(
    parse_fleet(
        {
            "name": "two-flavors",
            "halls": [
                {"name": "h1", "groups": [{"flavor": "H100-SXM5", "nodes": 8, "nodes_per_pod": 4}]},
                {"name": "h2", "groups": [{"flavor": "H200-SXM", "nodes": 6, "nodes_per_pod": 4}]},
            ],
        },
        "test",
    )
)

DAYS = 1.5
CASES = {
    "off": {},
    "full": {"power": PowerConfig(policy="full", site_cap_mw=0.09)},
    "spares": {"hot_spares_per_pod": 1},
}


def _jobs() -> list[Job]:
    """Small gangs pinned to each flavor or to either, production work arriving late enough to
    preempt research work (a queue kept busy on both flavors)."""
    pins = (("H100-SXM5",), ("H200-SXM",), ())
    jobs = []
    for i in range(160):
        prod = i % 5 == 4
        jobs.append(
            Job(i, f"j{i}", ("fsd", "research")[i % 2], (8, 16, 4, 32)[i % 4],
                3600.0 * (2 + i % 7), priority_class="production" if prod else "research",
                flavors=pins[i % 3], submit_s=(i * 700.0 if prod else i * 300.0),
                ckpt_write_s=60.0)
        )  # fmt: skip
    return sorted(jobs, key=lambda j: j.submit_s)


def _run(case: str) -> Twin:
    cfg = SimConfig(days=DAYS, seed=5, failure_scale=300.0, **CASES[case])  # type: ignore[arg-type]
    return Twin(MIXED, _jobs(), cfg).run()


@pytest.fixture(scope="module")
def runs() -> dict[str, Twin]:
    return {c: _run(c) for c in CASES}


@pytest.mark.parametrize("case", list(CASES))
def test_flavor_categories_sum_to_the_flavor_and_to_the_fleet(
    runs: dict[str, Twin], case: str
) -> None:
    tw = runs[case]
    fleet = books_gpu_s(tw)
    by = books_gpu_s_by_flavor(tw)
    cats = categories(tw)
    assert set(by) == {"H100-SXM5", "H200-SXM"}
    installed = fleet["installed"]
    for name, gpus in zip(MIXED.flavors, MIXED.flavor_gpus(), strict=True):
        b = by[name]
        assert b["installed"] == gpus * DAYS * 86_400
        assert sum(b[c] for c in cats) == pytest.approx(b["installed"], rel=1e-9)
        for c in cats:
            assert b[c] >= -1e-9 * installed, (name, c)
        assert b["productive"] > 0 and b["restart_overhead"] > 0, name  # both flavors work
    # Enough happened for the sums to be a real test: failures, preemptions, nodes down.
    for b in by.values():
        assert b["rework_after_failures"] > 0 and b["down"] > 0
    assert fleet["rework_after_preemptions"] > 0
    for line in (*cats, "installed"):
        flavors = sum(b[line] for b in by.values())
        assert flavors == pytest.approx(fleet[line], abs=1e-9 * installed), line
    # The memo lines against the twin's own integrals.
    m = tw.metrics
    assert sum(b["allocated"] for b in by.values()) == pytest.approx(m.alloc_gpu_s, rel=1e-9)
    assert sum(b["in_progress_at_end"] for b in by.values()) == pytest.approx(
        m.in_progress_gpu_s, abs=1e-9 * installed
    )


def test_spares_and_caps_land_on_their_flavor(runs: dict[str, Twin]) -> None:
    spares = books_gpu_s_by_flavor(runs["spares"])
    # One spare node per pod: two H100 pods and two H200 pods, 8 GPUs a node.
    held_h = {"H100-SXM5": 2 * 8, "H200-SXM": 2 * 8}
    for name, gpus in held_h.items():
        # Spares leave the pool only on a swap, for a while: at most the whole run held out.
        assert 0 < spares[name]["hot_spare"] <= gpus * DAYS * 86_400 + 1e-6
    full = books_gpu_s_by_flavor(runs["full"])
    assert sum(b["lost_to_power_caps"] for b in full.values()) > 0


def test_report_gives_the_books_by_flavor_in_gpu_hours(runs: dict[str, Twin]) -> None:
    r = build_report(runs["off"])
    by = r["gpu_hours_by_flavor"]
    assert set(by) == set(MIXED.flavors)
    for line, fleet in r["gpu_hours"].items():
        assert sum(b[line] for b in by.values()) == pytest.approx(fleet, rel=1e-5, abs=1e-6)
