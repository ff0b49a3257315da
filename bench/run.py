"""Cortex benchmarks: one command, results in bench/out/results.json (summarized by hand in
bench/RESULTS.md).

    python bench/run.py            # everything (about 10 minutes on 2 cores)
    python bench/run.py --only twin,cycle

Each timed simulation runs in its own process so that peak memory (ru_maxrss) is its own.
Timings are wall-clock on a shared machine: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SHARED = ROOT.parent / "shared"
PY = sys.executable


PRELUDE = """
import json, resource
def emit(d):
    d = d if isinstance(d, dict) else {"runs": d}
    d["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(d))
"""


def _child(code: str) -> dict:
    """Run python code in a fresh process; it emits one JSON line with its own peak RSS."""
    out = subprocess.run(
        [PY, "-c", PRELUDE + code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


TWIN = """
import json, time
from cortex.fleet.spec import load_fleet_spec, parse_fleet
from cortex.fleet.topology import build
from cortex.sim.twin import SimConfig, Twin
from cortex.sim.report import build_report
from cortex.workload.synthetic import generate
spec = {spec}
topo = build(parse_fleet(spec, 'bench') if isinstance(spec, dict) else load_fleet_spec(spec))
t0 = time.perf_counter()
jobs = generate(days={days}, seed={seed}, fleet_gpus=topo.total_gpus, flavors=topo.flavors)
gen_s = time.perf_counter() - t0
tw = Twin(topo, jobs, SimConfig(days={days}, seed={seed}, policy='{policy}',
                               backfill_interval_s={interval})).run()
total_s = time.perf_counter() - t0
r = build_report(tw, 'synthetic')
emit((dict(gpus=topo.total_gpus, jobs=len(jobs), events=tw.events, sim_wall_s=tw.wall_s,
    gen_s=gen_s, total_s=total_s, completed=r['jobs']['completed'],
    utilization=r['utilization']['allocated'], goodput=r['goodput'],
    interruptions=r['interruptions']['unexpected'], preemptions=r['preemptions'],
    cycles=r['scheduler_cycles'], cycle_ms=r['timing']['cycle_ms'],
    energy_mwh=r['energy_mwh'], peak_facility_mw=r['peak_facility_mw'])))
"""

BARE = """
import json, sys, time
sys.path.insert(0, 'bench')
from baseline import bare_loop
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.workload.synthetic import generate
topo = build(load_fleet_spec('{spec}'))
jobs = generate(days={days}, seed={seed}, fleet_gpus=topo.total_gpus, flavors=topo.flavors)
t0 = time.perf_counter()
ev = bare_loop(topo, jobs, {days} * 86400.0)
emit(dict(events=ev, sim_wall_s=time.perf_counter() - t0))
"""


POWER = """
import time
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.power.battery import BatterySpec
from cortex.sim.power import PowerConfig
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.synthetic import generate
topo = build(load_fleet_spec('cortex-2024'))
jobs = generate(days={days}, seed={seed}, fleet_gpus=topo.total_gpus, flavors=topo.flavors,
                load={load})
pc = None if '{policy}' == 'off' else PowerConfig(policy='{policy}', **{kw})
tw = Twin(topo, jobs, SimConfig(days={days}, seed={seed}, power=pc)).run()
r = build_report(tw, 'synthetic')
p = r['power'] or {{}}
p.pop('series', None)
emit(dict(policy='{policy}', sim_wall_s=tw.wall_s, events=tw.events,
          useful_gpu_h=r['gpu_hours']['productive'], allocated=r['utilization']['allocated'],
          completed=r['jobs']['completed'], preemptions=r['preemptions'],
          peak_facility_mw=r['peak_facility_mw'], power=p))
"""


def bench_power(days: float = 30.0, load: float = 0.85) -> dict:
    """Issue 3: cortex-2024 for 30 days in July at its 130 MW cap: no power awareness, a static
    per-GPU cap, admission only, our capping policy, and the full policy with the ramp limit
    (smallest Megapack battery found); plus the speed with power off."""
    runs = {}
    for name, policy, kw in (
        ("off", "off", {}),
        ("none", "none", {}),
        ("static", "static", {}),
        ("admit", "admit", {}),
        ("cap", "cap", {}),
        ("full", "full", {}),
    ):
        runs[name] = _child(POWER.format(days=days, seed=0, load=load, policy=policy, kw=repr(kw)))
        print(f"  {name}: {runs[name]['sim_wall_s']:.1f} s", flush=True)
    base = runs["none"]["useful_gpu_h"]
    summary = {
        name: {
            "useful_gpu_h_vs_none": round(r["useful_gpu_h"] / base, 4),
            "minutes_over_cap": r["power"].get("minutes_over_cap"),
            "peak_facility_mw": r["peak_facility_mw"],
            "max_ramp_mw_per_min": r["power"].get("max_ramp_mw_per_min"),
            "wall_vs_off": round(r["sim_wall_s"] / runs["off"]["sim_wall_s"], 2),
        }
        for name, r in runs.items()
    }
    return {"days": days, "load": load, "runs": runs, "summary": summary}


def bench_power_speed(days: float = 30.0, repeats: int = 3) -> dict:
    """Wall time with power off, `cap` and `full`, interleaved `repeats` times; medians."""
    walls: dict[str, list[float]] = {"off": [], "cap": [], "full": []}
    for _ in range(repeats):
        for policy, runs in walls.items():
            r = _child(POWER.format(days=days, seed=0, load=0.85, policy=policy, kw="{}"))
            runs.append(round(r["sim_wall_s"], 2))
    med = {k: statistics.median(v) for k, v in walls.items()}
    return {
        "days": days,
        "wall_s": walls,
        "median_wall_s": med,
        "cap_vs_off": round(med["cap"] / med["off"], 2),
        "full_vs_off": round(med["full"] / med["off"], 2),
    }


def bench_twin(days: float = 30.0) -> dict:
    """The headline: cortex-2024, 30 days, synthetic workload, failures on."""
    twin = _child(
        TWIN.format(spec="'cortex-2024'", days=days, seed=0, policy="priority", interval=None)
    )
    bare = _child(BARE.format(spec="cortex-2024", days=days, seed=0))
    twin["events_per_s"] = round(twin["events"] / twin["sim_wall_s"])
    return {
        "twin": twin,
        "bare_loop": bare,
        "ratio_twin_to_bare_wall": round(twin["sim_wall_s"] / bare["sim_wall_s"], 1),
    }


def _hall_fleet(gpus: int) -> dict:
    nodes = gpus // 8
    halls = []
    per_hall = 3125
    for h in range(math.ceil(nodes / per_hall)):
        n = min(per_hall, nodes - h * per_hall)
        halls.append({"name": f"hall-{h}", "groups": [{"flavor": "H100-SXM5", "nodes": n}]})
    return {"name": f"h100-{gpus}", "site": {"pue": 1.25}, "halls": halls}


def bench_scale(days: float = 7.0) -> dict:
    """Same horizon at 10k, 100k and 400k GPUs: cost per event should stay ~flat (log factor)."""
    rows = {}
    for gpus in (10_000, 100_000, 400_000):
        r = _child(
            TWIN.format(
                spec=repr(_hall_fleet(gpus)), days=days, seed=0, policy="priority", interval=None
            )
        )
        r["us_per_event"] = round(1e6 * r["sim_wall_s"] / r["events"], 1)
        r["us_per_event_log"] = round(
            1e6 * r["sim_wall_s"] / (r["events"] * math.log2(r["events"])), 3
        )
        rows[str(gpus)] = r
    return {"days": days, "fleets": rows}


CYCLE = """
import json, time
import numpy as np
import cortex.sim.twin as twin_mod
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.scheduler.cycle import schedule
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.synthetic import generate
samples = []
def timed(snap, pol, deep=True, commit=False, explain=True):
    t0 = time.perf_counter()
    plan = schedule(snap, pol, deep=deep, commit=commit, explain=explain)
    samples.append((len(snap.pending), deep, time.perf_counter() - t0, len(plan.starts)))
    return plan
twin_mod.schedule = timed
topo = build(load_fleet_spec('cortex-2024'))
# Offered load 1.6: the queue grows past 1,000 jobs within days; time every cycle the twin runs.
jobs = generate(days={days}, seed=3, fleet_gpus=topo.total_gpus, flavors=topo.flavors, load=1.6)
tw = Twin(topo, jobs, SimConfig(days={days}, seed=3)).run()
out = dict(gpus=topo.total_gpus, cycles=len(samples))
for deep in (True, False):
    sel = [s for s in samples if s[1] == deep and 900 <= s[0] <= 1100]
    if not sel:
        continue
    a = np.array([s[2] for s in sel]) * 1e3
    out['deep' if deep else 'quick'] = dict(
        n=len(sel), queued_mean=float(np.mean([s[0] for s in sel])),
        starts_mean=float(np.mean([s[3] for s in sel])), p50_ms=float(np.median(a)),
        p90_ms=float(np.percentile(a, 90)), p99_ms=float(np.percentile(a, 99)),
        max_ms=float(a.max()))
a = np.array([s[2] for s in samples if 900 <= s[0] <= 1100]) * 1e3
out['all'] = dict(n=int(a.size), p50_ms=float(np.median(a)), p99_ms=float(np.percentile(a, 99)))
out['max_queue'] = max(s[0] for s in samples)
emit(out)
"""


def bench_cycle(days: float = 12.0) -> dict:
    """Scheduling cycles at 100k GPUs while 900-1,100 jobs are queued: every cycle the twin ran
    in that band, quick and deep passes apart."""
    return _child(CYCLE.format(days=days))


def bench_philly() -> dict:
    """Philly VCs replayed on 48 x 4 GPUs: FIFO vs Tiresias LAS mean JCT."""
    rows = {}
    traces = sorted((SHARED / "traces" / "philly-gavel").glob("seed0-*.csv"))
    for tr in traces[:9]:
        res = {}
        for pol in ("fifo", "las"):
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                subprocess.run(
                    [
                        "cortex",
                        "sim",
                        "--fleet",
                        "philly-48x4",
                        "--trace",
                        str(tr),
                        "--days",
                        "150",
                        "--policy",
                        pol,
                        "--no-failures",
                        "--quiet",
                        "--checkpoint-write-s",
                        "10",
                        "--checkpoint-interval-s",
                        "600",
                        "--json",
                        f.name,
                    ],
                    check=True,
                    capture_output=True,
                    cwd=ROOT,
                )
                r = json.loads(Path(f.name).read_text())
            res[pol] = {
                "mean_jct_h": round(r["jobs"]["jct_s"]["mean"] / 3600, 2),
                "p50_jct_h": round(r["jobs"]["jct_s"]["p50"] / 3600, 2),
                "completed": r["jobs"]["completed"],
                "submitted": r["jobs"]["submitted"],
                "preemptions": r["preemptions"],
            }
        res["las_over_fifo_mean_jct"] = round(
            res["las"]["mean_jct_h"] / res["fifo"]["mean_jct_h"], 3
        )
        rows[tr.stem] = res
    return rows


RELIABILITY = """
import json
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim.twin import SimConfig, Twin
from cortex.sim.report import build_report
from cortex.workload.sources import single_job
topo = build(load_fleet_spec('llama3-16k'))
out = []
for seed in range({seeds}):
    tw = Twin(topo, [single_job(16384, 54 * 86400.0)], SimConfig(days=54, seed=seed)).run()
    r = build_report(tw)
    out.append(dict(seed=seed, unexpected=r['interruptions']['unexpected'],
                    by_cause=r['interruptions']['by_cause'],
                    ett=r['large_jobs'][0]['effective_training_time'], goodput=r['goodput']))
emit(out)
"""


def bench_reliability(seeds: int = 10) -> dict:
    """single:16384 on 16,384 H100 (+ hot spares) for 54 days vs Llama 3's 419."""
    runs = _child(RELIABILITY.format(seeds=seeds))["runs"]
    vals = [r["unexpected"] for r in runs]
    causes: dict[str, int] = {}
    for r in runs:
        for k, v in r["by_cause"].items():
            causes[k] = causes.get(k, 0) + v
    return {
        "seeds": seeds,
        "mean_unexpected": statistics.mean(vals),
        "min": min(vals),
        "max": max(vals),
        "target": 419,
        "mean_effective_training_time": round(statistics.mean(r["ett"] for r in runs), 4),
        "by_cause_mean": {
            k: round(v / seeds, 1) for k, v in sorted(causes.items(), key=lambda x: -x[1])
        },
    }


def bench_interval(days: float = 30.0) -> dict:
    """Sensitivity to the deep (backfill) pass interval: speed against scheduling quality."""
    rows = {}
    for interval in (30.0, 60.0, 120.0):
        r = _child(
            TWIN.format(
                spec="'cortex-2024'", days=days, seed=0, policy="priority", interval=interval
            )
        )
        rows[str(int(interval))] = {
            k: r[k]
            for k in ("sim_wall_s", "events", "completed", "utilization", "goodput", "preemptions")
        }
    return rows


MONTH_BARE = """
import sys
sys.path.insert(0, 'bench')
from baseline import bare_loop
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.workload.synthetic import generate
topo = build(load_fleet_spec('cortex-2024'))
jobs = generate(
    days={days}, seed=0, fleet_gpus=topo.total_gpus, flavors=topo.flavors, warm=True
)
bare_loop(topo, jobs, {days} * 86400.0)
"""


def _whole(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one whole process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd} exited {proc.returncode}")
    cpu = usage.ru_utime + usage.ru_stime
    return round(wall, 2), round(cpu, 2), round(usage.ru_maxrss / 1024, 1)


def _compile_bytecode(cmds: Iterable[tuple[list[str], dict[str, str] | None]]) -> None:
    """Write the bytecode caches of every source tree the timed runs import from: the
    checkout's own (src/, bench/) and each PYTHONPATH entry (a BENCH_BASE_SRC tree).
    compileall writes them even under PYTHONDONTWRITEBYTECODE, which only stops the
    interpreter writing them on import; the timed runs still read them."""
    trees = {ROOT / "src", ROOT / "bench"}
    for _, env in cmds:
        for entry in (env or {}).get("PYTHONPATH", "").split(os.pathsep):
            if entry:
                trees.add(Path(entry))
    for tree in sorted(trees):
        if not tree.is_dir():
            raise SystemExit(f"PYTHONPATH/BENCH_BASE_SRC: {tree} is not a directory")
        subprocess.run(
            [PY, "-m", "compileall", "-q", str(tree)], check=True, stdout=subprocess.DEVNULL
        )


def bench_month(days: float = 30.0, repeats: int = 3) -> dict:
    """Issue 11's headline, as a user runs it: whole processes of `cortex sim --fleet
    cortex-2024 --days 30` (defaults: power `none`, warm start), the same with
    `--power-policy full`, and the bare loop on the same jobs (warm ones included) including
    generating them; interleaved `repeats` times, medians and ratios within the run, of wall
    and of CPU seconds (on a shared machine CPU is the steadier one). BENCH_BASE_SRC=path adds
    the same sim runs on another checkout's sources (`sim_base`, `sim_full_base`: a lever's
    effect on `none` and on `full`, and the base's own full/none); BENCH_REPEATS=n;
    BENCH_DAYS=d. BENCH_COMPILED=1 adds both sim runs on the compiled core (`python -m
    cortex.compile` first; refused unless that build is current), the pure ones then run with
    CORTEX_COMPILED=0. Bytecode is compiled once before timing (`compileall` over every
    tree the runs import from), as an installed package or any machine without
    PYTHONDONTWRITEBYTECODE has it after its first run: a machine that sets that variable (this
    one does) would otherwise recompile ~80 modules in every timed process (RESULTS 115, 121);
    BENCH_BYTECODE=env keeps the environment's setting instead."""
    days = float(os.environ.get("BENCH_DAYS", days))
    sim = [PY, "-m", "cortex.cli.main", "sim", "--fleet", "cortex-2024", "--days", str(days)]
    with_compiled = os.environ.get("BENCH_COMPILED") == "1"
    pure = {**os.environ, "CORTEX_COMPILED": "0"}
    cmds: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "bare": ([PY, "-c", MONTH_BARE.format(days=days)], pure),
        "sim": ([*sim, "--quiet"], pure),
        "sim_full": ([*sim, "--quiet", "--power-policy", "full"], pure),
    }
    if with_compiled:
        from cortex import compiled

        found = compiled.read_manifest(compiled.build_dir())
        why = found if isinstance(found, str) else compiled.stale_reason(found)
        if why is not None:
            raise SystemExit(f"BENCH_COMPILED=1: {why}; run python -m cortex.compile")
        native = {**os.environ, "CORTEX_COMPILED": "1"}
        cmds["sim_compiled"] = (cmds["sim"][0], native)
        cmds["sim_full_compiled"] = (cmds["sim_full"][0], native)
    repeats = int(os.environ.get("BENCH_REPEATS", repeats))
    base = os.environ.get("BENCH_BASE_SRC")
    if base:
        cmds["sim_base"] = ([*sim, "--quiet"], {**pure, "PYTHONPATH": base})
        cmds["sim_full_base"] = (cmds["sim_full"][0], {**pure, "PYTHONPATH": base})
    bytecode = os.environ.get("BENCH_BYTECODE", "cached")
    if bytecode not in ("cached", "env"):
        raise SystemExit(f"BENCH_BYTECODE: {bytecode!r} is neither 'cached' nor 'env'")
    if bytecode == "cached":
        _compile_bytecode(cmds.values())
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, float] = {}
    loads = [round(os.getloadavg()[0], 1)]
    for _ in range(repeats):
        for name, (cmd, env) in cmds.items():
            wall, cpu, mib = _whole(cmd, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
            rss[name] = max(rss.get(name, 0.0), mib)
            print(f"  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
        loads.append(round(os.getloadavg()[0], 1))
    med = {k: statistics.median(v) for k, v in walls.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpus.items()}
    out = {
        "days": days,
        "bytecode": bytecode,
        "load_avg_1m": loads,
        "wall_s": walls,
        "cpu_s": cpus,
        "median_wall_s": med,
        "median_cpu_s": med_cpu,
        "peak_rss_mib": rss,
        "sim_vs_bare": round(med["sim"] / med["bare"], 2),
        "sim_vs_bare_cpu": round(med_cpu["sim"] / med_cpu["bare"], 2),
        "full_vs_none": round(med["sim_full"] / med["sim"], 2),
        "full_vs_none_cpu": round(med_cpu["sim_full"] / med_cpu["sim"], 2),
    }
    if base:
        out["sim_vs_base_cpu"] = round(med_cpu["sim"] / med_cpu["sim_base"], 2)
        out["full_vs_base_cpu"] = round(med_cpu["sim_full"] / med_cpu["sim_full_base"], 2)
        out["full_vs_none_base_cpu"] = round(med_cpu["sim_full_base"] / med_cpu["sim_base"], 2)
    if with_compiled:
        for m, key in ((med, ""), (med_cpu, "_cpu")):
            out["compiled_vs_bare" + key] = round(m["sim_compiled"] / m["bare"], 2)
            out["compiled_vs_pure" + key] = round(m["sim_compiled"] / m["sim"], 2)
            out["full_vs_none_compiled" + key] = round(
                m["sim_full_compiled"] / m["sim_compiled"], 2
            )
    return out


BENCHES = {
    "month": bench_month,
    "twin": bench_twin,
    "cycle": bench_cycle,
    "scale": bench_scale,
    "philly": bench_philly,
    "reliability": bench_reliability,
    "interval": bench_interval,
    "power": bench_power,
    "power_speed": bench_power_speed,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--only", default=",".join(BENCHES), help="comma-separated: " + ",".join(BENCHES)
    )
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
    }
    for name in args.only.split(","):
        t0 = time.time()
        print(f"[bench] {name} ...", flush=True)
        results[name] = BENCHES[name]()
        results[name]["bench_wall_s"] = round(time.time() - t0, 1)
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(results[name], indent=1), flush=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
