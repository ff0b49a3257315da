"""`why` at scale: 10,000 queued jobs on the 100k-GPU `cortex-2024` fleet, 95% full (issue 14's
target: an answer in <= 50 ms). Timed in CPU seconds of this process, in one run:

- baseline: the deep `schedule()` pass the loop runs anyway;
- record: what the loop adds to that pass (`WhyBook.record`: copies of the queues, free
  capacity and quota room);
- places: the first reader's index of every waiting job's place (once per pass);
- explain: one job's ranked blockers and place, after that (the steady state of the API);
- first why: places + explain, the worst case of one request;
- estimate: a start estimate for one waiting job (the 100th in queue order), the state run
  forward with `schedule()` (5 runs: the point estimate and 4 with runtime errors), bounded
  by MAX_PASSES passes per run.

    python bench/why.py            # about a minute on 2 cores
"""

from __future__ import annotations

import json
import random
import statistics
import time

from cortex.control import estimate as est
from cortex.control.why import WhyBook
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.scheduler.cycle import schedule
from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.registry import policies
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.workload.job import Job
from cortex.workload.states import JobState

QUEUED = 10_000
FILL = 0.95
SIZES = (1, 2, 4, 8, 8, 16, 32, 64, 128, 512)  # GPUs, drawn uniformly (seeded)


def build_state(seed: int) -> tuple[Snapshot, object]:
    rng = random.Random(seed)
    topo = build(load_fleet_spec("cortex-2024"))
    pol = policies("priority")
    teams = tuple(f"team{i}" for i in range(8))
    qc = QueueConfig.build(topo.spec.queues, topo, teams)
    st = ClusterState(topo, qc)
    pending = PendingQueues(len(qc.queues), pol.ordering.key)
    jid = 0
    target = FILL * topo.total_gpus
    misses = 0
    while sum(st.busy_gpus) < target and misses < 100:
        jid += 1
        gpus = rng.choice(SIZES)
        f = rng.randrange(len(topo.flavors))
        placement = pol.placement.place(st, f, gpus)
        if placement is None:
            misses += 1
            continue
        q = rng.randrange(len(qc.queues))
        job = Job(jid, f"r{jid}", qc.queues[q].name, gpus, 1e6)
        job.queue_idx, job.priority, job.run_start_s = q, 100, 0.0
        job.est_end_s = rng.uniform(600, 86_400)
        job.run_flavor, job.state = f, JobState.RUNNING
        job.alloc_gpus = job.run_gpus = sum(k for _, k in placement)
        st.start(job, q, f, placement)
    for _ in range(QUEUED):
        jid += 1
        q = rng.randrange(len(qc.queues))
        job = Job(jid, f"p{jid}", qc.queues[q].name, rng.choice(SIZES), 3600.0)
        job.queue_idx, job.priority, job.submit_s = q, rng.choice((0, 100, 1000)), float(jid)
        pending.add(job)
    snap = Snapshot(
        0.0, st, pending, lambda _k, _f: 1.0, lambda j, _f, g: j.remaining_s * j.gpus / g
    )
    return snap, pol


def cpu_ms(fn: object, n: int = 1) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.process_time()
        fn()  # type: ignore[operator]
        out.append((time.process_time() - t0) * 1e3)
    return out


def main() -> None:
    snap, pol = build_state(seed=5)
    plan = schedule(snap, pol, deep=True)  # type: ignore[arg-type]
    base = cpu_ms(lambda: schedule(snap, pol, deep=True), 5)  # type: ignore[arg-type]
    book = WhyBook()
    record = cpu_ms(lambda: book.record(snap, plan, {}), 5)
    places, first = [], []
    ids = [j.id for j in snap.pending]
    rng = random.Random(1)
    for _ in range(5):
        book.record(snap, plan, {})
        rec = book.current
        jid = rng.choice(ids)
        t0 = time.process_time()
        rec.places()
        places.append((time.process_time() - t0) * 1e3)
        book.record(snap, plan, {})
        t0 = time.process_time()
        got = book.explain(jid, snap.state.queues.queues[0].name)
        first.append((time.process_time() - t0) * 1e3)
    sample = rng.sample(ids, 1000)
    t0 = time.process_time()
    for jid in sample:
        got = book.explain(jid, None)
    explain_ms = (time.process_time() - t0) * 1e3 / len(sample)
    assert got["blockers"]
    rec = book.current
    order = sorted(rec.places().items(), key=lambda kv: kv[1][2])
    target = order[99][0]
    t0 = time.process_time()
    got_est = est.estimate(
        rec, snap.state.topo, snap.state.queues, pol, snap.estimate_s, snap.speed, {target}
    )[target]
    estimate_s = time.process_time() - t0
    out = {
        "fleet_gpus": snap.state.topo.total_gpus,
        "busy_gpus": sum(snap.state.busy_gpus),
        "queued": len(snap.pending),
        "examined": plan.examined,
        "schedule_deep_ms_median": round(statistics.median(base), 2),
        "record_ms_median": round(statistics.median(record), 2),
        "places_ms_median": round(statistics.median(places), 2),
        "explain_ms_mean": round(explain_ms, 4),
        "first_why_ms_median": round(statistics.median(first), 2),
        "first_why_ms_max": round(max(first), 2),
        "estimate_target_ahead": order[99][1][2],
        "estimate_s": round(estimate_s, 2),
        "estimate_start_s": got_est.start_s,
        "estimate_band_s": [got_est.low_s, got_est.high_s],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
