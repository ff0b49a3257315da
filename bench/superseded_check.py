"""A superseded finish dropped unhandled, or never put on the heap (RESULTS §134), changes the
report by its count in `events` only: the same seeded reports, `events` lower by exactly the
finishes that an engine handing them to `Twin._finish` (a base checkout from before it) found
stale, and floats equal or within 1e-9 relative (the clock no longer stops at those instants,
so the metrics' float integrals are split at fewer moments and may round otherwise in the last
bits; a sum so rounded may print one step apart in its last digit, which is listed too).

    python bench/superseded_check.py run OUT --base BASE_SRC [--new NEW_SRC] [--month]
    python bench/superseded_check.py compare BASE.json NEW.json N   # N: BASE's stale finishes
    python bench/superseded_check.py count OUT.json -- SIM_ARGS...  # (run's child) the sim
        with a counter of the stale finishes `_finish` sees, written to OUT.json.superseded

`run` runs each configuration on both trees (the base under the counter), compares, and lists
every float field that differs and by how much. Exit 1 if any report differs otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

CONFIGS: dict[str, list[str]] = {
    "c2024_2d_none": ["--fleet", "cortex-2024", "--days", "2"],
    "c2024_2d_full": ["--fleet", "cortex-2024", "--days", "2", "--power-policy", "full"],
    "c2024_2d_full_s3": [
        *("--fleet", "cortex-2024", "--days", "2", "--power-policy", "full", "--seed", "3"),
    ],
    "c2024_5d_none_s1": ["--fleet", "cortex-2024", "--days", "5", "--seed", "1"],
    "c2024_2d_las_cap": [
        *("--fleet", "cortex-2024", "--days", "2", "--power-policy", "cap", "--policy", "las"),
    ],
    "c2024_2d_fifo_full": [
        *("--fleet", "cortex-2024", "--days", "2", "--power-policy", "full", "--policy", "fifo"),
    ],
    "l16k_full": [
        *("--fleet", "llama3-16k", "--days", "4", "--load", "2", "--failure-scale", "20"),
        *("--power-policy", "full", "--site-cap-mw", "20"),
    ],
    "l16k_las": [
        *("--fleet", "llama3-16k", "--days", "4", "--load", "2", "--failure-scale", "20"),
        *("--policy", "las"),
    ],
}
MONTH: dict[str, list[str]] = {
    "month_none": ["--fleet", "cortex-2024", "--days", "30"],
    "month_full": ["--fleet", "cortex-2024", "--days", "30", "--power-policy", "full"],
}
VOLATILE = ("wall_s", "timing")
REL = 1e-9


def count(out: Path, sim_args: list[str]) -> None:
    """Run `cortex sim` in this process with `Twin._finish` counting the stale entries it is
    handed (the base engine's: it hands every finish over)."""
    from cortex.sim.twin import Twin
    from cortex.workload.states import JobState

    stale = [0]
    finish = Twin._finish

    def counting(self: Twin, job: Any, epoch: int) -> None:
        if job.epoch != epoch or job.state is not JobState.RUNNING:
            stale[0] += 1
        finish(self, job, epoch)

    setattr(Twin, "_finish", counting)  # noqa: B010 (a patch mypy would refuse to type)
    sys.argv = ["cortex", "sim", *sim_args, "--quiet", "--json", str(out)]
    try:
        runpy.run_module("cortex.cli.main", run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    Path(f"{out}.superseded").write_text(f"{stale[0]}\n")


def _last_digit(x: float) -> float:
    """One step of the last digit the report printed `x` with (it rounds)."""
    text = repr(x)
    if "e" in text or "." not in text:
        return 0.0
    return 10.0 ** -len(text.split(".")[1])


def _floats(a: Any, b: Any, path: str, diffs: list[str], floats: dict[str, float]) -> None:
    """Differences of b from a: ints, strings, keys and lengths exactly, floats to REL
    or one step apart in the last digit printed (those that differ at all are noted in
    `floats`, with their relative difference)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in VOLATILE and not path:
                continue
            if k not in a or k not in b:
                diffs.append(f"{path}.{k}: only in {'new' if k not in a else 'base'}")
            else:
                _floats(a[k], b[k], f"{path}.{k}", diffs, floats)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{path}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _floats(x, y, f"{path}[{i}]", diffs, floats)
    elif isinstance(a, float) and isinstance(b, float):
        if a != b:
            rel = abs(a - b) / max(abs(a), abs(b))
            floats[path] = rel
            # (a sum 1 ulp off may round the other way: one step of the last digit printed)
            if rel > REL and abs(a - b) > max(_last_digit(a), _last_digit(b)) * 1.000001:
                diffs.append(f"{path}: {a!r} != {b!r} (relative {rel:.3g})")
    elif type(a) is not type(b) or a != b:
        diffs.append(f"{path}: {a!r} != {b!r}")


def compare(base: dict[str, Any], new: dict[str, Any], superseded: int) -> list[str]:
    """What differs beyond `events` lower by `superseded` (and the new tree's own count of
    them in `timing`) and floats within REL; the floats that differ at all are printed."""
    diffs: list[str] = []
    if base["events"] - new["events"] != superseded:
        diffs.append(f"events: {base['events']} - {new['events']} != {superseded}")
    # The new tree's own count is of the entries it dropped: its parked ends (a run's later
    # end kept off the heap behind its earlier entry) never go on the heap, so it is lower.
    got = new.get("timing", {}).get("superseded_finishes")
    if not isinstance(got, int) or not 0 <= got <= superseded:
        diffs.append(f"timing.superseded_finishes: {got} not in 0..{superseded}")
    floats: dict[str, float] = {}
    _floats(
        {k: v for k, v in base.items() if k != "events"},
        {k: v for k, v in new.items() if k != "events"},
        "",
        diffs,
        floats,
    )
    for path, rel in floats.items():
        print(f"  float {path}: relative {rel:.3g}")
    return diffs


def run(out: Path, base: str, new: str, month: bool) -> bool:
    out.mkdir(parents=True, exist_ok=True)
    ok = True
    configs = {**CONFIGS, **MONTH} if month else CONFIGS
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    for name, args in configs.items():
        b, n = out / f"{name}.base.json", out / f"{name}.new.json"
        me = [sys.executable, __file__, "count", str(b), "--", *args]
        quiet = subprocess.DEVNULL  # `--quiet` keeps the summary table
        subprocess.run(me, env={**env, "PYTHONPATH": base}, check=True, stdout=quiet)
        sim = [sys.executable, "-m", "cortex.cli.main", "sim", *args, "--quiet", "--json", str(n)]
        subprocess.run(sim, env={**env, "PYTHONPATH": new}, check=True, stdout=quiet)
        ok = report(name, b, n, int(Path(f"{b}.superseded").read_text())) and ok
    return ok


def report(name: str, base: Path, new: Path, superseded: int) -> bool:
    a, b = (json.loads(p.read_text()) for p in (base, new))
    dropped = b.get("timing", {}).get("superseded_finishes")
    print(f"{name}: events {a['events']} -> {b['events']}, superseded {superseded}", end="")
    print(f" (dropped from the heap {dropped})")
    diffs = compare(a, b, superseded)
    for d in diffs:
        print(f"  DIFFERS {d}")
    print(f"  {'same but events' if not diffs else 'DIFFERENT'}")
    return not diffs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--base", required=True, help="the base checkout's src/")
    r.add_argument("--new", default=str(Path(__file__).resolve().parents[1] / "src"))
    r.add_argument("--month", action="store_true", help="the 30-day none and full months too")
    c = sub.add_parser("compare")
    c.add_argument("base", type=Path)
    c.add_argument("new", type=Path)
    c.add_argument("superseded", type=int)
    k = sub.add_parser("count")
    k.add_argument("out", type=Path)
    k.add_argument("sim_args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    if a.cmd == "count":
        count(a.out, [x for x in a.sim_args if x != "--"])
        return 0
    if a.cmd == "compare":
        return 0 if report(a.base.stem, a.base, a.new, a.superseded) else 1
    return 0 if run(a.out, a.base, a.new, a.month) else 1


if __name__ == "__main__":
    sys.exit(main())
