"""The twin's ramp wakes, old rule against new, in one code (bench/RESULTS.md section 99).

`PowerBooks.ramp_clear_at` once answered when the oldest counted step leaves the ramp window;
it now answers when the blocked start's step fits again (or the window is clear). This runs the
month with `--power-policy full`, waking by RULE (`new` or `old`), and prints how many wakes
each rule would put on a later grid instant than the other, the number of starts and a hash
over every start (time, job, flavor, gang, cap level): equal hashes mean no decision moved.

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/ramp_wakes.py new /tmp/new.json
    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/ramp_wakes.py old /tmp/old.json
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import runpy
import sys
from typing import Any

from cortex.drive.power_books import PowerBooks
from cortex.sim.twin import Twin

GRID_S = 60.0  # the twin's backfill interval (sim/data/defaults.csv): wakes round up to it


def old_rule(books: PowerBooks, t: float) -> float:
    """The rule before section 99: when the oldest counted step leaves the window."""
    recent = [ts for ts, _ in books.window if ts > t - 60.0]
    return min(recent) + 60.0 if recent else t


def _grid(x: float, now: float) -> float:
    g = math.ceil(x / GRID_S) * GRID_S
    return g + GRID_S if g <= now else g


def main(rule: str, out: str) -> None:
    new_rule = PowerBooks.ramp_clear_at
    stats: dict[str, Any] = {"wakes": 0, "later_grid": 0, "earlier_grid": 0, "later_by_s": {}}

    def both(self: PowerBooks, t: float, need_w: float = math.inf) -> float:
        old, new = old_rule(self, t), new_rule(self, t, need_w)
        stats["wakes"] += 1
        delta = _grid(new, t) - _grid(old, t)
        if delta:
            stats["later_grid" if delta > 0 else "earlier_grid"] += 1
            key = str(int(delta))
            stats["later_by_s"][key] = stats["later_by_s"].get(key, 0) + 1
        return new if rule == "new" else old

    digest = hashlib.sha256()
    starts = 0
    start = Twin._start

    def record(self: Twin, s: Any, committed: bool = False) -> None:
        nonlocal starts
        start(self, s, committed)
        starts += 1
        row = f"{self.now!r},{s.job.id},{s.flavor},{s.gang_gpus},{s.cap_level}\n"
        digest.update(row.encode())

    PowerBooks.ramp_clear_at = both  # type: ignore[method-assign]
    Twin._start = record  # type: ignore[method-assign]
    sys.argv = ["cortex", "sim", "--fleet", "cortex-2024", "--days", "30", "--quiet"]
    sys.argv += ["--power-policy", "full", "--json", out]
    with contextlib.suppress(SystemExit):  # the CLI exits when done
        runpy.run_module("cortex", run_name="__main__")
    print(json.dumps({"rule": rule, "starts": starts, "sha256": digest.hexdigest(), **stats}))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("new", "old"):
        sys.exit("usage: ramp_wakes.py new|old OUT.json")
    main(sys.argv[1], sys.argv[2])
