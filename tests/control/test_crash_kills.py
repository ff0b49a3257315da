"""A handful of random `kill -9`s of a live service under mixed load, on each store (the
benchmark in bench/control_faults.py does 100): no accepted job lost, none run to completion
twice, no allocation leaked, nothing left running."""

from __future__ import annotations

from pathlib import Path

from crash import WARMUP_JOBS, crash_run
from live import LiveServer

KILLS = 3


def test_random_kills_under_load_lose_nothing_and_run_nothing_twice(
    db_url: str, tmp_path: Path
) -> None:
    srv = LiveServer(tmp_path / "home", db_url, slots=4, grace_s=1.0)
    srv.home.mkdir()
    srv.start()
    try:
        res = crash_run(srv, KILLS, seed=3)
    finally:
        srv.stop()
        srv.cleanup_runs()
    assert res.kills == KILLS and len(res.accepted) >= WARMUP_JOBS, res
    assert res.lost == [] and res.run_twice == [], res
    assert res.not_final == [], res
    assert res.leaked_allocations == 0 and res.orphans == 0, res
