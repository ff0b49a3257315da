"""How long `cortex` takes to start a client command, against `python -c pass` in the same
run (the machine's load moves both alike; the difference is what the CLI costs).

    python bench/cli_start.py [--runs 7]

Each command runs against a closed loopback port, so it goes as far as its first request and
no further: the figure is start-up (imports, option parsing), not the server's answer."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

CORTEX = [sys.executable, "-c", "from cortex.cli.main import main; main()"]
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    # The floor any Typer + httpx + Rich client pays before its own code runs.
    "import typer, httpx, rich (floor)": [
        sys.executable,
        "-c",
        "import typer, typer._adapters, httpx, rich.console, rich.table",
    ],
    "cortex --version": [*CORTEX, "--version"],
    "cortex jobs": [*CORTEX, "jobs"],
    "cortex job 1 -o json": [*CORTEX, "job", "1", "-o", "json"],
    "cortex sim --help (twin, for contrast)": [*CORTEX, "sim", "--help"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    runs = ap.parse_args().runs
    env = {**os.environ, "CORTEX_URL": "http://127.0.0.1:9"}
    times: dict[str, list[float]] = {k: [] for k in CASES}
    cpu: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(runs):  # interleaved, so load changes hit every case alike
        for name, cmd in CASES.items():
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=120)
            times[name].append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    base = statistics.median(times["python -c pass"])
    print(f"load average {os.getloadavg()[0]:.1f}; median of {runs} runs (wall, and CPU: less")
    print("moved by other work on the machine)")
    for name, ts in times.items():
        med = statistics.median(ts)
        c = statistics.median(cpu[name])
        print(
            f"{name:42s} wall {med * 1000:6.0f} ms (+{(med - base) * 1000:5.0f} over python)"
            f"  CPU {c * 1000:5.0f} ms"
        )


if __name__ == "__main__":
    main()
