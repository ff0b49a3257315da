"""The garbage collector while a bulk step runs: a twin's run (sim/engine.py) or the making of
a workload's jobs (workload/synthetic.py). Young objects are collected after this many
allocations rather than CPython's 700; a run also freezes what exists when it starts (the
fleet, the jobs, the indices: most of the heap, alive to the end) out of the full collections,
which otherwise walk it again and again (about 5% of a month's CPU; the 79k jobs of a month's
workload cost ~0.09 s of collections more to make). No decision depends on when the collector
runs. Bottom layer: anything may import it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GC_YOUNG_THRESHOLD = 20000

_lock = threading.Lock()
_scopes: list[tuple[tuple[int, ...], bool]] = []  # scopes under way: (settings before, froze)


@contextmanager
def collector_scope(freeze: bool) -> Iterator[None]:
    """The collector set for a bulk step (above), and restored after it. Runs in several
    threads at once (the settings are the process's): the first one in sets them (and
    freezes only if it asks to), the last one out puts back what was there before the
    first."""
    with _lock:
        if not _scopes:
            before: tuple[int, ...] = gc.get_threshold()
            # a caller's own frozen objects stay so
            froze = freeze and gc.get_freeze_count() == 0
            if froze:
                gc.freeze()
            gc.set_threshold(max(before[0], GC_YOUNG_THRESHOLD), *before[1:])
            _scopes.append((before, froze))
        else:
            _scopes.append(_scopes[0])
    try:
        yield
    finally:
        with _lock:
            was, froze = _scopes.pop()
            if not _scopes:
                gc.set_threshold(*was)
                if froze:
                    gc.unfreeze()
