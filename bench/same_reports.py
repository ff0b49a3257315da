"""Seeded reports before and after a speed change must be byte-identical (timings aside).

    python bench/same_reports.py run OUT [--src SRC] [--month]  # OUT/<name>.json per config
    python bench/same_reports.py compare A B            # exit 1 if any report differs

`--src` runs another checkout's sources (e.g. `git archive BASE | tar -x -C /tmp/base`, then
`--src /tmp/base/src`) with this environment. The configurations cover every policy and power
policy on fleets where jobs queue, get preempted and fail. The compiled core against pure
Python: `CORTEX_COMPILED=0 ... run P`, `CORTEX_COMPILED=1 ... run C`, `compare P C` (after
`python -m cortex.compile`; a stale build prints why and runs pure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CONTENDED = ["--load", "2", "--failure-scale", "20"]
CONFIGS: dict[str, list[str]] = {
    "c2024_3d": ["--fleet", "cortex-2024", "--days", "3"],
    "c2024_full": ["--fleet", "cortex-2024", "--days", "2", "--power-policy", "full"],
    "c2024_las_cap": [
        *("--fleet", "cortex-2024", "--days", "2", "--power-policy", "cap", "--policy", "las"),
    ],
    "c2024_fifo_off": [
        *("--fleet", "cortex-2024", "--days", "2", "--power-policy", "off", "--policy", "fifo"),
    ],
    "l16k_priority": ["--fleet", "llama3-16k", "--days", "4", *CONTENDED],
    "l16k_las": ["--fleet", "llama3-16k", "--days", "4", *CONTENDED, "--policy", "las"],
    "l16k_fifo": ["--fleet", "llama3-16k", "--days", "4", *CONTENDED, "--policy", "fifo"],
    "l16k_cap": [
        *("--fleet", "llama3-16k", "--days", "4", *CONTENDED),
        *("--power-policy", "cap", "--site-cap-mw", "20"),
    ],
    "l16k_full": [
        *("--fleet", "llama3-16k", "--days", "4", *CONTENDED),
        *("--power-policy", "full", "--site-cap-mw", "20"),
    ],
    "tiny_30d": ["--fleet", "tiny", "--days", "30", *CONTENDED],
    "philly_las": ["--fleet", "philly-48x4", "--days", "10", *CONTENDED, "--policy", "las"],
    # 535k accelerators: a deep pass's reservations walk hundreds of ends (RESULTS.md, 57)
    "c2026_2d": ["--fleet", "cortex-2026", "--days", "2"],
}
VOLATILE = ("wall_s", "timing")
# `run --month`: the headline run too (about 30 s CPU; compared when both sides have it)
MONTH: dict[str, list[str]] = {"c2024_month": ["--fleet", "cortex-2024", "--days", "30"]}


def run(out: Path, src: str | None, month: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    configs = {**CONFIGS, **MONTH} if month else CONFIGS
    for name, args in configs.items():
        cmd = [sys.executable, "-m", "cortex.cli.main", "sim", *args, "--quiet"]
        cmd += ["--json", str(out / f"{name}.json")]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        print(f"  {name}", flush=True)


def compare(a: Path, b: Path) -> int:
    bad = 0
    names = [n for n in CONFIGS if (a / f"{n}.json").exists() or (b / f"{n}.json").exists()]
    names += [n for n in MONTH if (a / f"{n}.json").exists() and (b / f"{n}.json").exists()]
    for name in names:
        x = json.loads((a / f"{name}.json").read_text())
        y = json.loads((b / f"{name}.json").read_text())
        for d in (x, y):
            for k in VOLATILE:
                d.pop(k, None)
        # As text, not as objects: 3 == 3.0 in Python, but the report file says "3" or "3.0".
        if json.dumps(x, sort_keys=True) == json.dumps(y, sort_keys=True):
            print(f"same  {name}")
        else:
            bad += 1
            print(f"DIFF  {name}: {[k for k in x if x.get(k) != y.get(k)]}")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--src", default=None)
    r.add_argument("--month", action="store_true", help="also the 30-day cortex-2024 default")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.cmd == "run":
        run(args.out, args.src, args.month)
    else:
        sys.exit(compare(args.a, args.b))


if __name__ == "__main__":
    main()
