"""The twin's event engine: a heap of events ordered by (time, priority, sequence) and the loop
that pops them, one instant at a time. What an event does is the twin's (its handlers); when
an instant is over the twin runs its scheduling cycle (`instant_over`). Split out of
`Twin.run` so that the event mechanics and the model they drive can change apart.

An entry may be superseded before it pops (a run's finish, once a cap move has pushed its new
end or the run has stopped): the twin names, per kind, the test of whether an entry still
stands, and the loop drops one that does not as if it had never been pushed: the clock does
not stop for it, it is not counted, and it closes no instant of its own. An entry that need
not be on the heap yet (a run's later end, behind its earlier entry there) may be parked: it
takes its sequence when parked, and goes on the heap when its owner unparks it.
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

    __slots__ = ("_next", "_seeded", "dropped", "heap", "parked", "seq")

    def __init__(self) -> None:
        self.heap: list[Event] = []  # pushed during the run
        self.seq = 0
        self._seeded: list[Event] = []  # added before it; sorted by `ready`
        self._next = 0  # the first of `_seeded` not yet handled
        self.dropped = 0  # superseded entries popped and dropped (`run`'s `stands`)
        self.parked: dict[object, Event] = {}  # by owner: off the heap until unparked

    def push(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, prio, self.seq, kind, a, b))

    def add(self, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        self.seq += 1
        self._seeded.append((t, prio, self.seq, kind, a, b))

    def park(self, owner: object, t: float, prio: float, kind: int, a: object, b: int = 0) -> None:
        """An entry kept off the heap until `unpark(owner)`, which must come before its time
        (the owner's entry on the heap no later than it pops first and unparks it). Its
        sequence is taken now: it comes out where a push now would have put it. A second park
        of the owner replaces the first."""
        self.seq += 1
        self.parked[owner] = (t, prio, self.seq, kind, a, b)

    def unpark(self, owner: object) -> float | None:
        """The owner's parked entry on the heap; its time, or None where none was parked."""
        ev = self.parked.pop(owner, None)
        if ev is None:
            return None
        heapq.heappush(self.heap, ev)
        return ev[0]

    def ready(self) -> None:
        # Sequences are unique: the sort never compares the payloads. Arrivals, failures and
        # ticks each come in time order, so the sort merges a few runs.
        self._seeded = sorted(self._seeded[self._next :])
        self._next = 0

    def pending(self) -> list[Event]:
        """The events not handled yet, in the order they would run."""
        return sorted(self._seeded[self._next :] + self.heap + list(self.parked.values()))

    def run(
        self,
        horizon: float,
        now: float,
        handlers: dict[int, Callable[[Any, int], None]],
        advance: Callable[[float], None],
        instant_over: Callable[[], None],
        on_progress: Callable[[float], None] | None = None,
        stands: dict[int, Callable[[Any, int], bool]] | None = None,
    ) -> int:
        """Pop and handle every event up to `horizon`: `advance(t)` first when time moves on
        from `now`, `instant_over()` once the last event of an instant is handled. Returns
        how many events were handled. `stands[kind](a, b)`, where given, says whether an entry
        of that kind pushed during the run still stands when it pops (those added before it
        are taken to); one that does not is dropped unhandled and uncounted (`dropped` counts
        them), without moving the clock, and an instant whose last entry it was is closed all
        the same, if it handled an event. The test may push (the twin's unparks a parked
        end): the loop reads the heap's front again after it. A kind given a test has its
        handler called only for entries that stand, so the handler need not test again; an
        entry of that kind `add`ed before the run is not tested (the twin adds no finish)."""
        heap = self.heap
        seeded = self._seeded
        i = self._next
        n = len(seeded)
        pop = heapq.heappop
        # Indexed by kind: a list item costs less than a dict's lookup at every pop.
        tests: list[Callable[[Any, int], bool] | None] = [None] * (max(handlers, default=0) + 1)
        for k, stand in (stands or {}).items():
            tests[k] = stand
        events = 0
        dropped = 0
        is_open = False  # an event of the instant at t has been handled, and it is not over
        next_report = 0
        while True:
            if heap and (i >= n or heap[0] < seeded[i]):
                ev = heap[0]
                if ev[0] > horizon:
                    break
                pop(heap)
                # Only pushed entries are asked: the seeded ones (most events) pay nothing.
                test = tests[ev[3]]
                if test is not None and not test(ev[4], ev[5]):
                    dropped += 1
                    t = ev[0]
                    if is_open and (not heap or heap[0][0] > t) and (i >= n or seeded[i][0] > t):
                        instant_over()
                        is_open = False
                    continue
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
                is_open = False
            else:
                is_open = True  # (an instant is over before time moves on)
            if on_progress is not None and events >= next_report:
                on_progress(t)
                next_report = events + PROGRESS_EVERY
        self._next = i
        self.dropped += dropped
        return events
