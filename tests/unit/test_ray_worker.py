"""The Ray executor's worker thread (executors/ray/worker.py) without Ray: its queue, drop()
on a lost head, and drain() waiting for a call that drop() left running."""

from __future__ import annotations

import threading

from cortex.executors.ray.worker import RayWorker


def test_drain_waits_for_the_call_a_drop_left_running() -> None:
    """CI (stop 30): after a head loss, drain() ran its marker on the fresh thread and returned
    True while the old thread was still in the abandoned creation, before it undid itself."""
    w = RayWorker()
    entered, release = threading.Event(), threading.Event()
    done: list[str] = []

    def held() -> None:
        entered.set()
        assert release.wait(10)
        done.append("undone")  # what an abandoned creation does once Ray returns

    w.submit(held)
    queued = w.submit(done.append, "queued")
    assert entered.wait(10)
    cancelled = w.drop()
    assert [item[0] for item in cancelled] == [queued] and queued.cancelled()
    assert w.drain(0.2) is False  # the dropped thread's call still runs
    release.set()
    assert w.drain(10) is True
    assert done == ["undone"]


def test_drain_after_a_drop_of_an_idle_worker_returns_at_once() -> None:
    w = RayWorker()
    assert w.submit(lambda: 7).result(10) == 7
    assert w.drop() == []
    assert w.drain(10) is True
    assert w.submit(lambda: 8).result(10) == 8  # a fresh thread takes the next call


def test_calls_run_in_order_on_one_thread() -> None:
    w = RayWorker()
    seen: list[tuple[int, str]] = []
    for i in range(20):
        w.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    assert w.drain(10) and w.pending() == 0
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"ray-launch"}


def test_a_call_is_no_longer_pending_when_its_future_is_done() -> None:
    """Before: the count went down after the Future was done, so a caller woken by it (drain()
    in test_calls_run_in_order_on_one_thread) could read pending() == 1 if the worker thread
    was switched out in between. A done-callback runs at that very point, on the worker."""
    w = RayWorker()
    entered, release = threading.Event(), threading.Event()
    w.submit(lambda: (entered.set(), release.wait(10)))
    assert entered.wait(10)  # the worker is busy: the calls below are queued, not yet done
    seen: list[int] = []
    last = threading.Event()
    for fn in (lambda: 1, lambda: 1 / 0):  # a result and an exception
        w.submit(fn).add_done_callback(lambda _f: seen.append(w.pending()))
    w.submit(lambda: None).add_done_callback(lambda _f: last.set())
    release.set()
    assert last.wait(10)  # nothing else submitted meanwhile: the counts are the calls above
    assert seen == [2, 1]  # the 2nd call and the last were still queued when the 1st was done
