"""How long a client command takes to start and answer: this checkout against an older one
(main at f8fbc7d by default), in the same run, interleaved, so the machine's load moves both
alike. Median of N runs; wall time and the child's CPU (user + sys); the new/old ratio.

    python bench/cli_start.py [--runs 9] [--base-commit f8fbc7d] [--base-dir /tmp/cli3base]

Cases: `cortex --version`, `cortex --help`, `cortex jobs --help`, `cortex submit --help`
(issue 14's --help: `--base-commit 665e085 --base-dir /tmp/ops4base` measures the plain help
layout against Typer's Rich panels), and `cortex jobs` against a real
`cortex serve` on 127.0.0.1 (this checkout's, SQLite, the local executor, one job stored).
The older checkout is `git archive`d into --base-dir if absent and run with PYTHONPATH, as
this one is. Results to bench/out/cli_start.json."""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORTEX = [sys.executable, "-c", "from cortex.cli.main import main; main()"]
ADMIN = "bench-cli-admin-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "CORTEX_ADMIN_TOKEN": ADMIN,
        "CORTEX_DATABASE_URL": f"sqlite:///{home / 'bench.db'}",
        "CORTEX_ALLOW_SAME_USER": "1",
    }
    cmd = [*CORTEX, "serve", "--host", "127.0.0.1", "--port", str(port), "--home", str(home)]
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((home / "serve.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("cortex serve did not come up")


def _team_token(base: str) -> str:
    req = urllib.request.Request(
        f"{base}/v1/tokens",
        data=json.dumps({"team": "fsd"}).encode(),
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return str(json.loads(r.read())["token"])


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, bytes]:
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=120)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    return wall, cpu, proc.returncode, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--base-commit", default="f8fbc7d")
    ap.add_argument("--base-dir", type=Path, default=Path("/tmp/cli3base"))
    a = ap.parse_args()
    if not (a.base_dir / "src" / "cortex").is_dir():
        a.base_dir.mkdir(parents=True, exist_ok=True)
        tar = subprocess.run(
            ["git", "-C", str(ROOT), "archive", a.base_commit], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(a.base_dir)], input=tar, check=True)
    trees = {"old": a.base_dir / "src", "new": ROOT / "src"}
    with tempfile.TemporaryDirectory() as tmp:
        server, base = _serve(Path(tmp))
        try:
            env = {**os.environ, "CORTEX_URL": base, "CORTEX_TOKEN": _team_token(base)}
            env["COLUMNS"] = "200"
            ok = subprocess.run(
                [*CORTEX, "submit", "--duration-s", "60", "--", "true"],
                env={**env, "PYTHONPATH": str(trees["new"])},
                capture_output=True,
                check=False,
            )
            assert ok.returncode == 0, ok.stderr
            results = _measure(a.runs, trees, env)
        finally:
            server.terminate()
            server.wait(timeout=30)
    _report(results, a)


CASES = {
    "python -c pass": None,
    "cortex --version": ["--version"],
    "cortex --help": ["--help"],
    "cortex jobs --help": ["jobs", "--help"],
    "cortex submit --help": ["submit", "--help"],
    "cortex jobs (real server)": ["jobs"],
}
# Printed differently by design since 665e085: a command's help in Click's layout instead of
# Typer's Rich panels (same words: tests/cli/test_cli_help_plain.py), and a listing's age
# column may tick over between the two runs.
MAY_DIFFER = ("real server", "jobs --help", "submit --help")


def _measure(
    runs: int, trees: dict[str, Path], env: dict[str, str]
) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(runs):  # interleaved: old and new of a case back to back
        for name, args in CASES.items():
            printed = set()
            for tree, src in trees.items():
                cmd = [sys.executable, "-c", "pass"] if args is None else [*CORTEX, *args]
                wall, cpu, code, stdout = _timed(cmd, {**env, "PYTHONPATH": str(src)})
                assert code == 0, (name, tree, code)
                printed.add(stdout)
                s = samples.setdefault(f"{name}|{tree}", {"wall": [], "cpu": []})
                s["wall"].append(wall)
                s["cpu"].append(cpu)
            assert len(printed) == 1 or any(m in name for m in MAY_DIFFER), (name, printed)
    return samples


def _report(samples: dict[str, dict[str, list[float]]], a: argparse.Namespace) -> None:
    load = os.getloadavg()
    out: dict[str, object] = {
        "runs": a.runs,
        "base_commit": a.base_commit,
        "load_average_1_5_15": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
        "cases": {},
    }
    print(f"median of {a.runs} runs; load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'':28s} {'old wall':>9s} {'new wall':>9s} {'ratio':>6s}   "
          f"{'old CPU':>8s} {'new CPU':>8s} {'ratio':>6s}")  # fmt: skip
    for name in CASES:
        row: dict[str, float] = {}
        for tree in ("old", "new"):
            s = samples[f"{name}|{tree}"]
            row[f"{tree}_wall_ms"] = round(statistics.median(s["wall"]) * 1000, 1)
            row[f"{tree}_cpu_ms"] = round(statistics.median(s["cpu"]) * 1000, 1)
        row["wall_ratio"] = round(row["new_wall_ms"] / row["old_wall_ms"], 3)
        row["cpu_ratio"] = round(row["new_cpu_ms"] / max(row["old_cpu_ms"], 1e-3), 3)
        out["cases"][name] = row  # type: ignore[index]
        print(
            f"{name:28s} {row['old_wall_ms']:7.0f}ms {row['new_wall_ms']:7.0f}ms "
            f"{row['wall_ratio']:6.2f}   {row['old_cpu_ms']:6.0f}ms {row['new_cpu_ms']:6.0f}ms "
            f"{row['cpu_ratio']:6.2f}"
        )
    dest = ROOT / "bench" / "out" / "cli_start.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
