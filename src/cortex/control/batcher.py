"""Group commit for submissions: request handlers hand validated jobs to one writer thread,
which inserts whatever has queued up in one transaction. Under load this turns hundreds of
commits a second into tens (a PostgreSQL commit waits for a WAL flush; SQLite admits one writer),
and the event loop never blocks on the store. A single submission still commits at once."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future

from cortex.control import store
from cortex.control.db import Sessions
from cortex.control.envcrypt import EnvBox
from cortex.control.schemas import JobOut, SubmitRequest

log = logging.getLogger("cortex.control")
MAX_BATCH = 256


class SubmitBatcher:
    def __init__(
        self,
        sessions: Sessions,
        on_commit: threading.Event | None = None,
        box: EnvBox | None = None,
    ) -> None:
        self.sessions = sessions
        self.box = box  # env values encrypted at rest
        self.on_commit = on_commit
        self.q: queue.Queue[tuple[SubmitRequest, Future[JobOut]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="cortex-submit", daemon=True)
        self._thread.start()

    def submit(self, req: SubmitRequest) -> Future[JobOut]:
        fut: Future[JobOut] = Future()
        self.q.put((req, fut))
        return fut

    def close(self) -> None:
        self.q.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.q.put(None)
                    break
                batch.append(nxt)
            try:
                now = time.time()
                with self.sessions.begin() as s:
                    outs = store.insert_jobs(s, [req for req, _ in batch], now, box=self.box)
            except Exception as err:
                log.exception("submission batch of %d failed", len(batch))
                for _, fut in batch:
                    fut.set_exception(err)
                continue
            for (_, fut), out in zip(batch, outs, strict=True):
                fut.set_result(out)
            if self.on_commit is not None:
                self.on_commit.set()
