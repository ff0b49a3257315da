"""The Ray executor on a real two-node loopback Ray cluster (fake GPUs), results in
bench/out/ray.json (summarized by hand in bench/RESULTS.md).

    python bench/ray_bench.py            # about 2 minutes on 2 shared cores
    python bench/ray_bench.py --runs 5

1. gang start: a 16-rank gang over two 8-GPU nodes, from launch() (the scheduler's decision
   reaching the executor) to every rank started (all agents report their processes spawned),
   and to every rank's first output line. Baseline: the same 16 processes started with
   subprocess on this machine, to their first line.
2. node death -> requeue: a running 16-rank gang, one node killed (no graceful drain), to the
   ExitRecord that the loop turns into a requeue in the same tick (poll() called every 50 ms,
   as a busy loop ticks). With fast health checks (RAY_health_check_*; see tests/ray/raykit.py).
3. per-tick overhead: what the loop's tick calls on the executor when nothing changes,
   `poll()` (no gang) plus `node_changes(force=True)` (one `ray.nodes()` GCS read; in the loop
   it runs at most every 0.5 s), against the local executor's `poll()` with no run.
4. `--fleet-nodes N`: a modelled N-node fleet in memory (node records shaped as `ray.nodes()`
   gives them, 8 GPUs each, 32 nodes per pod; no Ray cluster): reading it by label, building
   the FleetSpec and the loop's topology (start), and one re-read with one node down (the
   fleet sync `node_changes()` does every 0.5 s, less the GCS call).
Timings are medians; the machine is shared, so compare with the baseline of the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "ray"))

from raykit import LoopbackCluster

from cortex.executors.ray.executor import RayExecutor
from cortex.executors.spec import LaunchSpec

NODES = (("node-a", tuple(range(8))), ("node-b", tuple(range(8))))
SLEEP = "import time; print('up', flush=True); time.sleep(600)"


def _spec(job_id: int, code: str) -> LaunchSpec:
    return LaunchSpec(
        job_id, 1, [sys.executable, "-c", code], {}, None, list(range(16)), 16, True, nodes=NODES
    )


def _all_up(ex: RayExecutor, job_id: int) -> bool:
    return all("up" in ex.rank_log_paths(job_id, 1, r)[0].read_text() for r in range(16))


def gang_start(ex: RayExecutor, job_id: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    ex.launch(_spec(job_id, SLEEP))
    started = first_line = None
    while first_line is None and time.perf_counter() - t0 < 120:
        assert ex.poll() == []
        now = time.perf_counter() - t0
        if started is None and ex.is_running(job_id, 1):
            started = now
        if started is not None and _all_up(ex, job_id):
            first_line = now
        time.sleep(0.02)
    assert started is not None and first_line is not None, "gang did not start in 120 s"
    ex.terminate(job_id, 1, "cancel", grace_s=0)
    while not ex.poll():
        time.sleep(0.05)
    return started, first_line


def baseline_start() -> float:
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", SLEEP], stdout=subprocess.PIPE) for _ in range(16)
    ]
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()
    took = time.perf_counter() - t0
    for p in procs:
        p.kill()
        p.wait()
        assert p.stdout is not None
        p.stdout.close()
    return took


def node_death(ex: RayExecutor, cluster: LoopbackCluster, job_id: int) -> float:
    ex.launch(_spec(job_id, SLEEP))
    while not (ex.is_running(job_id, 1) and _all_up(ex, job_id)):
        assert ex.poll() == []
        time.sleep(0.05)
    t0 = time.perf_counter()
    cluster.kill("node-b")
    while True:
        recs = ex.poll()
        if recs:
            assert "node node-b lost" in recs[0].detail, recs
            took = time.perf_counter() - t0
            break
        time.sleep(0.05)
    cluster.add("node-b")
    cluster.cluster.wait_for_nodes()
    return took


def modelled_fleet(n: int) -> dict[str, float]:
    from cortex.executors.nodes import build_fleet
    from cortex.executors.ray.fleet import read_nodes
    from cortex.fleet.topology import build

    def raw(i: int, alive: bool = True) -> dict[str, object]:
        labels = {
            "cortex.node": f"n{i:05d}",
            "cortex.pod": f"p{i // 32}",
            "cortex.rack": f"r{i // 4}",
        }
        res = {"CPU": 64.0, "GPU": 8.0} if alive else {}
        return {"NodeID": f"id{i}", "Alive": alive, "Resources": res, "Labels": labels}

    nodes = [raw(i) for i in range(n)]
    t0 = time.perf_counter()
    view = read_nodes(nodes, "H100-SXM5")
    fleet = build_fleet(list(view.nodes.values()))
    topo = build(fleet.spec)
    start_s = time.perf_counter() - t0
    assert topo.n_nodes == n
    nodes[n // 2] = raw(n // 2, alive=False)
    t0 = time.perf_counter()
    again = read_nodes(nodes, "H100-SXM5")
    down = [k for k, v in again.nodes.items() if not v.alive]
    sync_s = time.perf_counter() - t0
    assert down == [f"n{n // 2:05d}"]
    return {"nodes": n, "start_read_build_s": start_s, "sync_read_s": sync_s}


def tick_overhead(ex: RayExecutor, root: Path, n: int = 200) -> dict[str, float]:
    from cortex.executors.local.executor import LocalExecutor

    local = LocalExecutor(root / "local")

    def median_ms(fn: object) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    return {
        "ray_poll_ms": median_ms(ex.poll),
        "ray_node_changes_ms": median_ms(lambda: ex.node_changes(force=True)),
        "local_poll_ms": median_ms(local.poll),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fleet-nodes", type=int, default=0, help="only the modelled fleet")
    args = ap.parse_args()
    if args.fleet_nodes:
        print(json.dumps(modelled_fleet(args.fleet_nodes), indent=2))
        return
    cluster = LoopbackCluster()
    try:
        cluster.add("node-a")
        cluster.add("node-b")
        cluster.cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory() as root:
            ex = RayExecutor(Path(root), cluster.address, grace_s=1.0, pg_timeout_s=60.0)
            starts = [gang_start(ex, j) for j in range(1, args.runs + 1)]
            base = [baseline_start() for _ in range(args.runs)]
            deaths = [node_death(ex, cluster, 100 + j) for j in range(args.runs)]
            overhead = tick_overhead(ex, Path(root))
    finally:
        cluster.shutdown()
    out = {
        "runs": args.runs,
        "gang_start_all_spawned_s": statistics.median(s for s, _ in starts),
        "gang_start_all_first_line_s": statistics.median(f for _, f in starts),
        "baseline_16_local_processes_first_line_s": statistics.median(base),
        "node_death_to_exit_record_s": statistics.median(deaths),
        "tick_overhead": overhead,
        "raw": {"starts": starts, "baseline": base, "deaths": deaths},
    }
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/ray.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
