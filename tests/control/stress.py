"""The lock stress driver, shared by tests/control/test_lock_stress.py (seconds) and
bench/control_faults.py (minutes): concurrent submits, cancels, log follows, queue edits and
reads against a live `cortex serve`, with jobs that ignore SIGTERM (so every stop runs its
grace period out and ends in SIGKILL), while a monitor watches the scheduler's tick count.

A request that has not answered within `request_timeout_s` is hung; the service answers each in
milliseconds, so this only catches a deadlock, never slowness. Load stays on loopback and every
loop is bounded by the deadline."""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from live import ADMIN, LiveServer

# Ignores SIGTERM, then sleeps argv[1] seconds: a stop must wait out the grace and SIGKILL it.
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
    "print('done', flush=True)\n"
)
CLASSES = ("preemptible", "normal", "production")
TEAMS = ("red", "blue")


@dataclass
class StressResult:
    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    hung: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    tick_samples: list[tuple[float, int]] = field(default_factory=list)
    submitted: list[int] = field(default_factory=list)

    def longest_stall_s(self) -> float:
        """Longest stretch between two monitor samples over which the tick count stood still."""
        worst, since = 0.0, None
        for (t0, n0), (t1, n1) in zip(self.tick_samples, self.tick_samples[1:], strict=False):
            if n1 == n0:
                since = t0 if since is None else since
                worst = max(worst, t1 - since)
            else:
                since = None
        return worst


class _Worker:
    def __init__(
        self, srv: LiveServer, res: StressResult, lock: threading.Lock, seed: int, timeout_s: float
    ) -> None:
        self.srv, self.res, self.lock = srv, res, lock
        self.rng = random.Random(seed)
        self.timeout = httpx.Timeout(timeout_s)

    def call(self, c: httpx.Client, kind: str, method: str, url: str, **kw: Any) -> Any:
        try:
            r = c.request(method, url, timeout=self.timeout, **kw)
        except httpx.TimeoutException:
            with self.lock:
                self.res.hung.append(f"{kind} {method} {url}")
            return None
        except httpx.TransportError as e:  # the server went away: also a failure to answer
            with self.lock:
                self.res.hung.append(f"{kind} {method} {url}: {e!r}")
            return None
        with self.lock:
            self.res.requests += 1
            self.res.by_kind[kind] = self.res.by_kind.get(kind, 0) + 1
            if r.status_code >= 500:
                self.res.server_errors.append(f"{kind} {method} {url}: {r.status_code} {r.text}")
        return r

    def pick_job(self) -> int | None:
        with self.lock:
            ids = list(self.res.submitted[-50:])
        return self.rng.choice(ids) if ids else None

    def follow(self, c: httpx.Client, job: int) -> None:
        """Open a follow stream (the answer is its headers) and read it for up to a second."""
        url = f"/v1/jobs/{job}/logs?follow=true"
        answered = False
        try:
            with c.stream("GET", url, timeout=self.timeout) as r:
                answered = True
                with self.lock:
                    self.res.requests += 1
                    self.res.by_kind["follow"] = self.res.by_kind.get("follow", 0) + 1
                    if r.status_code >= 500:
                        self.res.server_errors.append(f"follow {url}: {r.status_code}")
                end = time.monotonic() + 1.0
                for _ in r.iter_bytes():
                    if time.monotonic() > end:
                        break
        except httpx.TimeoutException:
            if not answered:  # a quiet log after the headers is a queued job, not a hang
                with self.lock:
                    self.res.hung.append(f"follow {url}")
        except httpx.TransportError as e:
            with self.lock:
                self.res.hung.append(f"follow {url}: {e!r}")

    def run(self, tokens: dict[str, str], stop: threading.Event) -> None:
        team = self.rng.choice(TEAMS)
        user = self.srv.client(tokens[team])
        admin = self.srv.client(ADMIN)
        while not stop.is_set():
            op = self.rng.random()
            if op < 0.35:
                body = {
                    "name": "stubborn",
                    "gpus": 1,
                    "duration_s": 5,
                    "priority_class": self.rng.choice(CLASSES),
                    "command": [sys.executable, "-c", STUBBORN, f"{self.rng.uniform(0.2, 3):.2f}"],
                }
                r = self.call(user, "submit", "POST", "/v1/jobs", json=body)
                if r is not None and r.status_code == 201:
                    with self.lock:
                        self.res.submitted.append(int(r.json()["id"]))
            elif op < 0.6:
                job = self.pick_job()
                if job is not None:
                    self.call(admin, "cancel", "POST", f"/v1/jobs/{job}/cancel")
            elif op < 0.7:
                job = self.pick_job()
                if job is not None:
                    self.follow(admin, job)
            elif op < 0.8:
                q = self.rng.choice(TEAMS)
                body = {"nominal_share": round(self.rng.uniform(0, 0.5), 2), "weight": 1.0}
                self.call(admin, "queue", "PUT", f"/v1/queues/{q}", json=body)
            else:
                job = self.pick_job()
                path = "/v1/jobs?limit=20" if job is None else f"/v1/jobs/{job}"
                self.call(admin, "read", "GET", path)
            time.sleep(self.rng.uniform(0, 0.05))


KINDS = ("submit", "cancel", "follow", "queue", "read")


def lock_stress(
    srv: LiveServer,
    duration_s: float,
    *,
    seed: int = 0,
    workers: int = 8,
    request_timeout_s: float = 10.0,
    min_each: int = 0,
    max_s: float | None = None,
) -> StressResult:
    """Load for `duration_s`, then on until every kind of request has answered `min_each`
    times (at most `max_s` in all): how many a fixed time holds depends on the machine's load
    (a follow of a quiet job waits out its read timeout), and a test counting them must not
    fail by chance."""
    res = StressResult()
    lock = threading.Lock()
    tokens = {t: srv.team_token(t) for t in TEAMS}
    start = time.monotonic()
    deadline, last = start + duration_s, start + max(duration_s, max_s or 0.0)
    stop = threading.Event()

    def done(now: float) -> bool:
        with lock:
            enough = all(res.by_kind.get(k, 0) >= min_each for k in KINDS)
        return now >= last or (now >= deadline and enough)

    threads = [
        threading.Thread(
            target=_Worker(srv, res, lock, seed * 1000 + i, request_timeout_s).run,
            args=(tokens, stop),
            daemon=True,
        )
        for i in range(workers)
    ]
    for t in threads:
        t.start()
    with httpx.Client(base_url=srv.base) as mon:
        while not done(time.monotonic()):
            try:
                ticks = int(mon.get("/healthz", timeout=request_timeout_s).json()["ticks"])
            except (httpx.HTTPError, ValueError, KeyError) as e:
                with lock:
                    res.hung.append(f"healthz: {e!r}")
                ticks = res.tick_samples[-1][1] if res.tick_samples else 0
            res.tick_samples.append((time.monotonic(), ticks))
            time.sleep(0.25)
    stop.set()
    for t in threads:
        # Each worker's last request may take up to the timeout, and a follow one more second.
        t.join(request_timeout_s + 5)
        if t.is_alive():
            res.hung.append("a worker thread never returned")
    return res
