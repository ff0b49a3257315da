"""What a synthetic load is a share of: the fleet's GPUs in H100 work, or its H100-equivalent
capacity (`fleet_capacity`), and the warning when the first offers more than the second."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from clikit import cortex
from cortex.errors import InputError
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.workload.job import Job
from cortex.workload.sources import load_workload, resolve_load_basis
from cortex.workload.synthetic import describe, fleet_capacity, generate, kind_work_shares
from cortex.workload.throughput import ThroughputTable

MIXED = """\
name: mixed
description: 8 H100 nodes and {dojo} Dojo nodes
site: {{name: lab, power_cap_mw: 5, pue: 1.2}}
halls:
  - name: hall-1
    groups:
      - {{flavor: H100-SXM5, nodes: 8, gpus_per_node: 8, nodes_per_pod: 4, nodes_per_rack: 2}}
      - {{flavor: Dojo-D1, nodes: {dojo}, gpus_per_node: 25, nodes_per_pod: {dojo},
          nodes_per_rack: 1}}
"""
WARNING = re.compile(r"warning: --load ([\d.]+) offers (\d+\.\d\d)x the fleet's capacity")


def _key(j: Job) -> tuple[object, ...]:
    return (j.name, j.team, j.gpus, j.work_s, j.kind, j.submit_s, j.flavors, j.ckpt_write_s)


def _work_by_kind(seeds: tuple[int, ...]) -> dict[str, float]:
    work: dict[str, float] = {}
    for seed in seeds:
        for j in generate(days=60, seed=seed, fleet_gpus=100_000):
            work[j.kind] = work.get(j.kind, 0.0) + j.gpus * j.work_s
    return work


def test_kind_shares_are_those_the_generator_draws() -> None:
    # Derived from the band and team constants; checked against three drawn months (the big
    # band's few runs make fsd and optimus swing by ~4 points per seed, so three are pooled).
    work = _work_by_kind((0, 1, 2))
    total = sum(work.values())
    shares = kind_work_shares()
    assert set(shares) == set(work)
    assert math.fsum(shares.values()) == pytest.approx(1.0, abs=1e-12)
    for kind, share in shares.items():
        # eval is 0.125% of the work (a quarter of the small band): its own, finer tolerance
        tolerance = 0.0005 if kind == "eval" else 0.02
        assert work[kind] / total == pytest.approx(share, abs=tolerance), kind
    assert shares["eval"] > 0.001


def test_a_flavor_capacity_is_the_rate_it_does_the_drawn_mix() -> None:
    # GPU-seconds a Dojo chip needs for each job's H100 work, summed over a drawn month: the
    # H100 work per Dojo GPU-second is what one Dojo GPU is worth.
    table = ThroughputTable.load()
    jobs = generate(days=60, seed=0, fleet_gpus=100_000)
    h100_s = sum(j.gpus * j.work_s for j in jobs)
    for flavor in ("Dojo-D1", "H200-SXM", "B200-GB200"):
        needed_s = sum(j.gpus * j.work_s / table.speed(j.kind, flavor) for j in jobs)
        assert fleet_capacity([flavor], [1]) == pytest.approx(h100_s / needed_s, rel=0.03)


def test_capacity_of_a_fleet_of_h100_is_its_gpu_count() -> None:
    topo = build(load_fleet_spec("tiny"))
    assert fleet_capacity(topo.flavors, topo.flavor_gpus()) == topo.total_gpus == 64
    # so the capacity basis changes nothing there: the same jobs, field for field
    a = generate(days=3, seed=5, fleet_gpus=64, load=2.0, flavors=topo.flavors)
    b = generate(days=3, seed=5, fleet_gpus=64, load=2.0, flavors=topo.flavors, capacity_h100e=64.0)
    assert [_key(j) for j in a] == [_key(j) for j in b]


@pytest.mark.parametrize(
    ("fleet", "resolved"),
    [("tiny", "gpus"), ("cortex-2024", "gpus"), ("colossus-memphis", "gpus"),
     ("cortex-2026", "capacity"), ("dojo-buffalo", "capacity")],
)  # fmt: skip
def test_auto_takes_the_capacity_only_on_fleets_slower_than_h100(fleet: str, resolved: str) -> None:
    # cortex-2024 (half H200) is faster than its GPU count in H100 work: it keeps the calibrated
    # basis and every calibrated figure; a fleet of H100 only is equal up to rounding
    topo = build(load_fleet_spec(fleet))
    assert resolve_load_basis("auto", topo) == resolved
    for explicit in ("gpus", "capacity"):
        assert resolve_load_basis(explicit, topo) == explicit


def test_auto_draws_what_its_resolved_basis_draws(tmp_path: Path) -> None:
    (tmp_path / "mixed.yaml").write_text(MIXED.format(dojo=24))
    for fleet, basis in (("tiny", "gpus"), (tmp_path / "mixed.yaml", "capacity")):
        topo = build(load_fleet_spec(fleet))
        auto = load_workload("synthetic", topo, days=2, seed=3, load=0.7, load_basis="auto")
        same = load_workload("synthetic", topo, days=2, seed=3, load=0.7, load_basis=basis)
        assert [_key(j) for j in auto] == [_key(j) for j in same]
    with pytest.raises(InputError, match="load_basis"):
        load_workload("single:8", topo, days=1, seed=0, load_basis="auto")


def test_cortex_2026_capacity_is_well_below_its_chip_count() -> None:
    topo = build(load_fleet_spec("cortex-2026"))
    capacity = fleet_capacity(topo.flavors, topo.flavor_gpus())
    # 375,000 Dojo chips at ~0.24 H100 and 60,000 GB200 at ~2.2: about 0.61 of the chip count,
    # within 6% of the best placement's bound in docs/hetero.md (346,304)
    assert 0.55 < capacity / topo.total_gpus < 0.66
    assert capacity == pytest.approx(346_304, rel=0.06)


def test_offered_work_follows_the_capacity() -> None:
    jobs = generate(days=60, seed=4, fleet_gpus=2_000, load=0.5, capacity_h100e=1_000.0)
    assert describe(jobs, fleet_gpus=1_000)["offered_load"] == pytest.approx(0.5, rel=0.35)
    assert describe(jobs, fleet_gpus=2_000)["offered_load"] == pytest.approx(0.25, rel=0.35)


@pytest.mark.parametrize("bad", [0.0, -5.0, math.nan, math.inf])
def test_bad_capacity_names_the_field(bad: float) -> None:
    with pytest.raises(InputError, match="capacity_h100e"):
        generate(days=1, seed=0, fleet_gpus=64, capacity_h100e=bad)


def test_load_workload_on_the_capacity_basis_draws_at_the_fleet_capacity(tmp_path: Path) -> None:
    (tmp_path / "mixed.yaml").write_text(MIXED.format(dojo=24))
    topo = build(load_fleet_spec(tmp_path / "mixed.yaml"))
    capacity = fleet_capacity(topo.flavors, topo.flavor_gpus())
    assert 200 < capacity < 210  # 64 H100 GPUs and 600 Dojo chips at ~0.236
    jobs = load_workload("synthetic", topo, days=5, seed=2, load=0.5, load_basis="capacity")
    same = generate(days=5, seed=2, fleet_gpus=664, load=0.5, flavors=topo.flavors,
                    capacity_h100e=capacity)  # fmt: skip
    assert [_key(j) for j in jobs] == [_key(j) for j in same]
    assert max(j.gpus for j in jobs) == 328  # gangs are capped by chips (664 // 2), not capacity
    gpus = load_workload("synthetic", topo, days=5, seed=2, load=0.5)
    assert len(jobs) < len(gpus) / 2  # about capacity / chips = 0.31 of the jobs
    with pytest.raises(InputError, match="load_basis"):
        load_workload("single:8", topo, days=1, seed=0, load_basis="capacity")
    with pytest.raises(InputError, match="load_basis"):
        load_workload("synthetic", topo, days=1, seed=0, load_basis="h100")


def test_warm_start_fills_the_offered_h100_work() -> None:
    # The warm jobs hold the offered work in H100 terms, `load` of the capacity, on either
    # basis (not `load` of the GPUs: see generate): 0.5 of 300,000 H100-eq -> ~150,000 GPUs.
    jobs = generate(days=1, seed=1, fleet_gpus=1_000_000, load=0.5, warm=True,
                    capacity_h100e=300_000.0)  # fmt: skip
    held = sum(j.gpus for j in jobs if j.warm)
    assert held == pytest.approx(150_000, rel=0.05)


def test_report_names_the_load_and_its_basis(tmp_path: Path) -> None:
    (tmp_path / "mixed.yaml").write_text(MIXED.format(dojo=24))
    runs = {}
    for name, args in (
        ("capacity", ("--fleet", "mixed.yaml", "--load", "0.5", "--load-basis", "capacity")),
        ("gpus", ("--fleet", "mixed.yaml", "--load", "0.5", "--load-basis", "gpus")),
        ("default", ("--fleet", "mixed.yaml", "--load", "0.5")),
        ("tiny", ("--fleet", "tiny", "--load", "0.5")),
        ("single", ("--fleet", "mixed.yaml", "--workload", "single:8")),
    ):
        proc = cortex("sim", "--days", "1", "--quiet", *args, "--json", f"{name}.json",
                      cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert runs["capacity"]["config"]["load"] == 0.5
    assert runs["capacity"]["config"]["load_basis"] == "capacity"
    assert runs["gpus"]["config"]["load_basis"] == "gpus"
    assert runs["capacity"]["jobs"]["submitted"] < runs["gpus"]["jobs"]["submitted"] / 2
    # the default names the basis it resolved to, and ran the jobs that basis draws
    assert runs["default"]["config"]["load_basis"] == "capacity"
    assert runs["default"]["jobs"] == runs["capacity"]["jobs"]
    assert runs["tiny"]["config"]["load_basis"] == "gpus"
    assert "load" not in runs["single"]["config"]  # no synthetic draw, no load
    assert "load_basis" not in runs["single"]["config"]


def test_a_job_file_named_synthetic_has_no_load(tmp_path: Path) -> None:
    # the report's label is a job file's name: a file named `synthetic` must not be reported as
    # the synthetic workload drawn at a load on a basis
    (tmp_path / "mixed.yaml").write_text(MIXED.format(dojo=24))
    (tmp_path / "synthetic").write_text(
        "jobs:\n  - {name: a, team: fsd, gpus: 8, duration_s: 3600}\n"
    )
    proc = cortex("sim", "--days", "0.2", "--quiet", "--fleet", "mixed.yaml", "--workload",
                  "./synthetic", "--json", "r.json", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["jobs"]["submitted"] == 1
    assert report["config"]["workload"] != "synthetic"
    assert "load" not in report["config"]
    assert "load_basis" not in report["config"]


@pytest.mark.parametrize(
    ("dojo_nodes", "load"), [(24, "0.85"), (1, "0.85"), (24, "1"), (24, "1.5")]
)
def test_overload_warning_on_a_mixed_fleet_only(tmp_path: Path, dojo_nodes: int, load: str) -> None:
    # 64 H100 GPUs and 25 Dojo chips per node: --load 0.85 offers 2.75x the capacity with 24
    # nodes, 1.08x with one; --load 1.5 asks for 1.5x and gets 4.8x
    (tmp_path / "mixed.yaml").write_text(MIXED.format(dojo=dojo_nodes))
    base = ["sim", "--days", "0.2", "--quiet"]
    gpus = cortex(*base, "--fleet", "mixed.yaml", "--load", load, "--load-basis", "gpus",
                  cwd=tmp_path)  # fmt: skip
    assert gpus.returncode == 0, gpus.stderr
    found = WARNING.search(gpus.stderr)
    assert found, gpus.stderr
    assert found.group(1) == load
    chips = 25 * dojo_nodes
    capacity = 64 + chips * fleet_capacity(["Dojo-D1"], [1])
    assert float(found.group(2)) == pytest.approx(float(load) * (64 + chips) / capacity, abs=0.006)
    assert len(gpus.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ("--fleet", "mixed.yaml", "--load-basis", "capacity"),
        ("--fleet", "mixed.yaml"),  # the default resolves to capacity on a fleet slower than H100
        ("--fleet", "mixed.yaml", "--load", "1.5"),
        ("--fleet", "tiny"),
        ("--fleet", "tiny", "--load", "2"),  # asks for 2x on H100 and gets it: nothing to say
    ],
)
def test_no_warning_where_the_load_is_what_was_asked(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "mixed.yaml").write_text(MIXED.format(dojo=24))
    proc = cortex("sim", "--days", "0.2", "--quiet", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
