"""Deep and quick passes at 100k GPUs, timed in CPU seconds of this process (the `cycle` bench of
run.py times wall seconds, which a shared machine inflates). cortex-2024 at an offered load of
1.6, seed 3: the queue passes 1,000 jobs within days; every schedule() call the twin makes is
timed, and the passes made while 900-1,100 jobs wait are the issue-11 band.

    python bench/cycle_cpu.py --days 6                 # this checkout
    PYTHONPATH=/tmp/base/src python bench/cycle_cpu.py  # another checkout's sources, same env
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import cortex.sim.twin as twin_mod
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.scheduler.cycle import schedule
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.synthetic import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=float, default=6.0)
    days = ap.parse_args().days
    samples: list[tuple[int, bool, float, int, int]] = []

    def timed(snap, pol, deep=True, commit=False, explain=True):  # type: ignore[no-untyped-def]
        t0 = time.process_time()
        plan = schedule(snap, pol, deep=deep, commit=commit, explain=explain)
        dt = time.process_time() - t0
        samples.append((len(snap.pending), deep, dt, len(plan.starts), len(plan.preemptions)))
        return plan

    twin_mod.schedule = timed  # type: ignore[assignment]
    topo = build(load_fleet_spec("cortex-2024"))
    jobs = generate(days=days, seed=3, fleet_gpus=topo.total_gpus, flavors=topo.flavors, load=1.6)
    t0 = time.process_time()
    Twin(topo, jobs, SimConfig(days=days, seed=3)).run()
    out: dict = {"days": days, "twin_cpu_s": round(time.process_time() - t0, 2)}
    for deep in (True, False):
        sel = [s for s in samples if s[1] == deep]
        ms = np.array([s[2] for s in sel]) * 1e3
        band = np.array([s[2] for s in sel if 900 <= s[0] <= 1100]) * 1e3
        out["deep" if deep else "quick"] = {
            "passes": len(sel),
            "cpu_sum_s": round(float(ms.sum()) / 1e3, 2),
            "p50_ms": round(float(np.median(ms)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "band_passes": int(band.size),
            "band_p50_ms": round(float(np.median(band)), 2) if band.size else None,
            "band_p99_ms": round(float(np.percentile(band, 99)), 2) if band.size else None,
            "starts": sum(s[3] for s in sel),
            "preemptions": sum(s[4] for s in sel),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
