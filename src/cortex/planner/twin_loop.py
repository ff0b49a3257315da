"""Twin in the loop: goodput factors per SKU and checkpoint from `cortex sim` runs of the
planned fleet, refitted until the plan stops changing.

Each run is the twin (the same code as `cortex sim`) on the planned fleet at one checkpoint
month: by default every SKU installed then, together (`twin.fleet: mixed`), each scaled down
by `twin.scale` to whole pods, so the scheduling profile (`hetero`) places work across the mix
as it would on the real fleet; `per_sku` runs each SKU's fleet alone. Failure rates are
multiplied by the same scale: a job 1/s the size with s times the per-GPU rate sees the same
mean time between interruptions as the full-size job, so goodput by job scale survives the
shrink (what does not: queueing and fragmentation at full size). A SKU's factor is its
flavor's goodput (productive / allocated GPU-time) times availability (up / installed
GPU-time), from the run's books by flavor (sim/books.py).
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

Shape = tuple[tuple[str, int], ...]  # (SKU, scaled nodes) of each group of a run's fleet
Key = tuple[int, str, Shape, int]  # checkpoint month, run ("mixed", a SKU, "flagship:SKU"), seed
MIXED = "mixed"
# A flavor that held less than this share of its installed GPU-time in a run measured too
# little to say its goodput: the run's `by_flavor` shows none.
MIN_ALLOCATED_SHARE = 0.01
# In a SKU's factor from mixed runs, the flavor's goodput is weighted against the runs' fleet
# goodput as if the fleet's figure had been measured on this share of the flavor's installed
# GPU-time (credibility weighting): a flavor the profile keeps busy speaks for itself, one it
# leaves nearly idle (a few jobs, so a single failure moves it by tenths) leans on the fleet,
# and one it leaves idle takes the fleet's goodput, not the plan's first guess (which would
# favour exactly the SKUs the profile does not use).
PRIOR_SHARE = 0.05


def pick_policy(wanted: str | None, spec: PlanSpec) -> tuple[str, str]:
    """The twin's profile: the one asked for when the registry has it, else `priority`."""
    from cortex.scheduler.registry import PROFILES

    name = wanted or spec.twin.policy
    if name in PROFILES:
        return name, ""
    return "priority", f"profile {name!r} is not in the registry here; used 'priority'"


def fleet_dict(sku: Sku, nodes: int, month: int) -> dict[str, Any]:
    """A fleet file (as a dict) for one SKU's scaled fleet."""
    fleet = mixed_fleet_dict([(sku, nodes)], month)
    fleet["name"] = f"plan-m{month}-{sku.name.lower()}"
    fleet["description"] = f"{sku.name} planned at month {month}, scaled"
    fleet["halls"][0]["name"] = "hall-1"
    return fleet


def mixed_fleet_dict(groups: list[tuple[Sku, int]], month: int) -> dict[str, Any]:
    """A fleet file (as a dict) for the planned fleet at `month`, scaled: one hall per SKU
    (SKUs of one flavor, such as GB200 and GB300 NVL72, share the flavor's books)."""
    return {
        "name": f"plan-m{month}-mixed",
        "description": f"the fleet planned at month {month}, scaled, all SKUs together",
        "site": {"name": "plan", "pue": 1.2},
        "halls": [
            {
                "name": f"hall-{sku.name.lower()}",
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
            for sku, nodes in groups
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


def run_twin(args: tuple[Any, ...]) -> dict[str, Any]:
    """One short twin run: (fleet, days, seed, policy, failure scale, workload[, warm]), with
    `workload` synthetic, or single:GPUS for the flagship job alone; `warm` (synthetic only,
    default False) starts the fleet in steady state as `cortex sim` does. The figures the
    planner needs."""
    from cortex.fleet.spec import parse_fleet
    from cortex.fleet.topology import build as build_topo
    from cortex.sim.books import books_gpu_s_by_flavor
    from cortex.sim.report import build_report
    from cortex.sim.twin import SimConfig, Twin
    from cortex.workload.sources import load_workload

    fleet, days, seed, policy, failure_scale, workload = args[:6]
    warm = bool(args[6]) if len(args) > 6 else False
    topo = build_topo(parse_fleet(fleet, f"plan fleet {fleet['name']}"))
    jobs = load_workload(
        workload, topo, days=days, seed=seed, warm=warm and workload == "synthetic"
    )
    cfg = SimConfig(days=days, seed=seed, policy=policy, failure_scale=failure_scale)
    twin = Twin(topo, jobs, cfg)
    twin.run()
    r = build_report(twin, workload=workload)
    alloc = r["utilization"]["allocated"]
    avail = r["utilization"]["allocated_of_installed"] / alloc if alloc > 0 else 1.0
    # No allocated time measures nothing (1.0, the fleet was idle); allocated time with no
    # productive time is a goodput of 0: `goodput > 0 else 1.0` read the worst run, a
    # flagship job that never kept any work, as the best.
    goodput = r["goodput"] if r["gpu_hours"]["allocated"] > 0 else 1.0
    return {
        "fleet": fleet["name"],
        "gpus": r["fleet"]["gpus"],
        "goodput": goodput,
        "productive_gpu_h": r["gpu_hours"]["productive"],
        "allocated_gpu_h": r["gpu_hours"]["allocated"],
        "availability": round(min(avail, 1.0), 6),
        "factor": round(goodput * min(avail, 1.0), 6),
        "interruptions": r["interruptions"]["unexpected"],
        "by_flavor": _by_flavor(books_gpu_s_by_flavor(twin), r["fleet"]["gpus_by_flavor"]),
        "wall_s": r["wall_s"],
    }


def _by_flavor(books: dict[str, dict[str, float]], gpus: dict[str, int]) -> dict[str, Any]:
    """Goodput, availability and their product per flavor; goodput and factor None where the
    flavor held less than MIN_ALLOCATED_SHARE of its GPU-time."""
    out: dict[str, Any] = {}
    for f, b in books.items():
        installed = b["installed"]
        up = installed - b["down"] - b.get("hot_spare", 0.0)
        share = b["allocated"] / installed if installed > 0 else 0.0
        avail = min(up / installed, 1.0) if installed > 0 else 1.0
        goodput = b["productive"] / b["allocated"] if share >= MIN_ALLOCATED_SHARE else None
        out[f] = {
            "gpus": gpus[f],
            "installed_gpu_h": round(installed / 3600.0, 3),
            "allocated_gpu_h": round(b["allocated"] / 3600.0, 3),
            "productive_gpu_h": round(b["productive"] / 3600.0, 3),
            "allocated_share": round(share, 6),
            "goodput": None if goodput is None else round(goodput, 6),
            "availability": round(avail, 6),
            "factor": None if goodput is None else round(goodput * avail, 6),
        }
    return out


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


def _scaled(spec: PlanSpec, inp: Inputs, res: PlanResult, c: int) -> list[tuple[Sku, int]]:
    """Each SKU installed at checkpoint `c`, in whole pods of 1/scale of its GPUs (at least
    one pod): a plan that moves by a few blocks reuses the runs it had."""
    blocks = res.months[c]["blocks"]
    out = []
    for k in inp.skus:
        gpus = blocks.get(k.name, 0.0) * k.gpus
        if gpus < 1:
            continue
        pods = max(1, round(gpus / spec.twin.scale / k.gpus_per_node / k.nodes_per_pod))
        out.append((k, pods * k.nodes_per_pod))
    return out


def _wanted(spec: PlanSpec, inp: Inputs, res: PlanResult) -> dict[Key, Run]:
    """The runs this plan needs at each checkpoint: the planned fleet (all SKUs together, or
    each alone), and the flagship job."""
    out: dict[Key, Run] = {}
    seeds = range(spec.twin.seed, spec.twin.seed + spec.twin.seeds)
    for c in spec.twin.checkpoints:
        if c >= inp.months:
            continue
        groups = _scaled(spec, inp, res, c)
        if spec.twin.fleet == MIXED and groups:
            shape = tuple((k.name, n) for k, n in groups)
            for seed in seeds:
                out[(c, MIXED, shape, seed)] = (mixed_fleet_dict(groups, c), "synthetic")
        else:
            for k, nodes in groups:
                for seed in seeds:
                    out[(c, k.name, ((k.name, nodes),), seed)] = (
                        fleet_dict(k, nodes, c),
                        "synthetic",
                    )
        flag = _flagship_run(spec, inp, res, c)
        if flag is not None:
            name, run = flag
            nodes = run[0]["halls"][0]["groups"][0]["nodes"]
            for seed in seeds:
                out[(c, name, ((name.split(":", 1)[1], nodes),), seed)] = run
    return out


def _measured(inp: Inputs, runs: dict[Key, dict[str, Any]]) -> dict[tuple[str, int], float]:
    """(SKU, checkpoint): the SKU's factor. From its own runs: the mean over seeds. From mixed
    runs: its flavor's books pooled over the seeds, goodput weighted against the runs' fleet
    goodput by PRIOR_SHARE, times the flavor's availability."""
    flavor = {k.name: k.flavor for k in inp.skus}
    alone: dict[tuple[str, int], list[float]] = {}
    mixed: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for (c, name, shape, _seed), r in runs.items():
        if name.startswith("flagship:"):
            continue
        for sku, _nodes in shape:
            if name == MIXED:
                mixed.setdefault((sku, c), []).append(r)
            else:
                alone.setdefault((sku, c), []).append(r["factor"])
    out = {key: sum(v) / len(v) for key, v in alone.items()}
    for (sku, c), rs in mixed.items():
        out[(sku, c)] = _credible_factor([r["by_flavor"][flavor[sku]] for r in rs], rs)
    return out


def _credible_factor(books: list[dict[str, Any]], runs: list[dict[str, Any]]) -> float:
    """One flavor's factor from its books in several runs (the seeds) and the runs' fleet
    goodput (see PRIOR_SHARE)."""
    fleet_alloc = sum(r["allocated_gpu_h"] for r in runs)
    fleet = sum(r["productive_gpu_h"] for r in runs) / fleet_alloc if fleet_alloc > 0 else 1.0
    installed = sum(b["installed_gpu_h"] for b in books)
    prior = PRIOR_SHARE * installed
    weight = sum(b["allocated_gpu_h"] for b in books) + prior
    if weight <= 0:
        return fleet
    goodput = (sum(b["productive_gpu_h"] for b in books) + prior * fleet) / weight
    up = sum(b["availability"] * b["installed_gpu_h"] for b in books)
    return goodput * (up / installed if installed > 0 else 1.0)


def _flavor_means(runs: dict[Key, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Checkpoint: flavor: the mixed runs' figures by flavor, the mean over seeds (a figure
    no seed measured stays None)."""
    got: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for (c, name, _shape, _seed), r in runs.items():
        if name == MIXED:
            for f, b in r["by_flavor"].items():
                got.setdefault(c, {}).setdefault(f, []).append(b)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for c, flavors in sorted(got.items()):
        for f, rows in flavors.items():
            mean: dict[str, Any] = {"gpus": rows[0]["gpus"]}
            for k in ("allocated_share", "goodput", "availability", "factor"):
                vals = [b[k] for b in rows if b[k] is not None]
                mean[k] = round(sum(vals) / len(vals), 4) if vals else None
            out.setdefault(str(c), {})[f] = mean
    return out


def _factors(inp: Inputs, runs: dict[Key, dict[str, Any]], prev: dict) -> dict:
    """Each month takes the nearest checkpoint's factor for its SKU; a SKU with no run keeps
    the factor it had."""
    by_sku: dict[str, list[tuple[int, float]]] = {}
    for (k, c), v in _measured(inp, runs).items():
        by_sku.setdefault(k, []).append((c, v))
    out = dict(prev)
    for k, pts in by_sku.items():
        for t in range(inp.months):
            out[(t, k)] = min(pts, key=lambda p: (abs(p[0] - t), p[0]))[1]
    return out


def _flagship_factors(inp: Inputs, runs: dict[Key, dict[str, Any]]) -> dict[int, float]:
    """Each month from the flagship's start takes the nearest checkpoint's flagship factor."""
    pts: dict[int, list[float]] = {}
    for (c, k, _shape, _seed), r in runs.items():
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
    measured_last: dict[tuple[str, int], float] = {}
    by_flavor: dict[str, dict[str, dict[str, Any]]] = {}
    pool = ProcessPoolExecutor(max_workers=spec.twin.workers)
    try:
        for it in range(1, spec.twin.max_iterations + 1):
            wanted = _wanted(spec, inp, res)
            todo = [key for key in wanted if key not in cache]
            warm = spec.twin.warm_start
            args = [
                (
                    wanted[k][0],
                    spec.twin.days,
                    k[3],
                    name,
                    float(spec.twin.scale),
                    wanted[k][1],
                    warm,
                )
                for k in todo
            ]
            for key, r in zip(todo, pool.map(run_twin, args), strict=True):
                cache[key] = r
            runs = {key: cache[key] for key in wanted}
            measured_last = _measured(inp, runs)
            by_flavor = _flavor_means(runs)
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
            # The step is damped by 1/it, so `moved` shrinks by itself: at iteration 6 a
            # measurement 0.12 away from the factor in use moved it by 0.02 and read as
            # converged. The fixed point's residual is the undamped distance.
            residual = max(abs(measured[key] - before[key]) for key in before)
            residual = max(
                [residual] + [abs(v - flag_before.get(t, v)) for t, v in flag_measured.items()]
            )
            res = solve(inp, diagnose=False)
            now = _orders_key(res)
            changed = len(set(now) ^ set(last))
            history.append(
                {
                    "iteration": it,
                    "new_runs": len(todo),
                    "order_lines_changed": changed,
                    "max_factor_change": round(moved, 4),
                    "max_measured_gap": round(residual, 4),
                    "goodput_h100e_months": res.totals["goodput_h100e_months"],
                }
            )
            if now == last or residual <= spec.twin.tolerance:
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
        "fleet": spec.twin.fleet,
        "final_factors": final,
        "measured_factors": {
            str(c): {k: round(v, 4) for (k, c2), v in sorted(measured_last.items()) if c2 == c}
            for c in sorted({c for _k, c in measured_last})
        },
        "by_flavor": by_flavor,
        "runs": [
            {"checkpoint": c, "sku": k, "nodes": dict(shape), "seed": s, **r}
            for (c, k, shape, s), r in sorted(cache.items())
        ],
        "flagship_factors": {str(t): round(v, 4) for t, v in inp.flagship_goodput.items()},
        "fleet_yaml_example": yaml.safe_dump(
            next(iter(_wanted(spec, inp, res).values()), ({}, ""))[0]
        ),
        "wall_s": round(time.perf_counter() - t0, 2),
    }
