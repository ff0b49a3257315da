"""Burn-in as a diagnostic run: a node whose drain ends (its hold, `return_at`, is over) runs a
short diagnostic job pinned to it, and returns to service only if that job exits 0 within
`burn_in_timeout_s`. A failure keeps the node drained (until an admin undrains it) with a
strike and an event naming the reason. Off (`burn_in` false): the node returns when its hold
ends, as before (control/node_health.py). A mixin of `cortex.control.loop.SchedulerLoop`.

The run is a job in all but the queue: it goes through the same executor interface and the
same sandbox (the team-to-user mapping's `*` user, the job environment without the service's
CORTEX_* settings or secrets), and has the same crash safety as a job's attempt:
- its row (`burn_ins`, control/models.py) commits before the launch, the handle after it;
- the executor names it job 0 (no job has id 0), attempt = the row's id, so an attempt is
  launched at most once (the local executor creates its run dir exclusively);
- at a restart (`_recover_burn_ins`, from recovery.py) it is adopted, whether its runner lives
  or left a verdict while the service was down, or else marked lost, what is left of it killed,
  and a new run (a new row and attempt) starts at the next tick. A run the store does not hold
  is killed by recovery as any stray run is.
The diagnostic is `python -m cortex.training.burnin` unless `burn_in_command` names another
(e.g. NVIDIA DCGM's `dcgmi diag`). It runs on the node's devices while the node is out of
service; it starts only once the node is empty and out (`_drained_out`) and not lost."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import cortex
from cortex.control import models as m
from cortex.control import store
from cortex.control import store_health as sh
from cortex.control.node_health import NodeHealth

if TYPE_CHECKING:
    from cortex.control.db import Sessions
    from cortex.control.mirror import Mirror
    from cortex.control.settings import Settings

log = logging.getLogger("cortex.control")

BURN_IN_JOB_ID = 0  # the executor's job id for burn-in runs: job ids start at 1
ACTIVE = ("launching", "running")
KIND_BURN_IN = "burn-in failed"
STDERR_TAIL_BYTES = 4096  # read from the end of a failed run's stderr, for the reason


@dataclass
class BurnRun:
    node: str
    deadline: float
    stopping: str | None = None


def command(settings: Settings) -> list[str]:
    if settings.burn_in_command:
        return shlex.split(settings.burn_in_command)
    return [sys.executable, "-m", "cortex.training.burnin", "--seconds",
            repr(settings.burn_in_check_s)]  # fmt: skip


def last_line(path: Path) -> str:
    """The last non-empty line of a log, printable characters only, at most 200."""
    try:  # not through a link the diagnostic's user might have planted
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        size = os.fstat(fd).st_size
        tail = os.pread(fd, STDERR_TAIL_BYTES, max(0, size - STDERR_TAIL_BYTES))
    except OSError:
        return ""
    finally:
        os.close(fd)
    text = tail.decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "".join(c for c in lines[-1] if c.isprintable())[:200] if lines else ""


class BurnInMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    settings: Settings
    sessions: Sessions
    executor: Any
    mirror: Mirror
    health: NodeHealth
    node_names: list[str]
    nodes_down: set[int]
    uses_gpus: bool
    launch_spec: Any
    tick_now: float
    _drained_out: set[int]

    if TYPE_CHECKING:  # HealthMixin's, FleetMixin's and RecoveryMixin's

        def _index(self) -> dict[str, int]: ...
        def _nodes_of(self, devices: list[int]) -> tuple[tuple[str, tuple[int, ...]], ...]: ...
        def _adopt(self, handle: dict[str, Any] | None) -> bool: ...
        def _kill_handle(self, handle: dict[str, Any] | None) -> None: ...
        def _find_run(self, job_id: int, attempt: int) -> Any: ...

    def _init_burn_in(self) -> None:
        self._burn_runs: dict[int, BurnRun] = {}  # active runs by id
        self._burn_launch: list[tuple[int, Any]] = []  # (id, spec): to launch after the commit
        self._burn_stop: list[int] = []  # ids to stop after the commit
        self._burn_unknown: set[int] = set()  # asked to stop, unknown to the executor
        self._burn_forgot: list[tuple[int, BurnRun]] = []  # ended by this tick: back if it fails

    # ---- in the tick's transaction ----------------------------------------------------------
    def _holds_ended(self, s: Session, due: list[str], now: float) -> None:
        """Drained nodes whose hold is over: back at once, or through a burn-in."""
        h = self.health
        self._forget_failed_tick()
        busy = {r.node for r in self._burn_runs.values()}
        if not self.settings.burn_in:
            # A run adopted at a restart (burn-in was on before it) keeps its node out until
            # its verdict: the diagnostic still runs on the node's devices.
            for name in due:
                if name not in busy:
                    h.returned(s, name, now)
        else:
            index = self._index()
            for name in due:
                n = index.get(name)
                if name in busy or n is None or n not in self._drained_out or n in self.nodes_down:
                    continue  # running one, not in this fleet, still draining, or lost
                self._start_burn_in(s, name, n, now)
        self._burn_forgotten(s, now)
        for rid, run in list(self._burn_runs.items()):
            if run.stopping is not None:
                continue
            why = "timeout" if now >= run.deadline else None
            if run.node not in h.drains:
                why = "undrained"  # an admin returned the node meanwhile
            if why is None:
                continue
            row = s.get(m.BurnIn, rid)
            if row is None or row.state not in ACTIVE:  # a rolled-back tick's: never launched
                del self._burn_runs[rid]
                continue
            run.stopping = row.stopping = why
            self._burn_stop.append(rid)

    def _forget_failed_tick(self) -> None:
        """What the last tick queued and did not act on: it failed before its commit, so the
        rows it wrote were rolled back (recovery, when the service wires it, also resets all)."""
        for rid, _ in self._burn_launch:
            self._burn_runs.pop(rid, None)
        for rid in self._burn_stop:
            if rid in self._burn_runs:
                self._burn_runs[rid].stopping = None
        for rid, run in self._burn_forgot:  # its end was rolled back: end it again
            self._burn_runs[rid] = run
            self._burn_unknown.add(rid)
        self._burn_launch, self._burn_stop, self._burn_forgot = [], [], []

    def _start_burn_in(self, s: Session, name: str, n: int, now: float) -> None:
        timeout_s = self.settings.burn_in_timeout_s
        row = m.BurnIn(node=name, state="launching", started_at=now, deadline=now + timeout_s,
                       detail="")  # fmt: skip
        s.add(row)
        s.flush()  # its id names the run
        devices = list(self.mirror.node_devices[n])
        src = str(Path(cortex.__file__).resolve().parent.parent)
        spec = self.launch_spec(
            job_id=BURN_IN_JOB_ID,
            attempt=row.id,
            command=command(self.settings),
            env={"PYTHONPATH": src},  # the service's own package, wherever it is installed
            working_dir=None,
            devices=devices,
            nprocs=1,
            uses_gpus=self.uses_gpus,
            checkpoint_dir=None,
            team=None,  # run_as's `*` user: a job's sandbox, never the service's own
            nodes=self._nodes_of(devices),
        )
        self._burn_runs[row.id] = BurnRun(name, row.deadline)
        self._burn_launch.append((row.id, spec))
        msg = f"node {name}: burn-in {row.id} started (time limit {timeout_s:g} s)"
        store.event(s, "node", msg, at=now)

    def _burn_in_exits(self, s: Session, exits: list[Any], now: float) -> list[Any]:
        """Judge the burn-in runs among `exits`; return the jobs' exits."""
        jobs = []
        for e in exits:
            if e.job_id != BURN_IN_JOB_ID:
                jobs.append(e)
                continue
            row = s.get(m.BurnIn, e.attempt)
            if row is None or row.state not in ACTIVE:
                log.info("stale burn-in exit %s", e)
                continue
            self._burn_runs.pop(row.id, None)
            row.ended_at, row.exit_code = now, e.exit_code
            if row.stopping is not None:
                self._burn_stopped(s, row, now, "")
            elif e.exit_code == 0 and str(e.outcome) == "completed":
                self._burn_end(s, row, "passed", f"passed in {now - row.started_at:.1f} s", now)
                drain = self.health.drains.get(row.node)
                if drain is not None and drain.drained_at <= row.started_at:  # not a newer one
                    self.health.returned(s, row.node, now)
            else:
                why = last_line(Path(self.executor.log_paths(BURN_IN_JOB_ID, row.id)[1]))
                code = "a signal" if e.exit_code is None else f"exit {e.exit_code}"
                self._burn_failed(s, row, f"{code}: {why or e.detail}", now)
        return jobs

    def _burn_stopped(self, s: Session, row: m.BurnIn, now: float, note: str) -> None:
        """The verdict of a run asked to stop (`row.stopping`), `note` added to the reason."""
        if row.stopping == "undrained":
            self._burn_end(s, row, "cancelled", f"cancelled: the node was undrained{note}", now)
        else:  # "timeout"
            limit = row.deadline - row.started_at
            self._burn_failed(s, row, f"no verdict within its {limit:g} s limit{note}", now)

    def _burn_forgotten(self, s: Session, now: float) -> None:
        """Runs asked to stop that the executor did not know (its terminate found nothing to
        stop): no exit will come, so the stop ends them now, as their exit would have. One poll
        after the terminate first: an executor whose run had just ended reports it there."""
        unknown, self._burn_unknown = self._burn_unknown, set()
        for rid in sorted(unknown):
            run = self._burn_runs.pop(rid, None)
            if run is None:  # its exit came after all
                continue
            self._burn_forgot.append((rid, run))
            row = s.get(m.BurnIn, rid)
            if row is None or row.state not in ACTIVE or row.stopping is None:
                continue
            row.ended_at = now
            self._burn_stopped(s, row, now, " (the executor no longer knows the run)")

    def _burn_end(self, s: Session, row: m.BurnIn, state: str, detail: str, now: float) -> None:
        row.state, row.detail = state, detail[:500]
        store.event(s, "node", f"node {row.node}: burn-in {row.id} {detail}"[:1000], at=now)

    def _burn_failed(self, s: Session, row: m.BurnIn, detail: str, now: float) -> None:
        """The node stays out until an admin undrains it, with a strike on its record (the
        strike rule's count, for when it comes back)."""
        self._burn_end(s, row, "failed", f"failed: {detail}", now)
        h = self.health
        sh.add_node_failure(
            s, m.NodeFailure(node=row.node, at=now, strike=True, spent=False, detail=KIND_BURN_IN)
        )
        h.strikes.recent.setdefault(row.node, deque()).append(now)
        if row.node in h.drains:
            h.drain(s, row.node, f"burn-in failed: {detail}", "burn-in", now, None)

    # ---- after the commit ------------------------------------------------------------------
    def _burn_in_act(self) -> None:
        """Stop the runs asked to stop; launch the new ones, then store their handles (or their
        launch failures) in one commit."""
        stops, self._burn_stop, self._burn_forgot = self._burn_stop, [], []
        for rid in stops:
            self._stop_run(rid)
        launches, self._burn_launch = self._burn_launch, []
        if not launches:
            return
        with self.sessions() as s:  # only rows committed (a failed tick's were rolled back)
            launches = [(rid, spec) for rid, spec in launches if _unlaunched(s.get(m.BurnIn, rid))]
        done: list[tuple[int, dict[str, Any] | None, str]] = []
        for rid, spec in launches:
            try:
                done.append((rid, self.executor.launch(spec).to_dict(), ""))
            except Exception as err:
                log.exception("launch of burn-in %s failed", rid)
                done.append((rid, None, f"launch failed: {err}"))
        now = self.tick_now
        with self.sessions.begin() as s:
            for rid, handle, error in done:
                row = s.get(m.BurnIn, rid)
                if row is None or row.state not in ACTIVE:
                    continue
                if handle is not None:
                    row.state, row.handle = "running", handle
                else:
                    self._burn_runs.pop(rid, None)
                    row.ended_at = now
                    self._burn_failed(s, row, error, now)

    def _stop_run(self, rid: int) -> None:
        try:
            known = self.executor.terminate(BURN_IN_JOB_ID, rid, "cancel")
        except Exception:
            log.exception("stopping burn-in %s failed", rid)
            return
        if known is False:  # nothing to stop under this executor (None: it does not say)
            log.warning("burn-in %s: the executor does not know the run; it ends", rid)
            self._burn_unknown.add(rid)

    # ---- recovery -------------------------------------------------------------------------
    def _recover_burn_ins(self, s: Session, live: dict[tuple[int, int], Any], now: float) -> None:
        """Adopt the active runs (their handle, or the run dir a launch left before its handle
        was stored); the others are lost: killed if anything is left, and run anew."""
        self._init_burn_in()
        rows = s.scalars(select(m.BurnIn).where(m.BurnIn.state.in_(ACTIVE))).all()
        for row in rows:
            key = (BURN_IN_JOB_ID, row.id)
            if row.handle is None:
                found = live.get(key) or self._find_run(BURN_IN_JOB_ID, row.id)
                if found is not None:
                    row.handle = found.to_dict()
            live.pop(key, None)
            if self._adopt(row.handle):
                row.state = "running"
                self._burn_runs[row.id] = BurnRun(row.node, row.deadline, row.stopping)
                if row.stopping is not None:  # asked before the restart (committed): again
                    self._stop_run(row.id)
                msg = f"node {row.node}: burn-in {row.id} adopted after restart"
                store.event(s, "node", msg, at=now)
                continue
            self._kill_handle(row.handle)
            row.ended_at = now
            self._burn_end(s, row, "lost", "lost while the service was down; run anew", now)


def _unlaunched(row: m.BurnIn | None) -> bool:
    return row is not None and row.state == "launching" and row.handle is None
