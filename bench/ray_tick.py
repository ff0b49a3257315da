"""Scheduling ticks with the Ray executor in the loop, results in bench/out/ray_tick.json
(summarized by hand in bench/RESULTS.md).

    python bench/ray_tick.py                  # about 5 minutes on 2 shared cores
    python bench/ray_tick.py --seconds 20 --fleet-nodes 1000

1. `ticks`: the scheduler loop (SchedulerLoop, a SQLite store) with 1,000 jobs queued, over a real
   loopback Ray cluster (head + two nodes with 8 fake GPUs each: the loop's fleet is what the
   executor discovers, 16 GPUs). Jobs run `sleep 3` (1, 2, 4, 8 or 16 GPUs, so gangs of one or two
   nodes); the loop ticks every 0.2 s for `--seconds`, starting and ending gangs as they finish.
   Twice: "before" and "after" (the default executor). `--before gcs`: the executor's GCS calls (a
   launch's placement group and agents, a gang's teardown) and its calls to the agents in the tick
   (`inline_calls`, as before branch ray3); `--before calls` (the default): only the calls to the
   agents (start, wait, stop: as before branch ray4) and the placement group's state at its timeout
   in the tick. Compared with the same loop, fleet, queue and job lengths where the executor is a
   stand-in that launches nothing and reports each job ended 3 s after its launch (the loop's own
   cost: what the local executor's tick adds on top, process spawns, is left out, so the ratio is an
   upper bound for Ray against local). Wall time per tick (p50, p99) and the tick thread's CPU time
   (the machine is shared: wall time includes waiting for a core, which Ray's own worker processes
   starting on the same two cores make longer).
2. `fleet`: a modelled N-node Ray fleet (`--fleet-nodes`, 8 fake GPUs each, 32 nodes per pod):
   `ray.nodes()` answers with N node records (this machine cannot hold N raylets), read by the
   real RayExecutor membership code; the loop is built on the executor's fleet, with 1,000
   jobs queued. Measured: the fleet sync (one node lost: `node_changes()` -> the loop's
   `_sync_fleet`, the node drained and set down) plus one tick (schedule, persist, launch),
   and one node joining (the fleet grows, the loop rebuilds its topology and state) plus a
   tick. Launches go to a stand-in (no cluster to place them on); part 1 measures real ones.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "ray"))

QUEUED = 1000
RUN_S = 3.0
TICK_EVERY_S = 0.2
SIZES = (1, 1, 2, 4, 8, 16)


def pct(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, round(q / 100 * (len(ys) - 1)))]


class StandIn:
    """Launches nothing; each run ends RUN_S after its launch (as `sleep 3` does on Ray)."""

    def __init__(self) -> None:
        self.started: dict[tuple[int, int], float] = {}

    def launch(self, spec: Any) -> Any:
        self.started[(spec.job_id, spec.attempt)] = time.monotonic()
        return SimpleNamespace(to_dict=lambda: {"job_id": spec.job_id, "attempt": spec.attempt})

    def poll(self) -> list[Any]:
        now, out = time.monotonic(), []
        for (jid, att), t in list(self.started.items()):
            if now - t >= RUN_S:
                del self.started[(jid, att)]
                out.append(SimpleNamespace(job_id=jid, attempt=att, outcome="completed",
                                           exit_code=0, detail=""))  # fmt: skip
        return out

    def terminate(self, job_id: int, attempt: int, reason: str = "preempt", **_: Any) -> bool:
        return True

    def adopt(self, handle: Any) -> bool:
        return True

    def kill(self, handle: Any) -> None:
        pass

    def live_handles(self) -> list[Any]:
        return []

    def log_paths(self, job_id: int, attempt: int) -> tuple[Path, Path]:
        return Path("/dev/null"), Path("/dev/null")


def make_loop(home: Path, executor: Any, fleet: Any, queued: int = QUEUED) -> Any:
    from cortex.control import db, store
    from cortex.control.config import Settings
    from cortex.control.loop import SchedulerLoop

    url = f"sqlite:///{home / 'c.db'}"
    db.upgrade(url)
    sessions = db.sessions(db.make_engine(url))
    settings = Settings(home=home, database_url=url, min_runtime_s=3600)
    loop = SchedulerLoop(
        settings,
        sessions,
        executor,
        flavor=fleet.flavor,
        devices=fleet.devices,
        uses_gpus=True,
        node_name="bench",
        fleet=fleet.spec,
        node_names=fleet.names,
        launch_spec=None,
        handle_from_dict=lambda d: d,
    )
    with sessions.begin() as s:
        loop.register_node(s, "gpu")
        for team in ("fsd", "optimus", "research"):
            store.ensure_team(s, team, time.time())
    submit(loop, queued)
    loop.recover()
    return loop


def submit(loop: Any, n: int, gpus: int = 0, seed: int = 0) -> None:
    """n jobs of `gpus` GPUs (0: sizes drawn from SIZES), as the API stores them."""
    from cortex.control import store
    from cortex.control.schemas import SubmitRequest

    if n == 0:
        return
    rng = random.Random(seed)
    sizes = [gpus or rng.choice(SIZES) for _ in range(n)]
    reqs = [
        SubmitRequest.model_validate(
            {
                "name": "j",
                "team": rng.choice(["fsd", "optimus", "research"]),
                "gpus": g,
                "nprocs": max(1, g // 8),  # a rank per node: a gang over two nodes has two
                "duration_s": 600,
                "command": ["sleep", f"{RUN_S:g}"],
            }
        )
        for g in sizes
    ]
    with loop.sessions.begin() as s:
        store.insert_jobs(s, reqs, time.time())


def runq_s() -> float:
    """This thread's time waiting for a core so far (Linux schedstat; 0 elsewhere)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def timed(ex: Any) -> list[float]:
    """Wrap the executor's methods the loop calls in a tick; returns [seconds in them,
    launch() calls], running totals."""
    spent = [0.0, 0.0]
    for name in ("launch", "poll", "node_changes", "terminate", "kill", "current_fleet"):
        fn = getattr(ex, name, None)
        if fn is None:
            continue

        def wrap(*a: Any, _fn: Any = fn, _launch: bool = name == "launch", **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t0
                spent[1] += _launch

        setattr(ex, name, wrap)
    return spent


# The executor's steps that called Ray on the tick before branch ray4 (a gang's start sends
# its agents' calls; a stop sends theirs): each call's wall time, by name.
STEPS = ("_starting", "terminate")


def timed_steps(ex: Any) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {name: [] for name in STEPS}
    for name in STEPS:
        fn = getattr(ex, name, None)
        if fn is None or isinstance(ex, StandIn):
            continue

        def wrap(*a: Any, _fn: Any = fn, _to: list[float] = out[name], **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                _to.append(time.perf_counter() - t0)

        setattr(ex, name, wrap)  # the instance's attribute: poll() calls self._starting
    return out


def run_ticks(loop: Any, seconds: float) -> dict[str, Any]:
    """Ticks every TICK_EVERY_S for `seconds`: per tick, its wall time, the tick thread's CPU
    time, its wait for a core (runq), the time spent in executor calls, and what is left
    (blocked: the GIL, I/O)."""
    loop.tick()  # ingest the queue (not timed: the same one-off cost for both)
    spent = timed(loop.executor)
    steps = timed_steps(loop.executor)
    names = ("wall", "cpu", "runq", "wall_less_runq", "executor", "blocked")
    rows: dict[str, list[float]] = {k: [] for k in names}
    launch_walls: list[float] = []  # ticks that launched at least one gang
    launches0 = spent[1]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        q0, l0 = runq_s(), spent[1]
        t0, c0, e0 = time.perf_counter(), time.thread_time(), spent[0]
        loop.tick()
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        runq = runq_s() - q0
        if spent[1] > l0:
            launch_walls.append(wall)
        rows["wall"].append(wall)
        rows["cpu"].append(cpu)
        rows["runq"].append(runq)
        rows["wall_less_runq"].append(wall - runq)
        rows["executor"].append(spent[0] - e0)
        rows["blocked"].append(max(0.0, wall - cpu - runq))
        time.sleep(TICK_EVERY_S)
    out: dict[str, Any] = {
        "ticks": len(rows["wall"]),
        "queued_at_end": len(loop.mirror.pending),
        "launches": int(spent[1] - launches0),
    }
    for k, xs in {**rows, "launch_tick_wall": launch_walls, **steps}.items():
        if xs:
            out[f"{k}_ms"] = {"p50": round(pct(xs, 50) * 1e3, 2), "max": round(max(xs) * 1e3, 2)}
            out[f"{k}_ms"]["p99"] = round(pct(xs, 99) * 1e3, 2)
            out[f"{k}_ms"]["n"] = len(xs)
    return out


def stop_all(ex: Any, loop: Any) -> None:
    """Cancel the loop's gangs and wait until Ray holds nothing of them (the next run reuses
    the placement groups' names: its store numbers jobs from 1 again)."""
    for jid, att in list(loop.mirror.attempt.items()):
        ex.terminate(jid, att, "cancel", grace_s=0)
    deadline = time.monotonic() + 60
    while ex._gangs and time.monotonic() < deadline:
        ex.poll()
        time.sleep(0.1)
    ex.drain(60)


def before_branch_ray4(ex: Any) -> Any:
    """The executor as before branch ray4: its calls to the agents and the placement group's
    state read at the timeout in the tick (the calls thread runs each call in submit())."""
    from cortex.executors.ray.worker import RayWorker

    ex._calls = RayWorker(inline=True, name="ray-calls")
    real = ex._worker.submit
    # The state read went on the worker with the calls (ray4): back on the caller's thread.
    ex._worker.submit = lambda fn, *a: (  # the bench's own instance: nothing else shares it
        RayWorker(inline=True).submit(fn, *a) if fn.__name__ == "_pg_state" else real(fn, *a)
    )
    return ex


def local_executor(home: Path) -> Any:
    """The local executor (this machine; `sleep 3` needs no GPU), on the same 16-GPU fleet:
    the loop places as it does for Ray, the executor spawns each gang's runner process."""
    from cortex.executors.local.executor import LocalExecutor

    return LocalExecutor(home / "runs", grace_s=1.0, allow_same_user=True)


def stop_local(ex: Any) -> None:
    """Stop what the local run left (its runners and their `sleep`s)."""
    for h in ex.live_handles():
        ex.kill(h)


def bench_ticks(
    seconds: float, rounds: int = 2, before: str = "calls", baseline: str = "standin"
) -> dict[str, Any]:
    """Stand-in, Ray as before (`ray_inline`: see the module's doc for `before`), Ray as it
    is (`ray_worker`), with `rounds` 2 the two Ray runs again in the other order, then the
    stand-in again: one cluster, one run."""
    from raykit import LoopbackCluster

    from cortex.executors.ray.executor import RayExecutor

    cluster = LoopbackCluster()
    runs: dict[str, dict[str, Any]] = {}
    try:
        cluster.add("node-a", **{"cortex.pod": "p1"})
        cluster.add("node-b", **{"cortex.pod": "p1"})
        cluster.cluster.wait_for_nodes()
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            order = [f"{baseline}_before", "ray_inline_1", "ray_worker_1"]
            if rounds > 1:  # ABBA: load that drifts over the run weighs on both alike
                order += ["ray_worker_2", "ray_inline_2"]
            order.append(f"{baseline}_after")
            execs = {
                name: RayExecutor(
                    root / name / "runs",
                    cluster.address,
                    grace_s=1.0,
                    inline_calls=name.startswith("ray_inline") and before == "gcs",
                )
                for name in order
                if name.startswith("ray")
            }
            for name, ex in execs.items():
                if name.startswith("ray_inline") and before == "calls":
                    before_branch_ray4(ex)
            fleet = execs["ray_inline_1"].discover()
            for name in order:
                home = root / name
                home.mkdir(exist_ok=True)
                ex = execs.get(name)
                if ex is None:
                    base = StandIn() if baseline == "standin" else local_executor(home)
                    runs[name] = run_ticks(make_loop(home, base, fleet), seconds)
                    if baseline == "local":
                        stop_local(base)
                else:
                    ex.discover()  # its own saved fleet: the same nodes in the same order
                    loop = make_loop(home, ex, fleet)
                    runs[name] = run_ticks(loop, seconds)
                    stop_all(ex, loop)
                print(name, json.dumps(runs[name]), flush=True)
    finally:
        cluster.shutdown()
    out: dict[str, Any] = {"queued": QUEUED, "fleet": "loopback Ray: 2 nodes x 8 fake GPUs"}
    out["before"], out["baseline"] = before, baseline
    out.update(runs)
    for k in ("wall", "cpu"):
        base = [runs[n][f"{k}_ms"]["p50"] for n in order if n.startswith(baseline)]
        b50 = statistics.median(base)
        for kind in ("ray_inline", "ray_worker"):
            mine = [runs[n][f"{k}_ms"]["p50"] for n in order if n.startswith(kind)]
            out[f"{kind}_ratio_{k}_p50"] = [round(x / b50, 2) for x in mine]
    return out


def bench_fleet(n: int) -> dict[str, Any]:
    import ray

    from cortex.executors.ray import membership
    from cortex.executors.ray.executor import RayExecutor

    def raw(i: int, alive: bool = True) -> dict[str, Any]:
        labels = {
            "cortex.node": f"n{i:05d}",
            "cortex.pod": f"p{i // 32}",
            "cortex.rack": f"r{i // 4}",
        }
        res = {"CPU": 64.0, "GPU": 8.0} if alive else {}
        return {"NodeID": f"id{i}", "Alive": alive, "Resources": res, "Labels": labels}

    nodes = [raw(i) for i in range(n)]
    real_nodes = ray.nodes
    membership.ray.nodes = lambda: list(nodes)  # type: ignore[attr-defined]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            ex = RayExecutor(root / "runs", None, connect=False)
            ex.connected = True  # ray.nodes() is scripted; no address: no head to probe
            stand = StandIn()
            ex.launch = stand.launch  # type: ignore[method-assign]
            ex.poll = list  # type: ignore[method-assign]  # the runs never end here
            ex.live_handles = list  # type: ignore[method-assign]  # recovery: nothing runs
            # Each tick reads the (scripted) nodes itself: with Ray, a reader thread fetches
            # them and the tick parses its last answer, the part measured here.
            ex.node_changes = lambda: RayExecutor.node_changes(ex, force=True)  # type: ignore[method-assign]
            t0 = time.perf_counter()
            fleet = ex.discover()
            discover_s = time.perf_counter() - t0
            loop = make_loop(root, ex, fleet, queued=0)
            submit(loop, n, gpus=8)  # a full fleet: one 8-GPU job per node
            for _ in range(20):  # a pass starts a bounded number of jobs
                loop.tick()
                if len(loop.mirror.attempt) == n:
                    break
            submit(loop, QUEUED, seed=1)
            loop.tick()  # ingest the queue (it waits: the fleet is full)
            nodes[n // 2] = raw(n // 2, alive=False)  # a node lost
            t0 = time.perf_counter()
            ex._fleet_read = float("-inf")
            loop.tick()
            lost_s = time.perf_counter() - t0
            assert not loop.mirror.state.node_up[loop.node_names.index(f"n{n // 2:05d}")]
            nodes.append(raw(n))  # a node joins
            ex._fleet_read = float("-inf")
            loop.tick()  # the executor reads it; the loop takes the grown fleet next tick
            t0 = time.perf_counter()
            loop.tick()
            joined_s = time.perf_counter() - t0
            assert loop.topo.n_nodes == n + 1
    finally:
        membership.ray.nodes = real_nodes  # type: ignore[attr-defined]
    return {
        "nodes": n,
        "gpus": n * 8,
        "queued": len(loop.mirror.pending),
        "running": len(loop.mirror.attempt),
        "discover_s": round(discover_s, 4),
        "node_lost_sync_and_tick_s": round(lost_s, 4),
        "node_joined_rebuild_and_tick_s": round(joined_s, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0, help="ticking time per loop")
    ap.add_argument("--fleet-nodes", type=int, default=1000)
    ap.add_argument("--only", default="fleet,ticks")
    ap.add_argument("--rounds", type=int, default=2, help="1: inline, worker; 2: ABBA")
    what = "what the 'inline' runs keep in the tick (see the module's doc)"
    ap.add_argument("--before", choices=("calls", "gcs"), default="calls", help=what)
    what = "the runs Ray is compared with: the stand-in, or the local executor"
    ap.add_argument("--baseline", choices=("standin", "local"), default="standin", help=what)
    args = ap.parse_args()
    out: dict[str, Any] = {}
    if "fleet" in args.only:
        out["fleet"] = bench_fleet(args.fleet_nodes)
        print(json.dumps(out["fleet"], indent=2), flush=True)
    if "ticks" in args.only:
        out["ticks"] = bench_ticks(args.seconds, args.rounds, args.before, args.baseline)
        print(json.dumps(out["ticks"], indent=2), flush=True)
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/ray_tick.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
