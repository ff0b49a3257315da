"""Group commit for submissions: request handlers hand validated submissions to one writer
thread, which inserts whatever has queued up in one transaction. Under load this turns
hundreds of commits a second into tens (a PostgreSQL commit waits for a WAL flush; SQLite admits
one writer), and the event loop never blocks on the store. A single submission still commits
at once.

A submission is a group of jobs (a job file) stored all or nothing. If a shared batch fails,
each group is retried in a transaction of its own, so one team's failing submission never fails
another's. Idempotency keys are checked and recorded in the same transaction as the jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store, store_gates
from cortex.control.clock import SYSTEM, Clock
from cortex.control.db import Sessions
from cortex.control.envcrypt import EnvBox
from cortex.control.schemas import JobOut, SubmitRequest

log = logging.getLogger("cortex.control")
MAX_BATCH = 256
LINGER_S = 0.002  # how long a batch under load waits for company (see _run)
# A retry comes seconds or minutes after the first try; a week covers a client that retries
# after a weekend, and bounds the table.
IDEMPOTENCY_KEEP_S = 7 * 86400.0
PRUNE_EVERY_S = 3600.0


class IdempotencyConflictError(Exception):
    """The key was used before with a different body."""


@dataclass(frozen=True, slots=True)
class IdemKey:
    team: str
    key: str
    request_hash: str


@dataclass(slots=True)
class Submitted:
    jobs: list[JobOut]
    replayed: bool = False


@dataclass(slots=True)
class _Item:
    reqs: list[SubmitRequest]
    idem: IdemKey | None
    fut: Future[Submitted] = field(default_factory=Future)
    # From submit_async: answered on its event loop, one wake-up per batch (see _resolve).
    aloop: asyncio.AbstractEventLoop | None = None
    afut: asyncio.Future[Submitted] | None = None
    resolved: bool = False


class SubmitBatcher:
    def __init__(
        self,
        sessions: Sessions,
        on_commit: threading.Event | None = None,
        box: EnvBox | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.sessions = sessions
        self.clock = clock  # stamps submissions (the service's, as the loop's)
        self.box = box  # env values encrypted at rest
        self.on_commit = on_commit
        self.q: queue.Queue[_Item | None] = queue.Queue()
        self._next_prune = 0.0
        self._last_batch = 0
        self._thread = threading.Thread(target=self._run, name="cortex-submit", daemon=True)
        self._thread.start()

    def submit(self, reqs: list[SubmitRequest], idem: IdemKey | None = None) -> Future[Submitted]:
        item = _Item(list(reqs), idem)
        self.q.put(item)
        return item.fut

    def submit_async(
        self, reqs: list[SubmitRequest], idem: IdemKey | None = None
    ) -> asyncio.Future[Submitted]:
        """submit() for a caller on an event loop. A concurrent Future wrapped for asyncio wakes
        the loop once per submission (a write to its self-pipe, a read, a callback each); the
        answers of one batch reach the loop in one wake-up instead."""
        loop = asyncio.get_running_loop()
        item = _Item(list(reqs), idem, aloop=loop, afut=loop.create_future())
        self.q.put(item)
        assert item.afut is not None
        return item.afut

    def close(self) -> None:
        self.q.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            batch = [item]
            njobs = len(item.reqs)
            # Under load (the last batch had company), wait a moment for more: a batch costs
            # about a millisecond of CPU whatever its size (transaction, statements, commit,
            # the tick it wakes), so larger batches cost less per job. An idle service commits
            # a lone submission at once.
            until = time.monotonic() + (LINGER_S if self._last_batch > 1 else 0.0)
            while njobs < MAX_BATCH:
                try:
                    nxt = self.q.get_nowait()
                except queue.Empty:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        nxt = self.q.get(timeout=left)
                    except queue.Empty:
                        break
                if nxt is None:
                    self.q.put(None)
                    break
                batch.append(nxt)
                njobs += len(nxt.reqs)
            self._last_batch = len(batch)
            self._commit(batch)

    def _commit(self, batch: list[_Item]) -> None:
        if self.clock.monotonic() >= self._next_prune:  # before the batch: answers come after
            self._next_prune = self.clock.monotonic() + PRUNE_EVERY_S
            self._prune()
        try:
            with self.sessions.begin() as s:
                results = _insert(s, batch, self.clock.time(), self.box)
        except Exception:
            if len(batch) == 1:
                log.exception("submission of %d jobs failed", len(batch[0].reqs))
                self._resolve(batch, [None])
                return
            # One group's failure must not fail the others: each alone, in its own transaction.
            log.warning("a batch of %d submissions failed; retrying each alone", len(batch))
            for one in batch:
                self._commit([one])
            return
        self._resolve(batch, results)
        if self.on_commit is not None:
            self.on_commit.set()

    def _prune(self) -> None:
        try:
            with self.sessions.begin() as s:
                store.prune_idempotency_keys(s, self.clock.time() - IDEMPOTENCY_KEEP_S)
        except Exception:
            log.exception("pruning idempotency keys failed")

    @staticmethod
    def _resolve(batch: list[_Item], results: list[Submitted | Exception | None]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Submitted | Exception]]] = {}
        for item, res in zip(batch, results, strict=True):
            if item.resolved:
                continue
            item.resolved = True
            answer = res if res is not None else RuntimeError("the store refused the submission")
            if item.aloop is not None:
                by_loop.setdefault(item.aloop, []).append((item, answer))
            elif isinstance(answer, Submitted):
                item.fut.set_result(answer)
            else:
                item.fut.set_exception(answer)
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: no one waits
                loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[_Item, Submitted | Exception]]) -> None:
    """On the submitters' event loop: hand each its answer (unless it stopped waiting)."""
    for item, answer in answers:
        fut = item.afut
        if fut is None or fut.done():
            continue
        if isinstance(answer, Submitted):
            fut.set_result(answer)
        else:
            fut.set_exception(answer)


def _insert(
    s: Session, batch: list[_Item], at: float, box: EnvBox | None = None
) -> list[Submitted | Exception | None]:
    """Insert the batch's new groups; replay or refuse the ones whose key was seen."""
    seen = store.idempotency_keys(s, {(i.idem.team, i.idem.key) for i in batch if i.idem})
    results: list[Submitted | Exception | None] = [None] * len(batch)
    fresh: list[int] = []
    first_of: dict[tuple[str, str], int] = {}  # a key twice in one batch: the first inserts
    for n, item in enumerate(batch):
        if item.idem is None:
            fresh.append(n)
            continue
        k = (item.idem.team, item.idem.key)
        if k in seen or k in first_of:
            continue
        first_of[k] = n
        fresh.append(n)
    new_reqs = [r for n in fresh for r in batch[n].reqs]
    outs = store.insert_jobs(s, new_reqs, at, box=box) if new_reqs else []
    store_gates.insert_gates(s, new_reqs, outs)
    pos = 0
    for n in fresh:
        item = batch[n]
        mine = outs[pos : pos + len(item.reqs)]
        pos += len(item.reqs)
        results[n] = Submitted(mine)
        if item.idem is not None:
            s.add(
                m.IdempotencyKey(
                    team=item.idem.team,
                    key=item.idem.key,
                    request_hash=item.idem.request_hash,
                    job_ids=[j.id for j in mine],
                    created_at=at,
                )
            )
    for n, item in enumerate(batch):
        if results[n] is not None or item.idem is None:
            continue
        k = (item.idem.team, item.idem.key)
        if k in seen:
            prior_hash, ids = seen[k].request_hash, list(seen[k].job_ids)
        else:
            first = batch[first_of[k]]
            assert first.idem is not None
            prior_hash = first.idem.request_hash
            ids = [j.id for j in results[first_of[k]].jobs]  # type: ignore[union-attr]
        if prior_hash != item.idem.request_hash:
            results[n] = IdempotencyConflictError(item.idem.key)
        else:
            results[n] = Submitted(store.job_outs(s, ids), replayed=True)
    return results
