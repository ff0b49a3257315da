"""Issue 9, defect 3, end to end: concurrent submits, cancels, log follows and queue edits
against a live `cortex serve` on each store, with jobs that ignore SIGTERM. Every request
answers, the scheduler keeps ticking, and SIGTERM still stops the service. (bench/ runs the same
driver for 10 minutes.) On the old code the cancel route deadlocked with the tick on SQLite."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import LiveServer
from stress import KINDS, lock_stress

DURATION_S = 12.0  # at least; on until every kind of request ran MIN_EACH times
MIN_EACH, MAX_S = 5, 120.0
# Ticks run every 0.1 s; standing still this long means the loop is stuck. Generous, as is the
# request timeout: a deadlock never ends, and a loaded CI machine must not pass for one.
STALL_S = 30.0
REQUEST_TIMEOUT_S = 30.0
STOP_S = 30.0  # SIGTERM -> exit bound: the service's grace period plus start-up slack


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", db_url, slots=4, grace_s=1.0)
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def test_concurrent_requests_never_hang_and_ticks_advance(server: LiveServer) -> None:
    res = lock_stress(
        server,
        DURATION_S,
        seed=9,
        request_timeout_s=REQUEST_TIMEOUT_S,
        min_each=MIN_EACH,
        max_s=MAX_S,
    )
    assert res.hung == [], res.hung[:5]
    assert res.server_errors == [], res.server_errors[:5]
    # Every kind of request ran, many times over (so a lost race had its chances).
    for kind in KINDS:
        assert res.by_kind.get(kind, 0) >= MIN_EACH, res.by_kind
    first, last = res.tick_samples[0][1], res.tick_samples[-1][1]
    assert last > first
    assert res.longest_stall_s() < STALL_S, res.tick_samples
    # And SIGTERM stops it, with follow streams and stubborn jobs still about.
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        server.proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cortex serve still running {time.monotonic() - t0:.0f} s after SIGTERM")
