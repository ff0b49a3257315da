"""How good are start estimates? In a seeded twin run, predict each sampled job's start when it
arrives (the live state run forward with the same `schedule()`: control/estimate.py), then
compare with the start the same simulation gives it.

Two predictors, the same forward simulation, only the runtimes differ:
- Cortex: the runtime estimates the driver has (in the twin these are the true remaining
  durations, docs/ARCHITECTURE.md limitation (c)); what it cannot know is failures and later
  arrivals.
- Slurm-style: every runtime is the requested wall time, taken as twice the true runtime.
  This is an assumption that stands in for users' limits. Tsafrir, Etsion and Feitelson
  (IEEE TPDS 18(6), 2007) report that user estimates overstate runtimes, and that actual runtime
  is commonly about half the requested one.

The score is the median over jobs that waited at least 60 s of |predicted - actual| / wait.

    python bench/estimate_accuracy.py --fleet llama3-16k --days 4 --load 1.1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from types import SimpleNamespace
from typing import Any

import cortex.sim.twin as twin_mod
from cortex.control import estimate as est
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.scheduler.cycle import schedule
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.synthetic import generate

MAX_PREDICTIONS = 300
REQUESTED_OVER_ACTUAL = 2.0  # the Slurm-style baseline's runtimes (see the module docstring)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fleet", default="philly-48x4")
    ap.add_argument("--days", type=float, default=3.0)
    ap.add_argument("--load", type=float, default=1.3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup-days", type=float, default=None, help="default: a quarter")
    ap.add_argument("--every", type=int, default=3, help="predict every Nth arrival")
    ap.add_argument("--max", type=int, default=MAX_PREDICTIONS, help="predictions at most")
    args = ap.parse_args()
    warmup_s = 86_400.0 * (args.days / 4 if args.warmup_days is None else args.warmup_days)
    topo = build(load_fleet_spec(args.fleet))
    jobs = generate(
        days=args.days, seed=args.seed, fleet_gpus=topo.total_gpus, flavors=topo.flavors,
        load=args.load,
    )  # fmt: skip
    seen: set[int] = set()
    pred: dict[int, tuple[float, float, float]] = {}  # id: (submit, cortex, slurm-style)
    cpu = [0.0]

    def hooked(snap: Any, pol: Any, deep: bool = True, commit: bool = False) -> Any:
        new = [j.id for j in snap.pending if j.id not in seen]
        seen.update(new)
        # After the warm-up, every Nth arrival (ids are in arrival order).
        new = [i for i in new if i % args.every == 0] if snap.now_s >= warmup_s else []
        if new and len(pred) < args.max:
            t0 = time.process_time()
            _predict(snap, pol, set(new[: args.max - len(pred)]), pred)
            cpu[0] += time.process_time() - t0
        return schedule(snap, pol, deep=deep, commit=commit)

    twin_mod.schedule = hooked  # type: ignore[assignment]
    twin = Twin(topo, jobs, SimConfig(days=args.days, seed=args.seed))
    twin.run()
    by_id = {j.id: j for j in jobs}
    ours, slurm, waits = [], [], []
    unstarted = 0
    for jid, (submit, p_ours, p_slurm) in pred.items():
        start = by_id[jid].first_start_s
        if start < 0:
            unstarted += 1
            continue
        wait = start - submit
        if wait < 60:
            continue
        waits.append(wait)
        ours.append(abs(p_ours - start) / wait)
        slurm.append(abs(p_slurm - start) / wait)
    out = {
        "fleet": args.fleet,
        "days": args.days,
        "load": args.load,
        "seed": args.seed,
        "predicted": len(pred),
        "scored (waited >= 60 s)": len(ours),
        "never started in the run": unstarted,
        "median wait_s": round(statistics.median(waits), 1) if waits else None,
        "cortex median |err|/wait": round(statistics.median(ours), 3) if ours else None,
        "slurm-style median |err|/wait": round(statistics.median(slurm), 3) if slurm else None,
        "prediction cpu_s": round(cpu[0], 2),
    }
    print(json.dumps(out, indent=2))


def _predict(
    snap: Any, pol: Any, targets: set[int], pred: dict[int, tuple[float, float, float]]
) -> None:
    st = snap.state
    rec = SimpleNamespace(
        at=snap.now_s,
        queues=tuple(tuple(lst) for lst in snap.pending.lists),
        started=frozenset(),
        running=[(st.running[j], a.flavor, a.placement) for j, a in st.allocations.items()],
    )
    got = {}
    for factor in (1.0, REQUESTED_OVER_ACTUAL):
        got[factor] = est._simulate(  # one run each: the point estimates
            st.topo, st.queues, pol, snap.now_s, rec.running,
            [j for q in rec.queues for _, j in q], snap.estimate_s, snap.speed,
            lambda _jid, f=factor: f, targets,
        )  # fmt: skip
    for jid in targets:
        a, b = got[1.0].get(jid), got[REQUESTED_OVER_ACTUAL].get(jid)
        if a is not None and b is not None:
            pred[jid] = (snap.now_s, a, b)


if __name__ == "__main__":
    main()
