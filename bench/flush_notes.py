"""The node-summary flush of a `cortex sim` run, counted and timed in process (RESULTS.md,
section 74): flushes, the stale notes and noted nodes they read, the distinct nodes among them,
and the CPU seconds (time.process_time) in flush_summaries and in np_owner's reads.

    PYTHONPATH=SRC python bench/flush_notes.py [--count] -- sim --fleet cortex-2026 --days 5 \\
        --load 0.55 --quiet

Prints one JSON line on stderr. `--count` adds the note counts (they cost time: leave it out
for the timings). Works on checkouts whose `_stale` is a list of (job, placement) (before
section 74) and a dict of (job, placement, first) (after).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

from cortex.cli import main as cli
from cortex.scheduler import summaries

COUNT = "--count" in sys.argv
STATS: dict[str, Any] = {
    "flushes": 0,
    "notes": 0,
    "noted_nodes": 0,
    "distinct_nodes": 0,
    "flush_s": 0.0,
    "owner_s": 0.0,
    "owner_reads": 0,
}

_flush = summaries.NodeSummaries.flush_summaries
_owner = summaries.NodeSummaries.np_owner.fget
assert _owner is not None


def _counted_flush(self: summaries.NodeSummaries) -> None:
    stale = self._stale
    if stale:
        STATS["flushes"] += 1
        if COUNT:
            notes = [v[1] for v in (stale.values() if isinstance(stale, dict) else stale)]
            STATS["notes"] += len(notes)
            STATS["noted_nodes"] += sum(map(len, notes))
            STATS["distinct_nodes"] += len({n for p in notes for n, _ in p})
    t = time.process_time()
    _flush(self)
    STATS["flush_s"] += time.process_time() - t


def _timed_owner(self: summaries.NodeSummaries) -> Any:
    t = time.process_time()
    got = _owner(self)
    STATS["owner_s"] += time.process_time() - t
    STATS["owner_reads"] += 1
    return got


summaries.NodeSummaries.flush_summaries = _counted_flush  # type: ignore[method-assign]
summaries.NodeSummaries.np_owner = property(_timed_owner)  # type: ignore[assignment,method-assign]

sys.argv = ["cortex", *sys.argv[sys.argv.index("--") + 1 :]]
t0 = time.process_time()
with contextlib.suppress(SystemExit):
    cli.main()
STATS["run_s"] = time.process_time() - t0
print(
    json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in STATS.items()}),
    file=sys.stderr,
)
