"""Where a simulation's jobs come from: `synthetic`, `single:GPUS`, a YAML job file or a CSV
trace. Checks each job against the fleet so that a job no flavor could hold is an input error
naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cortex.errors import InputError
from cortex.fleet.topology import Topology, alloc_size
from cortex.workload.job import Job
from cortex.workload.spec import load_jobs
from cortex.workload.synthetic import _ckpt_write_s, fleet_capacity, generate
from cortex.workload.trace import read_trace

# single:N runs one job for the whole horizon: its work is this many horizons long.
SINGLE_JOB_HORIZONS = 10.0


def single_job(gpus: int, horizon_s: float) -> Job:
    """One production FSD-style job of `gpus` GPUs that outlives the horizon."""
    write = float(_ckpt_write_s(np.array([gpus]))[0])
    return Job(
        0,
        f"single-{gpus}",
        "fsd",
        gpus,
        horizon_s * SINGLE_JOB_HORIZONS,
        priority_class="production",
        kind="fsd-video",
        ckpt_write_s=write,
    )


def _check_fits(jobs: list[Job], topo: Topology, source: str, row_label: str) -> None:
    flavors = topo.flavors
    gpus = topo.flavor_gpus()
    for i, j in enumerate(jobs):
        if j.flavors:
            unknown = [f for f in j.flavors if f not in flavors]
            if len(unknown) == len(j.flavors):
                raise InputError(
                    source,
                    f"{row_label}[{i}].flavors",
                    f"none of {list(j.flavors)} is in fleet {topo.name} "
                    f"(it has {', '.join(flavors)})",
                )
        allowed = [flavors.index(f) for f in j.flavors if f in flavors] or range(len(flavors))
        most = max(gpus[f] for f in allowed)
        smallest = j.elastic_min or j.gpus
        if all(alloc_size(smallest, topo.flavor_gpus_per_node[f]) > gpus[f] for f in allowed):
            raise InputError(
                source,
                f"{row_label}[{i}].gpus",
                f"gang of {smallest} GPUs is larger than any acceptable flavor "
                f"in fleet {topo.name} (at most {most})",
            )


LOAD_BASES = ("auto", "gpus", "capacity")
"""What a synthetic `--load` is a share of (load_workload, resolve_load_basis)."""


def resolve_load_basis(load_basis: str, topo: Topology) -> str:
    """`auto` resolved for this fleet: `gpus` (the calibrated meaning) unless the fleet's
    H100-equivalent capacity is below its GPU count, then `capacity`. On a fleet slower than
    H100 (Dojo), a share of its GPUs in H100 work offers more than it can do, so the default
    would be an overload by construction (`cortex-2026` at 0.85: 1.39x, a queue that grows all
    month); on fleets of H100 or faster it keeps the calibrated basis and every calibrated
    figure (bench/RESULTS.md §82). An explicit basis is returned as given."""
    if load_basis != "auto":
        return load_basis
    capacity_h100e = fleet_capacity(topo.flavors, topo.flavor_gpus())
    # A relative margin: a fleet of H100 only has capacity == GPUs up to rounding.
    return "capacity" if capacity_h100e < topo.total_gpus * (1.0 - 1e-9) else "gpus"


def load_workload(
    workload: str,
    topo: Topology,
    *,
    days: float,
    seed: int,
    load: float = 0.85,
    warm: bool = False,
    load_basis: str = "gpus",
) -> list[Job]:
    """Resolve a --workload value into jobs sorted by submit time. `warm` (synthetic only):
    start the fleet in steady state (synthetic.warm_start). `load_basis` (synthetic only):
    `gpus`, the load is a share of the fleet's GPUs in H100 work (the calibrated meaning),
    `capacity`, a share of its H100-equivalent capacity (`synthetic.fleet_capacity`), or `auto`,
    the first unless the fleet is slower than H100 (`resolve_load_basis`; `cortex sim`'s
    default)."""
    if load_basis not in LOAD_BASES:
        raise InputError(
            "--load-basis",
            "load_basis",
            f"expected {', '.join(LOAD_BASES[:-1])} or {LOAD_BASES[-1]}, got {load_basis!r}",
        )
    if load_basis != "gpus" and workload != "synthetic":
        raise InputError(
            "--load-basis", "load_basis", f"needs the synthetic workload; {workload!r} has no load"
        )
    load_basis = resolve_load_basis(load_basis, topo) if workload == "synthetic" else load_basis
    horizon_s = days * 86400.0
    if workload == "synthetic":
        return generate(
            days=days,
            seed=seed,
            fleet_gpus=topo.total_gpus,
            load=load,
            flavors=topo.flavors,
            warm=warm,
            capacity_h100e=(
                fleet_capacity(topo.flavors, topo.flavor_gpus())
                if load_basis == "capacity"
                else None
            ),
        )
    if workload.startswith("single:"):
        raw = workload.split(":", 1)[1]
        if not raw.isdigit() or int(raw) <= 0:
            raise InputError(
                "--workload", "single", f"expected single:GPUS with GPUS > 0, got {raw!r}"
            )
        jobs = [single_job(int(raw), horizon_s)]
        _check_fits(jobs, topo, "--workload", "single")
        return jobs
    path = Path(workload)
    if path.suffix.lower() == ".csv":
        return load_trace(path, topo)
    specs = load_jobs(path)
    storage = topo.spec.storage_write_gbps
    jobs = []
    for i, spec in enumerate(specs):
        jobs.append(Job.from_spec(i, spec, priority=0, ckpt_write_s=spec.write_s(storage)))
    _check_fits(jobs, topo, str(path), "jobs")
    jobs.sort(key=lambda j: (j.submit_s, j.id))
    return jobs


def load_trace(path: str | Path, topo: Topology) -> list[Job]:
    """Read a CSV trace and check it against the fleet."""
    jobs = read_trace(path)
    _check_fits(jobs, topo, str(path), "rows")
    return jobs
