"""Control-plane benchmarks on SQLite and PostgreSQL: one command, results in
bench/out/control.json (summarized by hand in bench/RESULTS.md).

    python bench/control.py                  # both stores (about 2 minutes on 2 cores)
    python bench/control.py --db sqlite      # one store

1. submit: 16 concurrent clients (4 processes x 4 threads, each its own keep-alive
   connection) post jobs to a real `cortex serve` on 127.0.0.1 for a bounded count and time;
   the node is cordoned so that nothing launches. Baseline: the same inserts straight into the
   store from 16 threads, no HTTP. `--running`: two long jobs fill the two slots instead, and
   the flood queues behind jobs that run.
2. tick: one scheduler tick (read facts, apply, snapshot, schedule, persist, launch) with
   1,000 queued jobs on a modelled 1,000-GPU fleet (125 nodes x 8 H100) that is full, and an
   exit that frees a node each tick. The executor is a stand-in (no processes). Baseline: the
   scheduler core's `schedule()` alone on the same state.
3. submit->running: on an idle machine, from the POST to the job's first instruction (the job
   writes time.time() first thing). Baseline: spawning the same command with subprocess.

Load goes to loopback only; every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from cortex.control.devpg import ThrowawayPostgres, find_bin, free_port

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable
ADMIN = "ctx_bench-admin"

CLIENT_PROCS, THREADS = 4, 4  # 16 concurrent clients
SUBMITS_PER_CLIENT = 250  # 4,000 submissions in all
SUBMIT_MAX_S = 60.0
TICK_QUEUED, TICK_GPUS, TICK_ROUNDS = 1000, 1000, 30
LATENCY_RUNS = 10


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100 * len(xs)))] if xs else float("nan")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- a throwaway PostgreSQL (as in shared/STACK.md) ---------------------------------------------
class Postgres:
    """Durable commits (fsync on): the figures are for a real store, not a RAM disk."""

    def __init__(self) -> None:
        bin_dir = find_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql")
        self.pg = ThrowawayPostgres(bin_dir, durable=True, prefix="cortex-bench-pg-")
        self.n = 0

    def start(self) -> None:
        self.pg.start()

    def database(self) -> str:
        self.n += 1
        return self.pg.create_database(f"bench{self.n}")

    def stop(self) -> None:
        self.pg.stop("fast")


class Server:
    def __init__(self, url: str, home: Path, slots: int = 2) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "CORTEX_ADMIN_TOKEN": ADMIN,
            "CORTEX_DATABASE_URL": url,
            "CORTEX_ALLOW_SAME_USER": "1",  # a benchmark as root: jobs as its own user
        }
        self.log = (home / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [
                PY,
                "-m",
                "cortex.cli.main",
                "serve",
                "--port",
                str(self.port),
                "--home",
                str(home),
                "--slots",
                str(slots),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("service did not start")

    def token(self, team: str) -> str:
        r = httpx.post(
            f"{self.base}/v1/tokens",
            json={"team": team},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        r.raise_for_status()
        return str(r.json()["token"])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ---- 1. submissions ----------------------------------------------------------------------
BODY = {
    "name": "bench",
    "gpus": 1,
    "duration_s": 600,
    "command": ["true"],
    "priority_class": "normal",
}


def _client_proc(base: str, token: str, n: int, stop_at: float) -> list[float]:
    def one_client(_i: int) -> list[float]:
        lat = []
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as c:
            for _ in range(n):
                if time.time() > stop_at:
                    break
                t0 = time.perf_counter()
                r = c.post("/v1/jobs", json=BODY)
                lat.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    raise RuntimeError(f"submit failed: {r.status_code} {r.text}")
        return lat

    with ThreadPoolExecutor(THREADS) as pool:
        return [x for xs in pool.map(one_client, range(THREADS)) for x in xs]


async def _raw_clients(port: int, token: str, n: int, clients: int, max_s: float) -> list[float]:
    """16 keep-alive HTTP/1.1 connections posting a pre-encoded request. Hand-written because
    httpx spends about 2 ms of CPU per request here, as much as the server it measures: on 2
    cores the load generator must not compete with the service for the CPU."""
    import asyncio

    body = json.dumps(BODY).encode()
    req = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    stop_at = time.monotonic() + max_s

    async def one() -> list[float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lat = []
        try:
            for _ in range(n):
                if time.monotonic() > stop_at:
                    break
                t0 = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                lat.append(time.perf_counter() - t0)
                if status != 201:
                    raise RuntimeError(f"submit failed: {status}")
        finally:
            writer.close()
        return lat

    parts = await asyncio.gather(*(one() for _ in range(clients)))
    return [x for p in parts for x in p]


def bench_submit(url: str, home: Path, running: bool = False) -> dict[str, Any]:
    """`running`: instead of cordoning the node, two long jobs fill its two slots first, so
    the flood queues behind jobs that run (the loop polls them and schedules the growing queue
    at every tick), as on a busy cluster."""
    srv = Server(url, home)
    try:
        token = srv.token("fsd")
        auth = {"Authorization": f"Bearer {token}"}
        if running:
            for _ in range(2):
                long_job = {**BODY, "command": ["sleep", "600"]}
                httpx.post(f"{srv.base}/v1/jobs", json=long_job, headers=auth).raise_for_status()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                listed = httpx.get(f"{srv.base}/v1/jobs", headers=auth).json()
                jobs = listed["jobs"] if isinstance(listed, dict) else listed
                if sum(j["state"] == "running" for j in jobs) == 2:
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("the two long jobs did not start")
        else:
            node = httpx.get(f"{srv.base}/v1/nodes", headers=auth)
            name = node.json()[0]["name"]
            httpx.patch(
                f"{srv.base}/v1/nodes/{name}",
                params={"schedulable": False},
                headers={"Authorization": f"Bearer {ADMIN}"},
            ).raise_for_status()
        import asyncio

        asyncio.run(_raw_clients(srv.port, token, 5, 4, 10))  # warm-up
        cpu0 = _cpu_s(srv.proc.pid)
        t0 = time.perf_counter()
        lat = asyncio.run(
            _raw_clients(srv.port, token, SUBMITS_PER_CLIENT, CLIENT_PROCS * THREADS, SUBMIT_MAX_S)
        )
        server_cpu = _cpu_s(srv.proc.pid) - cpu0
        # The same load through httpx, the CLI's client, from 4 processes x 4 threads.
        stop_at = time.time() + SUBMIT_MAX_S
        t1 = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")  # forking after threads can deadlock
        with ProcessPoolExecutor(CLIENT_PROCS, mp_context=ctx) as pool:
            futs = [
                pool.submit(_client_proc, srv.base, token, SUBMITS_PER_CLIENT // 2, stop_at)
                for _ in range(CLIENT_PROCS)
            ]
            lat_httpx = [x for f in futs for x in f.result()]
        wall_httpx = time.perf_counter() - t1
        wall = t1 - t0
    finally:
        srv.stop()
    return {
        "clients": CLIENT_PROCS * THREADS,
        "server_cpu_ms_per_submit": round(server_cpu / len(lat) * 1e3, 2),
        "httpx_clients": {
            "submissions": len(lat_httpx),
            "per_s": round(len(lat_httpx) / wall_httpx, 1),
            "latency_ms": {
                "p50": round(pct(lat_httpx, 50) * 1e3, 2),
                "p99": round(pct(lat_httpx, 99) * 1e3, 2),
            },
        },
        "submissions": len(lat),
        "wall_s": round(wall, 3),
        "per_s": round(len(lat) / wall, 1),
        "latency_ms": {
            "p50": round(pct(lat, 50) * 1e3, 2),
            "p99": round(pct(lat, 99) * 1e3, 2),
            "max": round(max(lat) * 1e3, 2),
        },
    }


def bench_store_insert(url: str) -> dict[str, Any]:
    """Baseline: the same inserts from 16 threads, straight into the store (no HTTP, no JSON)."""
    from cortex.control import db, store
    from cortex.control.schemas import SubmitRequest

    db.upgrade(url)
    engine = db.make_engine(url)
    sessions = db.sessions(engine)
    with sessions.begin() as s:
        store.ensure_team(s, "fsd", time.time())
    req = SubmitRequest.model_validate({**BODY, "team": "fsd"})
    n = CLIENT_PROCS * SUBMITS_PER_CLIENT // 2

    def worker(_i: int) -> int:
        for _ in range(n // 16):
            with sessions.begin() as s:
                store.insert_jobs(s, [req], time.time())
        return n // 16

    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        done = sum(pool.map(worker, range(16)))
    wall = time.perf_counter() - t0
    engine.dispose()
    return {"inserts": done, "per_s": round(done / wall, 1)}


# ---- 2. the tick ----------------------------------------------------------------------
class _StandIn:
    """Executor stand-in for the tick benchmark: launches nothing, reports one exit per poll."""

    def __init__(self) -> None:
        self.exits: list[Any] = []
        self.launched = 0

    def launch(self, spec: Any) -> Any:
        self.launched += 1
        return SimpleNamespace(to_dict=lambda: {"job_id": spec.job_id, "attempt": spec.attempt})

    def terminate(self, job_id: int, attempt: int, reason: str = "preempt") -> None:
        pass

    def poll(self) -> list[Any]:
        out, self.exits = self.exits, []
        return out

    def adopt(self, handle: Any) -> bool:
        return True

    def kill(self, handle: Any) -> None:
        pass

    def live_handles(self) -> list[Any]:
        return []

    def log_paths(self, job_id: int, attempt: int) -> tuple[Path, Path]:
        return Path("/dev/null"), Path("/dev/null")


def _tick_loop(url: str, home: Path, settings_kw: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """A scheduler loop on a modelled TICK_GPUS fleet with the executor stand-in: (loop,
    executor, sessions, engine)."""
    from cortex.control import db, store
    from cortex.control.config import Settings
    from cortex.control.loop import SchedulerLoop
    from cortex.fleet.spec import FleetSpec, HallSpec, NodeGroup

    db.upgrade(url)
    engine = db.make_engine(url)
    sessions = db.sessions(engine)
    fleet = FleetSpec(
        name="bench-1k",
        halls=[
            HallSpec(
                name="h",
                groups=[NodeGroup(flavor="H100-SXM5", nodes=TICK_GPUS // 8, gpus_per_node=8)],
            )
        ],
    )
    settings = Settings(home=home, database_url=url, min_runtime_s=3600, **settings_kw)
    ex = _StandIn()
    loop = SchedulerLoop(
        settings,
        sessions,
        ex,
        flavor="H100-SXM5",
        devices=[0],
        uses_gpus=True,
        node_name="bench",
        fleet=fleet,
        launch_spec=None,  # the real LaunchSpec (a dataclass: the loop replaces its env)
        handle_from_dict=lambda d: d,
    )
    with sessions.begin() as s:
        loop.register_node(s, "gpu")
        for team in ("fsd", "optimus", "research"):
            store.ensure_team(s, team, time.time())
    loop.recover()
    return loop, ex, sessions, engine


def bench_tick(url: str, home: Path, **settings_kw: Any) -> dict[str, Any]:
    """`settings_kw`: extra settings (bench/control_power.py passes a power policy and cap)."""
    import random

    from cortex.control import store
    from cortex.control.schemas import SubmitRequest
    from cortex.scheduler.cycle import schedule
    from cortex.scheduler.snapshot import Snapshot

    loop, ex, sessions, engine = _tick_loop(url, home, settings_kw)
    rng = random.Random(0)

    def submit(k: int, gpus: int) -> None:
        with sessions.begin() as s:
            for _ in range(k):
                req = SubmitRequest.model_validate(
                    {
                        "name": "j",
                        "team": rng.choice(["fsd", "optimus", "research"]),
                        "gpus": gpus or rng.choice([1, 1, 2, 4, 8, 8, 16, 32, 64]),
                        "duration_s": rng.uniform(600, 36000),
                        "command": ["true"],
                        "priority_class": rng.choice(["normal", "normal", "preemptible"]),
                    }
                )
                store.insert_jobs(s, [req], time.time())

    submit(TICK_GPUS // 8, 8)  # fill the fleet: 125 jobs of 8 GPUs
    loop.tick()
    # Full, unless a power cap holds some of them back.
    assert settings_kw or len(loop.mirror.placement) == TICK_GPUS // 8, len(loop.mirror.placement)
    placed = len(loop.mirror.placement)
    submit(TICK_QUEUED, 0)
    loop.tick()  # ingest the queue
    running = sorted(loop.mirror.attempt)
    ticks, cores = [], []
    for i in range(TICK_ROUNDS):
        # One running job exits (8 GPUs free up) and one job arrives: a busy tick.
        jid = running[i]
        ex.exits.append(
            SimpleNamespace(
                job_id=jid,
                attempt=loop.mirror.attempt[jid],
                outcome="completed",
                exit_code=0,
                detail="",
            )
        )
        submit(1, 0)
        t0 = time.perf_counter()
        loop.tick()
        ticks.append(time.perf_counter() - t0)
        view = loop.power.view(time.time()) if loop.power is not None else None
        snap = Snapshot(
            time.time(), loop.mirror.state, loop.mirror.pending, loop.speed, loop.estimate_s, view
        )
        t0 = time.perf_counter()
        schedule(snap, loop.pol, deep=True)
        cores.append(time.perf_counter() - t0)
    queued = len(loop.mirror.pending)
    engine.dispose()
    return {
        "queued_jobs": queued,
        "placed_at_fill": placed,
        "gpus": TICK_GPUS,
        "rounds": TICK_ROUNDS,
        "launched_during_rounds": ex.launched - placed,
        "tick_ms": {
            "p50": round(pct(ticks, 50) * 1e3, 2),
            "p99": round(pct(ticks, 99) * 1e3, 2),
            "max": round(max(ticks) * 1e3, 2),
        },
        "schedule_only_ms": {
            "p50": round(pct(cores, 50) * 1e3, 2),
            "max": round(max(cores) * 1e3, 2),
        },
        "ratio_tick_to_schedule_p50": round(pct(ticks, 50) / pct(cores, 50), 2),
    }


# ---- 3. submit -> running ------------------------------------------------------------
STAMP = "import time, sys; open(sys.argv[1], 'w').write(repr(time.time()))"


def bench_latency(url: str, home: Path) -> dict[str, Any]:
    srv = Server(url, home, slots=1)
    out: list[float] = []
    spawn: list[float] = []
    try:
        token = srv.token("fsd")
        with httpx.Client(
            base_url=srv.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as c:
            for i in range(LATENCY_RUNS + 1):
                stamp = home / f"stamp-{i}"
                t0 = time.time()
                r = c.post("/v1/jobs", json={**BODY, "command": [PY, "-c", STAMP, str(stamp)]})
                r.raise_for_status()
                deadline = time.monotonic() + 30
                while not stamp.exists() or not stamp.read_text():
                    if time.monotonic() > deadline:
                        raise RuntimeError("job did not start")
                    time.sleep(0.002)
                if i:  # the first run warms caches
                    out.append(float(stamp.read_text()) - t0)
                jid = r.json()["id"]
                while c.get(f"/v1/jobs/{jid}").json()["state"] != "completed":
                    if time.monotonic() > deadline:
                        raise RuntimeError("job did not finish")
                    time.sleep(0.01)
        for i in range(LATENCY_RUNS):
            stamp = home / f"spawn-{i}"
            t0 = time.time()
            p = subprocess.Popen([PY, "-c", STAMP, str(stamp)])
            p.wait()
            spawn.append(float(stamp.read_text()) - t0)
    finally:
        srv.stop()
    return {
        "runs": len(out),
        "submit_to_running_ms": {
            "p50": round(pct(out, 50) * 1e3, 1),
            "max": round(max(out) * 1e3, 1),
        },
        "bare_spawn_ms": {"p50": round(pct(spawn, 50) * 1e3, 1), "max": round(max(spawn) * 1e3, 1)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--only", default="submit,tick,latency")
    ap.add_argument(
        "--running",
        action="store_true",
        help="submit: jobs run while the flood queues (default: the node is cordoned)",
    )
    args = ap.parse_args()
    only = set(args.only.split(","))
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    pg = None
    backends = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    tmp = Path(tempfile.mkdtemp(prefix="cortex-bench-"))
    try:
        if "postgres" in backends:
            pg = Postgres()
            pg.start()
        for backend in backends:
            res: dict[str, Any] = {}
            for part in ("submit", "tick", "latency"):
                if part not in only:
                    continue
                home = tmp / f"{backend}-{part}"
                home.mkdir()
                url = (
                    pg.database()
                    if backend == "postgres" and pg
                    else f"sqlite:///{home / 'cortex.db'}"
                )
                fn = {"submit": bench_submit, "tick": bench_tick, "latency": bench_latency}[part]
                print(f"{backend}: {part} ...", file=sys.stderr, flush=True)
                res[part] = (
                    bench_submit(url, home, running=args.running)
                    if part == "submit"
                    else fn(url, home)
                )
                if part == "submit":
                    base_home = tmp / f"{backend}-insert"
                    base_home.mkdir()
                    burl = (
                        pg.database()
                        if backend == "postgres" and pg
                        else f"sqlite:///{base_home / 'cortex.db'}"
                    )
                    res["store_insert_baseline"] = bench_store_insert(burl)
                    res["ratio_api_to_store"] = round(
                        res["submit"]["per_s"] / res["store_insert_baseline"]["per_s"], 2
                    )
                print(json.dumps(res[part]), file=sys.stderr, flush=True)
            results[backend] = res
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    path = OUT / "control.json"
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
