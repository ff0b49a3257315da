"""How good are start estimates? In a seeded twin run, predict sampled jobs' starts when they
arrive with the control plane's estimator, then compare with the start the same simulation
gives them: Cortex's runtimes against Slurm-style requested wall times (twice the true ones).
The measurement and its assumptions: src/cortex/control/estimate_accuracy.py. The twin runs at
the live loop's pass cadence (`--backfill-interval-s`, default 1 s; 60 s is the twin's own
default, for speed, and its cadence then decides the error: RESULTS §23).

    python bench/estimate_accuracy.py --fleet llama3-16k --days 4 --load 2.0 --min-gpus 64 \
        --seeds 1,2,3
"""

from __future__ import annotations

import argparse
import json

from cortex.control.estimate_accuracy import LIVE_PASS_S, measure
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim.twin import SimConfig
from cortex.workload.synthetic import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fleet", default="llama3-16k")
    ap.add_argument("--days", type=float, default=4.0)
    ap.add_argument("--load", type=float, default=2.0)
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--warmup-days", type=float, default=None, help="default: a quarter")
    ap.add_argument("--every", type=int, default=1, help="predict every Nth sampled arrival")
    ap.add_argument("--min-gpus", type=int, default=64, help="sample jobs this large or more")
    ap.add_argument("--max", type=int, default=300, help="predictions at most per run")
    ap.add_argument("--min-wait-s", type=float, default=60.0)
    ap.add_argument("--backfill-interval-s", type=float, default=LIVE_PASS_S)
    args = ap.parse_args()
    warmup_s = 86_400.0 * (args.days / 4 if args.warmup_days is None else args.warmup_days)
    topo = build(load_fleet_spec(args.fleet))
    for seed in (int(x) for x in args.seeds.split(",")):
        jobs = generate(
            days=args.days, seed=seed, fleet_gpus=topo.total_gpus, flavors=topo.flavors,
            load=args.load,
        )  # fmt: skip
        cfg = SimConfig(days=args.days, seed=seed, backfill_interval_s=args.backfill_interval_s)
        out = measure(
            topo, jobs, cfg, warmup_s=warmup_s, every=args.every, min_gpus=args.min_gpus,
            max_predictions=args.max, min_wait_s=args.min_wait_s,
        )  # fmt: skip
        print(json.dumps({"fleet": args.fleet, "days": args.days, "load": args.load,
                          "seed": seed, **out}))  # fmt: skip


if __name__ == "__main__":
    main()
