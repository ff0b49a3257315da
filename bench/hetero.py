"""Heterogeneity-aware scheduling: the `hetero` profile against flavor-order placement.

    python bench/hetero.py                 # solve timing, both twin runs, the comparison
    python bench/hetero.py --only twin --policies hetero   # one run (runs may go in parallel)
    python bench/hetero.py --only report --append          # compare, add to bench/RESULTS.md
    python bench/hetero.py --only bound --days 30          # the steady-state ceiling, no twin

1. `solve`: the allocation solve (HeteroAllocator.solve: class aggregation + two HiGHS LPs) on
   a snapshot of about 100,000 GPUs (cortex-2026's mix scaled down) holding 50,000 jobs
   (running until the fleet is full, the rest pending); p50/p99/max over repeats.
2. `twin`: `cortex sim` on cortex-2026 with the synthetic mix, same seed, profiles `priority`
   (flavor-order placement) and `hetero`, each in its own process. Reported per profile:
   - work done: sum over jobs of gang GPUs x reference (H100) seconds of progress made, in
     H100-equivalent GPU-hours (checkpointed or not at the horizon), total and per team;
   - H100-eq allocated: GPU-seconds held x speed(kind, flavor), per team, over the horizon,
     against each team's entitlement (the best its offered work could get alone on its nominal
     quota of every flavor: the LP's entitlement with the offered GPU rate as demand);
   - the fluid bound: the most effective throughput (H100-eq) any placement could sustain on
     this fleet for this offered mix (an LP with each class capped at its offered work).
   The job stream starts warm (`generate(warm=True)`, unless --cold) and the window figures
   (`window_*`: work done, H100-eq held per flavor and kind, sampled hourly) start after
   --warmup-days, so that a saturated fleet is measured, not its filling.
3. `bound`: the steady-state ceiling without a twin: the best placement of the offered mix
   against the worst one that keeps every GPU busy, and the same ignoring the mix.
Timings are wall clock on a shared machine; the throughput figures do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from hetero_report import markdown

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable

SOLVE = r"""
import json, statistics, time
import numpy as np
from cortex.fleet.spec import load_fleet_spec, parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.hetero import HeteroAllocator
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.placement import TopologyBestFit
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.states import JobState
from cortex.workload.synthetic import generate
from cortex.workload.throughput import ThroughputTable

spec = load_fleet_spec("cortex-2026").model_dump()
scale = {scale}
for hall in spec["halls"]:
    for g in hall["groups"]:
        g["nodes"] = max(1, round(g["nodes"] * scale))
topo = build(parse_fleet(spec, "bench"))
jobs = []
days = 2.0
while len(jobs) < {n_jobs}:
    jobs = generate(days=days, seed=0, fleet_gpus=topo.total_gpus, flavors=topo.flavors)
    days *= 1.5
jobs = jobs[: {n_jobs}]
qc = QueueConfig.build(topo.spec.queues, topo)
st = ClusterState(topo, qc)
alloc = HeteroAllocator()
pend = PendingQueues(len(qc.queues), lambda j: (-j.priority, j.submit_s, j.id))
place = TopologyBestFit()
running = 0
for j in jobs:
    j.queue_idx = qc.index(j.team)
    j.flavor_ids = tuple(topo.flavors.index(f) for f in j.flavors)
    done = False
    for f in j.flavor_ids or range(len(topo.flavors)):
        if st.free_gpus[f] < j.gpus:
            continue
        p = place.place(st, f, j.gpus)
        if p is not None:
            j.state = JobState.RUNNING
            j.alloc_gpus = st.start(j, j.queue_idx, f, p)
            running += 1
            done = True
            break
    if not done:
        pend.add(j)
table = ThroughputTable.load()
speed = lambda k, f: table.speed(k, topo.flavors[f])
snap = Snapshot(0.0, st, pend, speed, lambda j, f, g: 3600.0)
alloc.solve(snap)  # warm: imports scipy
times = []
for _ in range({repeats}):
    t0 = time.perf_counter()
    t = alloc.solve(snap)
    times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({{
    "gpus": topo.total_gpus, "jobs": len(jobs), "running": running, "pending": len(pend),
    "classes": t.classes, "repeats": len(times),
    "p50_s": statistics.median(times), "p99_s": times[min(len(times) - 1, int(0.99 * len(times)))],
    "max_s": times[-1], "fair_level": t.fair_level,
}}))
"""

TWIN = r"""
import json, time
from collections import defaultdict
import numpy as np
from cortex.fleet.spec import load_fleet_spec, parse_fleet
from cortex.fleet.topology import build
from cortex.scheduler.hetero_lp import LpInput, solve
from cortex.scheduler.queues import QueueConfig
from cortex.sim import checkpoint as ckpt
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.states import JobState
from cortex.workload.synthetic import generate
from cortex.workload.throughput import ThroughputTable


class MeteredTwin(Twin):
    # Books each run's H100-equivalents held (GPUs x wall time x speed) per team.
    def _account_stop(self, job, done_f, saved_f, elapsed, completed=False, preempted=False,
                      real_s=None):
        real = elapsed if real_s is None else real_s
        eq = self.eq_by_team
        eq[job.team] = eq.get(job.team, 0.0) + job.alloc_gpus * real * self.speeds[
            (job.kind, job.run_flavor)]
        fl = self.eq_by_flavor
        fl[job.run_flavor] = fl.get(job.run_flavor, 0.0) + job.alloc_gpus * real * self.speeds[
            (job.kind, job.run_flavor)]
        super()._account_stop(job, done_f, saved_f, elapsed, completed, preempted, real_s)

    def _apply(self, plan):
        # Who searched for victims and who evicted whom in the window: failed searches by
        # (team, class); evictions by (preemptor team, class) -> (victim team, class, flavor).
        if self.window_work0 is not None:
            for jid in plan.preempt_failed:
                j = self._by_id[jid]
                key = (j.team, j.priority)
                self.searches_failed[key] = self.searches_failed.get(key, 0) + 1
            for p in plan.preemptions:
                by = self._by_id[p.reason.detail["by"]]
                v = p.job
                key = (by.team, by.priority, v.team, v.priority, self.topo.flavors[v.run_flavor])
                self.evictions[key] = self.evictions.get(key, 0) + 1
        super()._apply(plan)

    def _preempt(self, job, why):
        # Preemptions in the window (victim's team, flavor, priority class): their count and
        # the GPUs the victims held (power pauses are counted apart).
        if self.window_work0 is not None:
            key = (job.team, self.topo.flavors[job.run_flavor], job.priority, why)
            got = self.preempted.setdefault(key, [0, 0])
            got[0] += 1
            got[1] += job.alloc_gpus
        super()._preempt(job, why)

    def _advance(self, t):
        # Samples the running set at a fixed step once the warm-up is over (the state is
        # constant between events), and the work done at the window's start.
        while self.next_sample_s <= t and self.next_sample_s < self.horizon_s:
            self.now = self.next_sample_s
            if self.window_work0 is None:
                self.window_work0 = work_now(self)
            held = [0.0] * len(self.topo.flavors)
            busy = [0.0] * len(self.topo.flavors)
            by_kind = self.held_by_kind
            for j in self.state.running.values():
                eq = j.gpus * self.speeds[(j.kind, j.run_flavor)]
                held[j.run_flavor] += eq
                busy[j.run_flavor] += j.alloc_gpus
                key = (self.topo.flavors[j.run_flavor], j.kind)
                gk = by_kind.setdefault(key, [0.0, 0.0])
                gk[0] += eq
                gk[1] += j.alloc_gpus
                tk = (key[0], j.team)
                self.held_by_team[tk] = self.held_by_team.get(tk, 0) + j.alloc_gpus
                self.held_eq_by_team[j.team] = self.held_eq_by_team.get(j.team, 0.0) + eq
            self.samples.append((held, busy, len(self.pending)))
            # Why a team stays under its entitlement: the solve's targets (GPUs per team and
            # flavor), and what its waiting jobs ask for (GPUs, by priority class and by
            # whether they accept an NVIDIA flavor).
            tg = self._allocation.targets
            if tg is not None:
                for q, row in enumerate(tg.queue_gpus):
                    for f, v in enumerate(row):
                        key = (self.topo.flavors[f], self.state.queues.queues[q].name)
                        self.target_sum[key] = self.target_sum.get(key, 0.0) + v
            for j in self.pending:
                nv = not j.flavor_ids or any(self.topo.flavors[f] != "Dojo-D1"
                                             for f in j.flavor_ids)
                key = (j.team, j.priority, "nvidia-ok" if nv else "dojo-only")
                self.waiting_sum[key] = self.waiting_sum.get(key, 0) + j.gpus
            self.next_sample_s += SAMPLE_S
        super()._advance(t)


def work_now(tw):
    # H100-eq GPU-h of work done by now per team (checkpointed or not).
    work = defaultdict(float)
    for j in tw.jobs:
        done = j.done_s
        if j.state is JobState.RUNNING:
            d, _ = ckpt.progress(tw._run_elapsed(j), j.run_overhead_s, j.run_tau_s,
                                 j.ckpt_write_s or 0.0)
            done = min(done + d * j.run_speed, j.work_s)
        work[j.team] += j.gpus * done / 3600.0
    return work


SAMPLE_S = 3600.0


def days_of(tw):
    return [tw.samples[i:i + 24] for i in range(0, len(tw.samples), 24)]


days, policy = {days}, "{policy}"
spec = load_fleet_spec("{fleet}").model_dump()
for hall in spec["halls"]:
    for g in hall["groups"]:
        g["nodes"] = max(1, round(g["nodes"] * {fleet_scale}))
topo = build(parse_fleet(spec, "{fleet} x {fleet_scale}"))
jobs = generate(days=days, seed={seed}, fleet_gpus=topo.total_gpus, flavors=topo.flavors,
                warm={warm})
tw = MeteredTwin(topo, jobs, SimConfig(days=days, seed={seed}, policy=policy))
tw.eq_by_team, tw.eq_by_flavor = {{}}, {{}}
tw.next_sample_s, tw.samples, tw.window_work0 = {warmup_days} * 86400.0, [], None
tw.held_by_kind = {{}}
tw.held_by_team, tw.preempted = {{}}, {{}}
tw.held_eq_by_team = {{}}
tw.target_sum, tw.waiting_sum = {{}}, {{}}
tw.searches_failed, tw.evictions = {{}}, {{}}
work_start = work_now(tw)  # warm jobs arrive with work already done
t0 = time.perf_counter()
tw.run()
wall = time.perf_counter() - t0
horizon_h = days * 24.0
work_end = work_now(tw)
work = {{t: v - work_start.get(t, 0.0) for t, v in work_end.items()}}
w0 = tw.window_work0 or work_start
window_h = days * 24.0 - {warmup_days} * 24.0
window_work = {{t: v - w0.get(t, 0.0) for t, v in work_end.items()}}
n_s = max(len(tw.samples), 1)
held_mean = [sum(s[0][f] for s in tw.samples) / n_s for f in range(len(topo.flavors))]
busy_mean = [sum(s[1][f] for s in tw.samples) / n_s for f in range(len(topo.flavors))]

# Entitlements and the fluid bound from the offered mix: classes (team, kind, flavors).
table = ThroughputTable.load()
qc = QueueConfig.build(topo.spec.queues, topo)
nf = len(topo.flavors)
offered = defaultdict(float)  # GPUs (H100 work rate) per class over the horizon
for j in jobs:
    if j.submit_s < days * 86400:
        ids = tuple(topo.flavors.index(f) for f in j.flavors) or tuple(range(nf))
        offered[(qc.index(j.team), j.kind, ids)] += j.gpus * j.work_s / (days * 86400)
keys = sorted(offered)
speed = np.zeros((len(keys), nf))
for c, (_, k, ids) in enumerate(keys):
    for f in ids:
        speed[c, f] = table.speed(k, topo.flavors[f])
nominal = np.array([q.nominal for q in qc.queues], dtype=float)
# Offered work W (H100-eq/s) needs W / s GPUs on flavor f: demand in GPUs is bounded by the
# class's work on its slowest allowed flavor, and the bound's work cap is applied below.
lp = LpInput(class_queue=np.array([q for q, _, _ in keys]),
             demand_gpus=np.array([offered[k] / speed[c][speed[c] > 0].min()
                                   for c, k in enumerate(keys)]),
             speed=speed, capacity_gpus=np.array(topo.flavor_gpus(), dtype=float),
             nominal_gpus=nominal, max_gpus=np.full(nominal.shape, np.inf),
             watts=np.zeros(speed.shape), fairness=0.0)
res = solve(lp)
from scipy.optimize import linprog
ci, fi = np.nonzero(speed > 0)
s = speed[ci, fi]
rows, b = [], []
for f in range(nf):
    rows.append((fi == f).astype(float)); b.append(topo.flavor_gpus()[f])
for c, k in enumerate(keys):
    rows.append(np.where(ci == c, s, 0.0)); b.append(offered[k])
bound = linprog(-s, A_ub=np.array(rows), b_ub=np.array(b), bounds=(0, None), method="highs")
# The worst any work-conserving placement could do with the same mix: every GPU busy (as far
# as the offered work can fill it), the least H100-eq.
cap = np.array(topo.flavor_gpus(), dtype=float)
filled = linprog(-np.ones_like(s), A_ub=np.array(rows), b_ub=np.array(b), bounds=(0, None),
                 method="highs")
rows_eq = [np.ones_like(s)]
worst = linprog(s, A_ub=np.array(rows), b_ub=np.array(b), A_eq=np.array(rows_eq),
                b_eq=np.array([-filled.fun]), bounds=(0, None), method="highs")
# Every GPU busy at the best speed any kind has on its flavor (ignores the mix entirely).
best_any = sum(cap[f] * max(table.speed(k, topo.flavors[f]) for k in table.kinds())
               for f in range(nf))
# Fairness in the window: each team's work done there over its entitlement, the best its work
# offered in the window (jobs submitted in it, H100-eq per second) could get alone on its
# nominal quota of every flavor (the LP's entitlement with demand counted as work).
w0_s = {warmup_days} * 86400.0
win = defaultdict(float)
for j in jobs:
    if w0_s <= j.submit_s < days * 86400:
        ids = tuple(topo.flavors.index(f) for f in j.flavors) or tuple(range(nf))
        win[(qc.index(j.team), j.kind, ids)] += j.gpus * j.work_s / (days * 86400 - w0_s)
wkeys = sorted(win)
wspeed = np.zeros((len(wkeys), nf))
for c, (_, k, ids) in enumerate(wkeys):
    for f in ids:
        wspeed[c, f] = table.speed(k, topo.flavors[f])
went = solve(LpInput(class_queue=np.array([q for q, _, _ in wkeys]),
                     demand_gpus=np.full(len(wkeys), np.inf), speed=wspeed,
                     capacity_gpus=np.array(topo.flavor_gpus(), dtype=float),
                     nominal_gpus=nominal, max_gpus=np.full(nominal.shape, np.inf),
                     watts=np.zeros(wspeed.shape), fairness=0.0,
                     demand_eq=np.array([win[k] for k in wkeys]))).entitlement_eq
names = qc.names
window_ent = {{names[q]: float(went[q]) for q in range(len(names))}}
out = {{
    "window_offered_eq_by_team": {{names[q]: sum(v for k, v in win.items() if k[0] == q)
                                   for q in range(len(names))}},
    "window_entitlement_eq_by_team": window_ent,
    "window_share_by_team": {{t: window_work.get(t, 0.0) / window_h / e
                              for t, e in window_ent.items() if e > 0}},
    # The same entitlement against H100-eq held (gang GPUs x speed, hourly samples) instead
    # of work done: no checkpoint writes, restarts or lost progress in it.
    "window_held_share_by_team": {{t: tw.held_eq_by_team.get(t, 0.0) / n_s / e
                                   for t, e in window_ent.items() if e > 0}},
    "policy": policy, "days": days, "wall_s": wall, "jobs": len(jobs),
    "completed": len(tw.completed), "pending_at_end": len(tw.pending),
    "work_eq_gpu_h": sum(work.values()),
    "work_eq_gpu_h_by_team": dict(sorted(work.items())),
    "alloc_eq_gpu_h_by_team": {{t: v / 3600.0 for t, v in sorted(tw.eq_by_team.items())}},
    "alloc_eq_gpu_h_by_flavor": {{topo.flavors[f]: v / 3600.0
                                  for f, v in sorted(tw.eq_by_flavor.items())}},
    "entitlement_eq_by_team": {{names[q]: float(res.entitlement_eq[q]) for q in range(len(names))}},
    "offered_eq_by_team": {{names[q]: sum(v for k, v in offered.items() if k[0] == q)
                            for q in range(len(names))}},
    "fluid_bound_eq": -float(bound.fun),
    "fluid_worst_busy_eq": float(worst.fun),
    "best_any_mix_eq": float(best_any),
    "warm": {warm}, "warmup_days": {warmup_days}, "window_h": window_h,
    "window_work_eq_gpu_h": sum(window_work.values()),
    "window_work_eq_gpu_h_by_team": dict(sorted(window_work.items())),
    "window_rate_eq": sum(window_work.values()) / window_h,
    "window_held_eq_by_flavor": dict(zip(topo.flavors, held_mean)),
    "window_busy_gpus_by_flavor": dict(zip(topo.flavors, busy_mean)),
    "window_pending_mean": sum(s[2] for s in tw.samples) / n_s,
    "rejected": len(tw.rejected),
    "window_by_flavor_kind": {{f"{{f}}/{{k}}": [round(v[0] / n_s), round(v[1] / n_s)]
                               for (f, k), v in sorted(tw.held_by_kind.items())}},
    "daily_held_eq": [round(sum(sum(x[0]) for x in day) / len(day)) for day in days_of(tw)],
    "daily_busy_gpus": [round(sum(sum(x[1]) for x in day) / len(day)) for day in days_of(tw)],
    "daily_pending": [tw.samples[i][2] for i in range(0, len(tw.samples), 24)],
    "capacity_gpus": topo.flavor_gpus(),
    "window_gpus_by_flavor_team": {{f"{{f}}/{{t}}": round(v / n_s)
                                    for (f, t), v in sorted(tw.held_by_team.items())}},
    "nominal_gpus_by_team": {{q.name: dict(zip(topo.flavors, q.nominal))
                              for q in tw.state.queues.queues}},
    "window_preemptions": {{"/".join(map(str, k)): v for k, v in sorted(tw.preempted.items())}},
    "window_preempted_jobs": sum(v[0] for v in tw.preempted.values()),
    "window_target_gpus_by_flavor_team": {{f"{{f}}/{{t}}": round(v / n_s)
                                           for (f, t), v in sorted(tw.target_sum.items())}},
    "window_searches_failed": {{"/".join(map(str, k)): v
                                for k, v in sorted(tw.searches_failed.items())}},
    "window_evictions_by_preemptor": {{"/".join(map(str, k)): v
                                       for k, v in sorted(tw.evictions.items())}},
    "window_waiting_gpus": {{"/".join(map(str, k)): round(v / n_s)
                             for k, v in sorted(tw.waiting_sum.items())}},
}}
print(json.dumps(out))
"""


BOUND = r"""
import json
from collections import defaultdict
import numpy as np
from scipy.optimize import linprog
from cortex.fleet.spec import load_fleet_spec, parse_fleet
from cortex.fleet.topology import build
from cortex.workload.synthetic import generate
from cortex.workload.throughput import ThroughputTable

days = {days}
spec = load_fleet_spec("{fleet}").model_dump()
for hall in spec["halls"]:
    for g in hall["groups"]:
        g["nodes"] = max(1, round(g["nodes"] * {fleet_scale}))
topo = build(parse_fleet(spec, "{fleet} x {fleet_scale}"))
jobs = generate(days=days, seed={seed}, fleet_gpus=topo.total_gpus, flavors=topo.flavors)
table = ThroughputTable.load()
nf = len(topo.flavors)
cap = np.array(topo.flavor_gpus(), dtype=float)
offered = defaultdict(float)  # H100-eq per second offered per (kind, acceptable flavors)
for j in jobs:
    ids = tuple(topo.flavors.index(f) for f in j.flavors) or tuple(range(nf))
    offered[(j.kind, ids)] += j.gpus * j.work_s / (days * 86400)
keys = sorted(offered)
ci, fi, s = [], [], []
for c, (k, ids) in enumerate(keys):
    for f in ids:
        ci.append(c); fi.append(f); s.append(table.speed(k, topo.flavors[f]))
ci, fi, s = np.array(ci), np.array(fi), np.array(s)
rows = [(fi == f).astype(float) for f in range(nf)] + [np.where(ci == c, s, 0.0)
                                                        for c in range(len(keys))]
b = list(cap) + [offered[k] for k in keys]
best = linprog(-s, A_ub=np.array(rows), b_ub=b, method="highs")
fill = linprog(-np.ones_like(s), A_ub=np.array(rows), b_ub=b, method="highs")
worst = linprog(s, A_ub=np.array(rows), b_ub=b, A_eq=np.ones((1, len(s))), b_eq=[-fill.fun],
                method="highs")
kinds = sorted({{k for k, _ in keys}})
hi = sum(cap[f] * max(table.speed(k, topo.flavors[f]) for k in kinds) for f in range(nf))
lo = sum(cap[f] * min(table.speed(k, topo.flavors[f]) for k in kinds) for f in range(nf))
print(json.dumps({{
    "offered_eq": sum(offered.values()), "busy_gpus": -fill.fun, "gpus": float(cap.sum()),
    "best_eq": -best.fun, "worst_busy_eq": worst.fun, "best_over_worst": -best.fun / worst.fun,
    "any_mix_best_eq": hi, "any_mix_worst_eq": lo, "any_mix_ratio": hi / lo,
}}))
"""


def _child(code: str, timeout_s: float) -> dict:
    proc = subprocess.run(
        [PY, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=timeout_s, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_solve(scale: float, n_jobs: int, repeats: int) -> dict:
    return _child(SOLVE.format(scale=scale, n_jobs=n_jobs, repeats=repeats), 1800)


def bench_twin(
    fleet: str,
    days: float,
    seed: int,
    fleet_scale: float,
    policies: list[str],
    warm: bool = True,
    warmup_days: float = 0.0,
) -> None:
    """Run each profile's twin and keep its figures in bench/out/hetero-<policy>.json (the
    profiles may run in separate invocations, in parallel)."""
    for policy in policies:
        code = TWIN.format(days=days, policy=policy, fleet=fleet, seed=seed,
                           fleet_scale=fleet_scale, warm=warm, warmup_days=warmup_days)  # fmt: skip
        run = _child(code, 7200)
        (OUT / f"hetero-{policy}.json").write_text(json.dumps(run, indent=1))
        print(json.dumps({policy: run}), flush=True)


def compare(days: float) -> dict:
    """Both profiles' runs (from bench/out), side by side."""
    runs = {p: json.loads((OUT / f"hetero-{p}.json").read_text()) for p in ("priority", "hetero")}
    base, het = runs["priority"], runs["hetero"]
    if base["days"] != het["days"]:
        raise SystemExit("the two runs cover different horizons; rerun one")
    horizon_h = days * 24.0
    shares = {}
    for team, ent in base["entitlement_eq_by_team"].items():
        if ent <= 0:
            continue
        shares[team] = {
            p: runs[p]["alloc_eq_gpu_h_by_team"].get(team, 0.0) / horizon_h / ent for p in runs
        }
    return {
        "runs": runs,
        "ratio_work": het["work_eq_gpu_h"] / base["work_eq_gpu_h"],
        "ratio_window": het["window_work_eq_gpu_h"] / base["window_work_eq_gpu_h"],
        # The most any placement could gain on the baseline in the window: the fluid bound over
        # the H100-eq rate the baseline did (and over the worst work-conserving placement).
        "bound_over_base": base["fluid_bound_eq"] / base["window_rate_eq"],
        "bound_over_worst_busy": base["fluid_bound_eq"] / base["fluid_worst_busy_eq"],
        "normalized_share": shares,
        "fluid_bound_eq": base["fluid_bound_eq"],
        "mean_alloc_eq": {
            p: sum(runs[p]["alloc_eq_gpu_h_by_flavor"].values()) / horizon_h for p in runs
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", default="solve,twin,report")
    ap.add_argument("--policies", default="priority,hetero", help="twin runs to do now")
    ap.add_argument("--fleet", default="cortex-2026")
    ap.add_argument("--days", type=float, default=14.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fleet-scale", type=float, default=1.0, help="scale every node group")
    ap.add_argument("--cold", action="store_true", help="start from an empty fleet (no warm jobs)")
    ap.add_argument(
        "--warmup-days",
        type=float,
        default=1.0,
        help="the measurement window starts here (work done and held H100-eq)",
    )
    ap.add_argument("--solve-scale", type=float, default=100_000 / 535_000)
    ap.add_argument("--solve-jobs", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--append", action="store_true", help="append a section to bench/RESULTS.md")
    args = ap.parse_args()
    only = set(args.only.split(","))
    OUT.mkdir(parents=True, exist_ok=True)
    res: dict = {}
    if "solve" in only:
        res["solve"] = bench_solve(args.solve_scale, args.solve_jobs, args.repeats)
        (OUT / "hetero-solve.json").write_text(json.dumps(res["solve"], indent=1))
        print(json.dumps({"solve": res["solve"]}), flush=True)
    if "bound" in only:
        # The ceiling (no twin): the best placement of the offered mix over the worst that keeps
        # every GPU busy, for the stream alone (no warm jobs).
        code = BOUND.format(days=args.days, fleet=args.fleet, seed=args.seed,
                            fleet_scale=args.fleet_scale)  # fmt: skip
        res["bound"] = _child(code, 1800)
        print(json.dumps({"bound": res["bound"]}), flush=True)
    if "twin" in only:
        bench_twin(
            args.fleet,
            args.days,
            args.seed,
            args.fleet_scale,
            args.policies.split(","),
            not args.cold,
            args.warmup_days,
        )
    if "report" not in only:
        return
    if "solve" not in res and (OUT / "hetero-solve.json").exists():
        res["solve"] = json.loads((OUT / "hetero-solve.json").read_text())
    res["twin"] = compare(args.days)
    md = markdown(res, args)
    print(md)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a") as fh:
            fh.write(md)


if __name__ == "__main__":
    main()
