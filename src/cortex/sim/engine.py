"""The twin's event engine: a heap of events ordered by (time, priority, sequence) and the loop
that pops them, one instant at a time. What an event does is the twin's (its handlers); when
an instant is over the twin runs its scheduling cycle (`instant_over`). Split out of
`Twin.run` so that the event mechanics and the model they drive can change apart.
"""

from __future__ import annotations

import gc
import heapq
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Event priorities at one instant: capacity returns before anything asks for it.
REPAIR, FINISH, FAILURE, ARRIVAL, TICK = 0, 1, 2, 3, 4
# Budget changes (weather ticks, cap events) land before arrivals; staggered waves with them.
POWER, STAGGER = 5, 6
JOBFAIL = 7  # a job's failure of its own (sim/failures.py), at FAILURE's priority
POWER_PRIO = 2.5
PROGRESS_EVERY = 20000  # events between two progress callbacks

Event = tuple[float, float, int, int, Any, int]  # (time, priority, sequence, kind, a, b)
# The collector during a run: young objects (events, allocations, reasons) are collected after
# this many allocations rather than CPython's 700, and what exists when the run starts (the
# fleet, the jobs, the indices: most of the heap, alive to the end) is frozen out of the full
# collections, which otherwise walk it again and again (about 5% of a month's CPU). No decision
# depends on when the collector runs.
GC_YOUNG_THRESHOLD = 20000


_gc_lock = threading.Lock()
_gc_runs: list[tuple[tuple[int, ...], bool]] = []  # runs under way: (settings before, froze)


@contextmanager
def gc_for_the_run() -> Iterator[None]:
    """The collector set for a run (above), and restored after it. Runs in several threads at
    once (the settings are the process's): the first one in sets them, the last one out puts
    back what was there before the first."""
    with _gc_lock:
        if not _gc_runs:
            before: tuple[int, ...] = gc.get_threshold()
            freeze = gc.get_freeze_count() == 0  # a caller's own frozen objects stay so
            if freeze:
                gc.freeze()
            gc.set_threshold(max(before[0], GC_YOUNG_THRESHOLD), *before[1:])
            _gc_runs.append((before, freeze))
        else:
            _gc_runs.append(_gc_runs[0])
    try:
        yield
    finally:
        with _gc_lock:
            was, froze = _gc_runs.pop()
            if not _gc_runs:
                gc.set_threshold(*was)
                if froze:
                    gc.unfreeze()


class EventHeap:
    """The pending events. `add` before the run (one heapify), `push` during it."""

    __slots__ = ("heap", "seq")

    def __init__(self) -> None:
        self.heap: list[Event] = []
        self.seq = 0

    def push(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, prio, self.seq, kind, a, b))

    def add(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        self.seq += 1
        self.heap.append((t, prio, self.seq, kind, a, b))

    def ready(self) -> None:
        heapq.heapify(self.heap)

    def run(
        self,
        horizon: float,
        now: float,
        handlers: dict[int, Callable[[Any, int], None]],
        advance: Callable[[float], None],
        instant_over: Callable[[], None],
        on_progress: Callable[[float], None] | None = None,
    ) -> int:
        """Pop and handle every event up to `horizon`: `advance(t)` first when time moves on
        from `now`, `instant_over()` once the last event of an instant is handled. Returns
        how many events were handled."""
        heap = self.heap
        pop = heapq.heappop
        events = 0
        next_report = 0
        while heap and heap[0][0] <= horizon:
            t, _, _, kind, a, b = pop(heap)
            if t > now:
                advance(t)
                now = t
            handlers[kind](a, b)
            events += 1
            if not heap or heap[0][0] > t:
                instant_over()
            if on_progress is not None and events >= next_report:
                on_progress(t)
                next_report = events + PROGRESS_EVERY
        return events
