"""Twin in the loop: goodput factors per SKU and checkpoint from `cortex sim` runs of the
planned fleet, refitted until the plan stops changing.

Each run is the twin (the same code as `cortex sim`) on one SKU's planned fleet at one
checkpoint month, scaled down by `twin.scale` so a run takes about a second. Failure rates are
multiplied by the same scale: a job 1/s the size with s times the per-GPU rate sees the same
mean time between interruptions as the full-size job, so goodput by job scale survives the
shrink (what does not: queueing and fragmentation at full size). The factor is the twin's
goodput (productive / allocated GPU-time) times availability (up / installed GPU-time).
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import yaml

from cortex.planner.inputs import Inputs, Sku
from cortex.planner.solve import PlanResult, solve
from cortex.planner.spec import PlanSpec

Key = tuple[int, str, int, int]  # checkpoint month, SKU, scaled nodes, seed


def pick_policy(wanted: str | None, spec: PlanSpec) -> tuple[str, str]:
    """The twin's profile: the one asked for when the registry has it, else `priority`."""
    from cortex.scheduler.registry import PROFILES

    name = wanted or spec.twin.policy
    if name in PROFILES:
        return name, ""
    return "priority", f"profile {name!r} is not in the registry here; used 'priority'"


def fleet_dict(sku: Sku, nodes: int, month: int) -> dict[str, Any]:
    """A fleet file (as a dict) for one SKU's scaled fleet."""
    return {
        "name": f"plan-m{month}-{sku.name.lower()}",
        "description": f"{sku.name} planned at month {month}, scaled",
        "site": {"name": "plan", "pue": 1.2},
        "halls": [
            {
                "name": "hall-1",
                "groups": [
                    {
                        "flavor": sku.flavor,
                        "nodes": nodes,
                        "gpus_per_node": sku.gpus_per_node,
                        "nodes_per_pod": sku.nodes_per_pod,
                        "nodes_per_rack": min(sku.nodes_per_rack, sku.nodes_per_pod),
                    }
                ],
            }
        ],
        "queues": {
            "cohort": "plan",
            "cluster_queues": [
                {"name": "fsd", "nominal_share": 0.45},
                {"name": "optimus", "nominal_share": 0.35},
                {"name": "research", "nominal_share": 0.20},
            ],
        },
    }


def run_twin(args: tuple[dict[str, Any], float, int, str, float, str]) -> dict[str, Any]:
    """One short twin run (`workload`: synthetic, or single:GPUS for the flagship job alone);
    the figures the planner needs."""
    from cortex.fleet.spec import parse_fleet
    from cortex.fleet.topology import build as build_topo
    from cortex.sim.report import build_report
    from cortex.sim.twin import SimConfig, Twin
    from cortex.workload.sources import load_workload

    fleet, days, seed, policy, failure_scale, workload = args
    topo = build_topo(parse_fleet(fleet, f"plan fleet {fleet['name']}"))
    jobs = load_workload(workload, topo, days=days, seed=seed)
    cfg = SimConfig(days=days, seed=seed, policy=policy, failure_scale=failure_scale)
    twin = Twin(topo, jobs, cfg)
    twin.run()
    r = build_report(twin, workload=workload)
    alloc = r["utilization"]["allocated"]
    avail = r["utilization"]["allocated_of_installed"] / alloc if alloc > 0 else 1.0
    goodput = r["goodput"] if r["goodput"] > 0 else 1.0
    return {
        "fleet": fleet["name"],
        "gpus": r["fleet"]["gpus"],
        "goodput": goodput,
        "availability": round(min(avail, 1.0), 6),
        "factor": round(goodput * min(avail, 1.0), 6),
        "interruptions": r["interruptions"]["unexpected"],
        "wall_s": r["wall_s"],
    }


Run = tuple[dict[str, Any], str]  # fleet, workload


def _flagship_run(spec: PlanSpec, inp: Inputs, res: PlanResult, c: int) -> tuple[str, Run] | None:
    """The flagship job alone on its fabric, scaled: the fabric family with the most planned
    H100e at checkpoint `c`, its largest SKU there, sized to the flagship, 5% of the nodes
    kept as hot spares (failure-recovery.md sizes spares)."""
    if inp.flagship is None or c < inp.flagship[1]:
        return None
    blocks = res.months[c]["blocks"]
    fabrics: dict[str, float] = {}
    for k in inp.skus:
        fabrics[k.fabric] = fabrics.get(k.fabric, 0.0) + blocks.get(k.name, 0.0) * k.h100e
    fabric = max(fabrics, key=lambda f: fabrics[f])
    sku = max((k for k in inp.skus if k.fabric == fabric), key=lambda k: blocks.get(k.name, 0.0))
    gpus = inp.flagship[0] / (sku.h100e / sku.gpus)
    pods = max(1, round(gpus / spec.twin.scale / sku.gpus_per_node / sku.nodes_per_pod))
    nodes = pods * sku.nodes_per_pod
    job_nodes = max(1, int(nodes * 0.95))
    fleet = fleet_dict(sku, nodes, c)
    fleet["name"] += "-flagship"
    return f"flagship:{sku.name}", (fleet, f"single:{job_nodes * sku.gpus_per_node}")


def _wanted(spec: PlanSpec, inp: Inputs, res: PlanResult) -> dict[Key, Run]:
    """The runs this plan needs: each SKU present at each checkpoint, and the flagship job."""
    out: dict[Key, Run] = {}
    seeds = range(spec.twin.seed, spec.twin.seed + spec.twin.seeds)
    for c in spec.twin.checkpoints:
        if c >= inp.months:
            continue
        blocks = res.months[c]["blocks"]
        for k in inp.skus:
            gpus = blocks.get(k.name, 0.0) * k.gpus
            if gpus < 1:
                continue
            # Whole pods: a plan that moves by a few blocks reuses the runs it had.
            pods = max(1, round(gpus / spec.twin.scale / k.gpus_per_node / k.nodes_per_pod))
            nodes = pods * k.nodes_per_pod
            for seed in seeds:
                out[(c, k.name, nodes, seed)] = (fleet_dict(k, nodes, c), "synthetic")
        flag = _flagship_run(spec, inp, res, c)
        if flag is not None:
            name, run = flag
            nodes = run[0]["halls"][0]["groups"][0]["nodes"]
            for seed in seeds:
                out[(c, name, nodes, seed)] = run
    return out


def _factors(inp: Inputs, runs: dict[Key, dict[str, Any]], prev: dict) -> dict:
    """Each month takes the nearest checkpoint's factor for its SKU; a SKU with no run keeps
    the factor it had."""
    sums: dict[tuple[str, int], list[float]] = {}
    for (c, k, _n, _seed), r in runs.items():
        if not k.startswith("flagship:"):
            sums.setdefault((k, c), []).append(r["factor"])
    by_sku: dict[str, list[tuple[int, float]]] = {}
    for (k, c), vals in sums.items():  # the mean over seeds
        by_sku.setdefault(k, []).append((c, sum(vals) / len(vals)))
    out = dict(prev)
    for k, pts in by_sku.items():
        for t in range(inp.months):
            out[(t, k)] = min(pts, key=lambda p: (abs(p[0] - t), p[0]))[1]
    return out


def _flagship_factors(inp: Inputs, runs: dict[Key, dict[str, Any]]) -> dict[int, float]:
    """Each month from the flagship's start takes the nearest checkpoint's flagship factor."""
    pts: dict[int, list[float]] = {}
    for (c, k, _n, _seed), r in runs.items():
        if k.startswith("flagship:"):
            pts.setdefault(c, []).append(r["factor"])
    if not pts or inp.flagship is None:
        return dict(inp.flagship_goodput)
    mean = {c: sum(v) / len(v) for c, v in pts.items()}
    return {
        t: mean[min(mean, key=lambda c: (abs(c - t), c))]
        for t in range(inp.flagship[1], inp.months)
    }


def _orders_key(res: PlanResult) -> tuple:
    return tuple((o["month"], o["sku"], o["site"], o["blocks"]) for o in res.orders)


def refine(spec: PlanSpec, inp: Inputs, policy: str | None = None) -> tuple[Inputs, dict[str, Any]]:
    """Solve, simulate the planned fleets, refit the goodput factors, re-solve, until the
    orders repeat (or `max_iterations`). Returns the refitted inputs and a report."""
    t0 = time.perf_counter()
    name, note = pick_policy(policy, spec)
    cache: dict[Key, dict[str, Any]] = {}
    history = []
    res = solve(inp, diagnose=False)
    last = _orders_key(res)
    converged = False
    pool = ProcessPoolExecutor(max_workers=spec.twin.workers)
    try:
        for it in range(1, spec.twin.max_iterations + 1):
            wanted = _wanted(spec, inp, res)
            todo = [key for key in wanted if key not in cache]
            args = [
                (wanted[k][0], spec.twin.days, k[3], name, float(spec.twin.scale), wanted[k][1])
                for k in todo
            ]
            for key, r in zip(todo, pool.map(run_twin, args), strict=True):
                cache[key] = r
            runs = {key: cache[key] for key in wanted}
            before = inp.goodput
            measured = _factors(inp, runs, before)
            # Successive averages (step 1, 1/2, 1/3, ...): the planned fleet, hence the runs,
            # change with the factors, and a plain refit can cycle between two mixes.
            w = 1.0 / it
            flag_before = inp.flagship_goodput
            flag_measured = _flagship_factors(inp, runs)
            flag = {
                t: (flag_before.get(t, v) + w * (v - flag_before.get(t, v))) if it > 1 else v
                for t, v in flag_measured.items()
            }
            inp = replace(
                inp,
                goodput={key: before[key] + w * (measured[key] - before[key]) for key in before},
                flagship_goodput=flag,
            )
            moved = max(abs(inp.goodput[key] - before[key]) for key in before)
            moved = max([moved] + [abs(v - flag_before.get(t, v)) for t, v in flag.items()])
            res = solve(inp, diagnose=False)
            now = _orders_key(res)
            changed = len(set(now) ^ set(last))
            history.append(
                {
                    "iteration": it,
                    "new_runs": len(todo),
                    "order_lines_changed": changed,
                    "max_factor_change": round(moved, 4),
                    "goodput_h100e_months": res.totals["goodput_h100e_months"],
                }
            )
            if now == last or moved <= spec.twin.tolerance:
                converged = True
                break
            last = now
    finally:
        pool.shutdown()
    final = {k.name: inp.goodput[(inp.months - 1, k.name)] for k in inp.skus}
    return inp, {
        "policy": name,
        "policy_note": note,
        "scale": spec.twin.scale,
        "days": spec.twin.days,
        "checkpoints": spec.twin.checkpoints,
        "iterations": len(history),
        "converged": converged,
        "history": history,
        "final_factors": final,
        "runs": [
            {"checkpoint": c, "sku": k, "nodes": n, "seed": s, **r}
            for (c, k, n, s), r in sorted(cache.items())
        ],
        "flagship_factors": {str(t): round(v, 4) for t, v in inp.flagship_goodput.items()},
        "fleet_yaml_example": yaml.safe_dump(
            next(iter(_wanted(spec, inp, res).values()), ({}, ""))[0]
        ),
        "wall_s": round(time.perf_counter() - t0, 2),
    }
