"""Control-plane fault benchmarks (issue 9) on SQLite and PostgreSQL, results in
bench/out/control_faults.json (summarized by hand in bench/RESULTS.md).

    python bench/control_faults.py crash --kills 100          # 100 kill -9s per store
    python bench/control_faults.py stress --minutes 10        # the lock stress, 10 minutes
    python bench/control_faults.py crash --kills 20 --db sqlite

crash: random kill -9s of a live `cortex serve` under mixed load (submits, cancels, jobs that
complete, fail or exit 75), a restart after each; counts jobs lost, run to completion twice,
allocations left active for final jobs, runs left alive. stress: concurrent submits, cancels,
log follows, queue edits and reads with jobs that ignore SIGTERM; counts hung requests and 5xx
and the longest stretch without a scheduler tick. Both drivers live in tests/control (crash.py,
stress.py), where the test suite runs them briefly. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "control"))

import live  # noqa: E402
from crash import crash_run  # noqa: E402
from live import LiveServer  # noqa: E402
from stress import lock_stress  # noqa: E402

from cortex.control.devpg import ThrowawayPostgres, find_bin  # noqa: E402

OUT = ROOT / "bench" / "out"
# A restart on a machine shared with other work can take longer than a test's minute.
live.WAIT_S = 180.0


def _url(db: str, tmp: Path, pg: ThrowawayPostgres | None) -> str:
    if db == "sqlite":
        return f"sqlite:///{tmp / 'home' / 'cortex.db'}"
    assert pg is not None
    import psycopg

    base = pg.start()
    with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as c:
        c.execute('CREATE DATABASE "faults"')
    return f"{base}/faults"


def run_one(mode: str, db: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"cortex-faults-{db}-"))
    pg = None
    failed = True
    if db == "postgres":
        binp = find_bin()
        if binp is None:
            return {"skipped": "no PostgreSQL binaries"}
        pg = ThrowawayPostgres(binp, durable=True)
    try:
        srv = LiveServer(tmp / "home", _url(db, tmp, pg), slots=4, grace_s=1.0)
        srv.home.mkdir(exist_ok=True)
        srv.start()
        t0 = time.monotonic()
        failed = True
        try:
            if mode == "crash":
                res: Any = crash_run(srv, args.kills, seed=args.seed, progress=True)
                out = asdict(res) | {"ok": res.ok(), "accepted": len(res.accepted)}
            else:
                res = lock_stress(srv, args.minutes * 60, seed=args.seed)
                out = {
                    "requests": res.requests,
                    "by_kind": res.by_kind,
                    "hung": len(res.hung),
                    "hung_first": res.hung[:5],
                    "server_errors": len(res.server_errors),
                    "longest_tick_stall_s": round(res.longest_stall_s(), 2),
                    "ticks": res.tick_samples[-1][1] - res.tick_samples[0][1],
                }
            failed = False
        finally:
            srv.stop()
            srv.cleanup_runs()
        out["wall_s"] = round(time.monotonic() - t0, 1)
        return out
    finally:
        if pg is not None:
            pg.stop("immediate")
        if failed:  # keep the service's log for a look
            print(f"kept {tmp} (serve.log)", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["crash", "stress"])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = {db: run_one(args.mode, db, args) for db in dbs}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"control_faults_{args.mode}_{args.db}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    for db, r in results.items():
        brief = {k: v for k, v in r.items() if k not in ("accepted_ids", "hung_first")}
        print(db, json.dumps(brief, default=str)[:600])


if __name__ == "__main__":
    main()
