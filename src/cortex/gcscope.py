"""The garbage collector while a bulk step runs: a twin's run (sim/engine.py) or the making of
a workload's jobs (workload/synthetic.py). Young objects are collected after this many
allocations rather than CPython's 700; a run also freezes what exists when it starts (the
fleet, the jobs, the indices: most of the heap, alive to the end) out of the full collections,
which otherwise walk it again and again (about 5% of a month's CPU; the 79k jobs of a month's
workload cost ~0.09 s of collections more to make). No decision depends on when the collector
runs. Bottom layer: anything may import it."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# 200,000, not 20,000: a month's run allocates far more containers that die young than it
# keeps, and a young collection walks only the survivors of its window; ten times fewer of
# them cut 10 days' instructions by 74 M (0.3%) with the same peak memory (bench/RESULTS.md
# section 127).
GC_YOUNG_THRESHOLD = 200000

_lock = threading.Lock()
_depth = [0]  # scopes under way (in any thread)
# While any scope is under way: the settings before the first one in, whether scopes may
# freeze (the caller had frozen nothing of its own), and whether one did.
_outer: dict[str, Any] = {}


@contextmanager
def collector_scope(freeze: bool) -> Iterator[None]:
    """The collector set for a bulk step (above), and restored after it. Scopes nest and run in
    several threads at once (the settings are the process's): the first one in sets the
    threshold, and the last one out puts back what was there before the first. A scope that
    freezes moves the heap as it is then out of the collections, adding to what scopes under
    way froze before it; all of it thaws when the last scope is out. A caller's own frozen
    objects stay as they are: if anything was frozen before the first scope, none freezes.

    Why freezes add up and nothing thaws early: a month's run builds ~0.5 M long-lived
    objects (the fleet, the jobs, the twin's indices) and then seeds ~90k events; a young
    generation collected while they are not yet frozen walks all of them (a ~45 ms collection
    during the seeding; another when a scope's exit put back CPython's threshold between the
    build and the run). So `cortex sim` holds one scope from the workload to the report, and
    the run freezes the built heap before it seeds, then the seeded events."""
    with _lock:
        if _depth[0] == 0:
            before = gc.get_threshold()
            _outer.update(before=before, ours=gc.get_freeze_count() == 0, froze=False)
            gc.set_threshold(max(before[0], GC_YOUNG_THRESHOLD), *before[1:])
        _depth[0] += 1
        if freeze and _outer["ours"]:
            gc.freeze()
            _outer["froze"] = True
    try:
        yield
    finally:
        with _lock:
            _depth[0] -= 1
            if _depth[0] == 0:
                gc.set_threshold(*_outer["before"])
                if _outer["froze"]:
                    gc.unfreeze()
                _outer.clear()  # nothing of a scope outlives it (a caller may freeze next)


# Set by a command whose process ends holding a large heap it no longer needs (`cortex sim`:
# a month's jobs, books and indices, ~200 MiB): the entry point then ends the process without
# the interpreter's teardown, which frees every object one by one (~0.15 s of CPU at the end
# of a month's run, bench/RESULTS.md section 115). Acted on only by cortex.cli.main.main, the
# console script's target, which clears it first; an in-process caller of `app` (a test's
# CliRunner) never acts on it.
_heap_left = [False]


def leave_heap_to_os(left: bool = True) -> None:
    """This process's heap need not be freed object by object: the OS takes it back whole."""
    _heap_left[0] = left


def end_process_now() -> None:
    """End the process with status 0 without the teardown (above), if asked and safe: the exit
    handlers run (atexit, weakref finalizers) and the standard streams are flushed first, as
    the interpreter's own exit would; nothing is skipped but the freeing. Returns (and the
    caller exits as usual, or goes on) when not asked, while another thread runs (the usual
    exit joins it), when the standard streams are not the process's own (a caller running
    commands in its process with their output captured wants control back) or when a stream
    cannot be flushed (the usual exit reports it)."""
    if not _heap_left[0] or threading.active_count() > 1:
        return
    if sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        return
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(0)
