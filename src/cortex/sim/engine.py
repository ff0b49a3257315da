"""The twin's event engine: a heap of events ordered by (time, priority, sequence) and the loop
that pops them, one instant at a time. What an event does is the twin's (its handlers); when
an instant is over the twin runs its scheduling cycle (`instant_over`). Split out of
`Twin.run` so that the event mechanics and the model they drive can change apart.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cortex.gcscope import collector_scope

# Event priorities at one instant: capacity returns before anything asks for it.
REPAIR, FINISH, FAILURE, ARRIVAL, TICK = 0, 1, 2, 3, 4
# Budget changes (weather ticks, cap events) land before arrivals; staggered waves with them.
POWER, STAGGER = 5, 6
JOBFAIL = 7  # a job's failure of its own (sim/failures.py), at FAILURE's priority
RETRY = 8  # a failed job's retry backoff is over (drive/runs.py judge_exit), at ARRIVAL's
POWER_PRIO = 2.5
PROGRESS_EVERY = 20000  # events between two progress callbacks

Event = tuple[float, float, int, int, Any, int]  # (time, priority, sequence, kind, a, b)


@contextmanager
def gc_for_the_run(prepare: Callable[[], None] | None = None) -> Iterator[None]:
    """The collector set for a run (cortex/gcscope.py: young objects collected rarely, the
    heap the run starts with frozen), restored after it. The heap built so far (the fleet, the
    jobs, the twin) is frozen before `prepare` (the twin's seeding: ~90k events) runs, and what
    that builds is frozen with it before the run."""
    with collector_scope(freeze=True):
        if prepare is not None:
            prepare()
        with collector_scope(freeze=True):
            yield


class EventHeap:
    """The pending events. `add` before the run (one sort), `push` during it.

    The events added before the run (every arrival, failure and power tick of a month: ~90k)
    wait in one sorted list; only those pushed during the run (completions, repairs) go on
    the heap. The loop takes the smaller of the two heads by the same (time, priority,
    sequence) key, so events come out in the order one heap of them all would give, and each
    pop sifts through a heap of thousands rather than of every event still to come (a pop
    from the month's full heap cost ~1.5 us)."""

    __slots__ = ("_next", "_seeded", "heap", "seq")

    def __init__(self) -> None:
        self.heap: list[Event] = []  # pushed during the run
        self.seq = 0
        self._seeded: list[Event] = []  # added before it; sorted by `ready`
        self._next = 0  # the first of `_seeded` not yet handled

    def push(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, prio, self.seq, kind, a, b))

    def add(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        self.seq += 1
        self._seeded.append((t, prio, self.seq, kind, a, b))

    def ready(self) -> None:
        # Sequences are unique: the sort never compares the payloads. Arrivals, failures and
        # ticks each come in time order, so the sort merges a few runs.
        self._seeded = sorted(self._seeded[self._next :])
        self._next = 0

    def pending(self) -> list[Event]:
        """The events not handled yet, in the order they would run."""
        return sorted(self._seeded[self._next :] + self.heap)

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
        seeded = self._seeded
        i = self._next
        n = len(seeded)
        pop = heapq.heappop
        events = 0
        next_report = 0
        while True:
            if heap and (i >= n or heap[0] < seeded[i]):
                ev = heap[0]
                if ev[0] > horizon:
                    break
                pop(heap)
            elif i < n:
                ev = seeded[i]
                if ev[0] > horizon:
                    break
                i += 1
            else:
                break
            t, _, _, kind, a, b = ev
            if t > now:
                advance(t)
                now = t
            handlers[kind](a, b)
            events += 1
            if (not heap or heap[0][0] > t) and (i >= n or seeded[i][0] > t):
                instant_over()
            if on_progress is not None and events >= next_report:
                on_progress(t)
                next_report = events + PROGRESS_EVERY
        self._next = i
        return events
