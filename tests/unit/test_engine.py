"""sim/engine.py: events come out by (time, priority, sequence); time advances before the
first event of an instant; the instant is closed once, after its last event; nothing past the
horizon runs."""

from __future__ import annotations

from cortex.sim.engine import EventHeap


def test_events_run_in_order_one_instant_at_a_time() -> None:
    log: list[tuple] = []
    eng = EventHeap()
    eng.add(5.0, 1, 0, "b")  # same time, lower priority first: "a" (prio 0) before "b"
    eng.add(5.0, 0, 0, "a")
    eng.add(5.0, 1, 0, "c")  # same time and priority: in the order added, after "b"
    eng.add(2.0, 3, 0, "first")
    eng.add(9.0, 0, 0, "late")  # past the horizon of 8: never handled
    eng.ready()

    def handle(a: object, b: int) -> None:
        log.append(("event", a))
        if a == "a":
            eng.push(5.0, 2, 0, "pushed")  # same instant, after "b" and "c" (priority 2)
            eng.push(7.0, 0, 0, "next")

    n = eng.run(
        8.0,
        0.0,
        {0: handle},
        lambda t: log.append(("advance", t)),
        lambda: log.append(("instant over",)),
    )
    assert log == [
        ("advance", 2.0),
        ("event", "first"),
        ("instant over",),
        ("advance", 5.0),
        ("event", "a"),
        ("event", "b"),
        ("event", "c"),
        ("event", "pushed"),
        ("instant over",),
        ("advance", 7.0),
        ("event", "next"),
        ("instant over",),
    ]
    assert n == 6
    assert [e[4] for e in eng.heap] == ["late"]


def test_progress_is_reported_at_the_first_event() -> None:
    eng = EventHeap()
    for t in (1.0, 2.0, 3.0):
        eng.add(t, 0, 0, None)
    eng.ready()
    seen: list[float] = []
    eng.run(10.0, 0.0, {0: lambda a, b: None}, lambda t: None, lambda: None, seen.append)
    assert seen == [1.0]  # then every PROGRESS_EVERY (20,000) events
