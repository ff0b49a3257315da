"""The Ray executor's blocking calls, off the scheduler's tick: one thread runs them in order.

Creating a detached placement group and named detached actors registers them with the GCS
before `.remote()` returns, and removing them (looking them up by name, killing, removing)
asks the GCS too: 40-90 ms a launch or a teardown on a loaded machine (bench/RESULTS.md
section 28), most of a tick's wall time with Ray in the loop. The executor hands these calls
to this worker and learns their outcome from a Future at its next poll().

One thread, first in first out: a gang's teardown queued after its creation runs after it
(so a gang stopped or killed while it was being created leaves nothing behind), and a
requeued job's new gang is created after its old one's teardown was sent. A hand-written
queue rather than concurrent.futures.ThreadPoolExecutor: that pool's thread is joined at
interpreter exit, so a Ray call that hangs (a head that went away) would hang the service's
exit; this thread is a daemon, and `drop()` forgets what is queued (a lost head)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

log = logging.getLogger(__name__)

_Item = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...]]


class RayWorker:
    def __init__(self, *, inline: bool = False, name: str = "ray-launch") -> None:
        # inline: every call runs in submit() (the old, blocking behaviour): the benchmark's
        # before/after in one run, and a way to rule the thread out when debugging.
        self.inline = inline
        self.name = name
        self._q: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._queued = 0
        # Threads let go of by drop() while a call of theirs still ran: drain() waits for that
        # call too (an abandoned creation undoes itself there, after it returns).
        self._retired: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """fn(*args) on the worker; its result (or exception) in the Future."""
        fut: Future[Any] = Future()
        if self.inline:
            _run(fut, fn, args)
            return fut
        with self._lock:
            self._queued += 1
            self._q.put((fut, fn, args))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, args=(self._q,), name=self.name, daemon=True
                )
                self._thread.start()
        return fut

    def pending(self) -> int:
        """Calls queued or running."""
        return self._queued

    def drain(self, timeout_s: float) -> bool:
        """Wait until what was queued before this call has run, on this thread and on any
        that drop() let go of mid-call (the service's exit, tests); False if it has not by
        then, or was dropped."""
        end = time.monotonic() + timeout_s
        try:
            self.submit(lambda: None).result(timeout=timeout_s)
        except (TimeoutError, CancelledError):
            return False
        with self._lock:
            retired = list(self._retired)
        for t in retired:
            t.join(max(0.0, end - time.monotonic()))
        with self._lock:
            self._retired = [t for t in self._retired if t.is_alive()]
            return not any(t in self._retired for t in retired)

    def drop(self) -> list[_Item]:
        """Cancel what is queued and not yet running (the head is lost: those calls would
        hang or act on a cluster that is gone); a call already running finishes on its own.
        Returns the calls cancelled (the caller redoes the teardowns among them later). The
        next submit() runs on a fresh thread."""
        cancelled: list[_Item] = []
        with self._lock:
            while True:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[0].cancel():
                    cancelled.append(item)
                    self._queued -= 1
            self._q.put(None)  # the old thread ends after its current call
            self._retired = [t for t in self._retired if t.is_alive()]  # bounded without drains
            if self._thread is not None and self._thread.is_alive():
                self._retired.append(self._thread)
            self._q = queue.SimpleQueue()
            self._thread = None
        return cancelled

    def _loop(self, q: queue.SimpleQueue[_Item | None]) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            _run(*item, done=self._done)

    def _done(self) -> None:
        with self._lock:
            self._queued -= 1


def _run(
    fut: Future[Any],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    done: Callable[[], None] = lambda: None,
) -> None:
    # done() runs before the Future is: a caller woken by it (drain()) finds pending() no
    # longer counting the call (counted after, a thread switch in between showed it as 1).
    if not fut.set_running_or_notify_cancel():
        done()
        return
    try:
        result = fn(*args)
    except BaseException as err:  # the caller reads it from the Future
        done()
        fut.set_exception(err)
    else:
        done()
        fut.set_result(result)
