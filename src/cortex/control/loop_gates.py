"""Job gates in the scheduler loop: a queued job with a gate (control/store_gates.py) is parked
here instead of joining the scheduler's queues, so the scheduler never sees it, and joins
them when every gate is open:
- held (`cortex hold`) until released;
- `after_ok`: until every dependency completed; a dependency that failed, was cancelled or
  rejected can never complete, so the job is cancelled, with that reason;
- a job array's limit: at most `array_limit` of its members queued or running at once,
  released in index order;
- a priority class its team may no longer use (CORTEX_TEAM_PRIORITY_CLASSES changed across a
  restart): parked with the reason, as Slurm keeps a job whose QOS left its association
  pending with reason InvalidQOS, never run at the old class. Submission refuses the class;
  this catches the jobs stored before the change, waiting at the restart or requeued later.

Gates are judged again only when something could have opened one, and only the jobs it could
have opened: a gated job arrived, or a hold or release was asked (that job and its array's
parked members); a job ended or was cancelled (its parked dependents and its array's parked
members). Every parked job is judged only after a restart or a request naming no job."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store, store_gates
from cortex.drive import intake
from cortex.workload.job import Job
from cortex.workload.states import PENDING, JobState

WAITING = (JobState.QUEUED.value, JobState.REQUEUED.value)
# The reason's first words, which name the code (queue_metrics.PARKED_REASONS).
CLASS_REFUSED = "priority class"


class GatesMixin:
    # Provided by the loop.
    mirror: Any
    settings: Any
    dirty: bool
    time_limits: dict[int, float]

    def _resolve(self, job: Job) -> Any: ...
    def wake(self) -> None: ...

    def init_gates(self) -> None:
        self.parked: dict[int, Job] = {}
        self.parked_why: dict[int, str] = {}  # the last reason judged (for /metrics)
        self.gates_dirty = False
        self._hold_asked: set[int] = set()
        self._gate_asked: set[int] = set()  # jobs whose gates changed (released, new)
        self._hold_lock = threading.Lock()
        # What a job ending can open: the parked jobs that depend on it, and its array's.
        self._after: dict[int, frozenset[int]] = {}  # parked job -> its dependencies
        self._array_of: dict[int, str] = {}  # every unfinished array member -> array key

    def class_refused(self, job: Job) -> str | None:
        """Why the job's team may not run it at its class now; None if it may."""
        allowed = self.settings.priority_classes_for(job.team)
        if allowed is None or job.priority_class in allowed:
            return None
        return (
            f"{CLASS_REFUSED} {job.priority_class!r} not allowed for team {job.team} "
            f"(CORTEX_TEAM_PRIORITY_CLASSES allows {', '.join(allowed)})"
        )

    def park_refused_class(self, row: m.Job, job: Job) -> bool:
        """Park a waiting job whose class its team may no longer use; whether it was."""
        why = self.class_refused(job)
        if why is None:
            return False
        self.parked[job.id] = job
        self.parked_why[job.id] = why
        row.reason = why
        return True

    def request_gates(self, hold_job: int | None = None, job: int | None = None) -> None:
        """The API changed a gate: a hold of `hold_job`, a release of `job` (those and their
        arrays are judged again), or, naming neither, anything (every parked job is)."""
        with self._hold_lock:
            if hold_job is not None:
                self._hold_asked.add(hold_job)
            if job is not None:
                self._gate_asked.add(job)
        if hold_job is None and job is None:
            self.gates_dirty = True
        self.wake()

    def park_gated(self, s: Session, jobs: list[Job]) -> set[int]:
        """The ids among newly seen jobs that have a gate: parked (not queued). Their time
        limits are noted too (control/loop_limits.py)."""
        rows = store_gates.gated(s, [j.id for j in jobs])
        return self.park_rows(rows, {j.id: j for j in jobs})

    def park_rows(self, rows: dict[int, m.JobGate], jobs: dict[int, Job]) -> set[int]:
        ids = set()
        for jid, g in rows.items():
            if g.time_limit_s is not None:
                self.time_limits[jid] = g.time_limit_s
            if g.array_key:
                self._array_of[jid] = g.array_key
            if g.after_ok:
                self._after[jid] = frozenset(g.after_ok)
            if store_gates.is_gated(g) and jid in jobs:
                self.parked[jid] = jobs[jid]
                ids.add(jid)
        if ids:
            with self._hold_lock:
                self._gate_asked |= ids
        return ids

    def run_gates(self, s: Session, now: float, ended: list[int]) -> None:
        """Park newly held jobs; queue parked jobs whose gates opened; cancel those whose
        dependency can never complete. `ended`: jobs that ended or were cancelled this tick:
        only their dependents and their arrays' parked members are judged again, as are the
        jobs held, released or newly gated and their arrays' (see the module)."""
        with self._hold_lock:
            asked, self._hold_asked = self._hold_asked, set()
            changed, self._gate_asked = self._gate_asked, set()
        full = self.gates_dirty
        if not (full or asked or changed or (ended and self.parked)):
            self._forget(ended)
            return
        self.gates_dirty = False
        for jid in sorted(asked):
            job = self.mirror.jobs.get(jid)
            # Only a job still waiting: one admitted meanwhile runs (the hold came too late).
            if job is not None and job.state in PENDING and self.mirror.withdraw(jid) is False:
                self.parked[jid] = job
                self.dirty = True
        if full:
            ids = sorted(self.parked)
        else:
            gone, named = set(ended), asked | changed
            keys = {self._array_of[j] for j in (*ended, *named) if j in self._array_of}
            ids = sorted(
                p
                for p in self.parked
                if p in gone
                or p in named
                or self._after.get(p, frozenset()) & gone
                or self._array_of.get(p) in keys
            )
        if ids:
            self._judge(s, now, ids)
        self._forget(ended)

    def _forget(self, ended: list[int]) -> None:
        for j in ended:
            if j not in self.parked:
                self._array_of.pop(j, None)
                self._after.pop(j, None)

    def _judge(self, s: Session, now: float, ids: list[int]) -> None:
        """Judge these parked jobs (sorted: array members go in index order). Every parked
        member of an array judged here must be among them (the limit counts them)."""
        # The tick runs without autoflush: this tick's exits must be visible to the queries.
        s.flush()
        rows = store_gates.waiting(s, ids)
        gates = store_gates.gate_rows(s, ids)
        deps = store_gates.states(s, {d for g in gates.values() for d in g.after_ok or []})
        # Per array, its parked members still waiting: what the store counts unfinished less
        # these is what is queued or running now (the limit's measure).
        self._parked_members: dict[str, int] = {}
        for jid, g in gates.items():
            got = rows.get(jid)
            if g.array_key and got is not None and got[0] in WAITING:
                self._parked_members[g.array_key] = self._parked_members.get(g.array_key, 0) + 1
        active: dict[str, int] = {}
        for jid in ids:
            got, gate = rows.get(jid), gates.get(jid)
            if got is None or got[0] not in WAITING:
                del self.parked[jid]  # cancelled while parked, or gone
                continue
            # A class the team may no longer use keeps the job parked whatever its gates say.
            wait = self.class_refused(self.parked[jid]) or (
                self._waits(s, jid, gate, deps, active, now) if gate is not None else None
            )
            if wait == "cancelled":
                del self.parked[jid]
            elif wait is not None:
                self.parked_why[jid] = wait
                if got[1] != wait:
                    self._row(s, jid).reason = wait
            else:
                self._unpark(s, self._row(s, jid), now)
        for jid in [j for j in self.parked_why if j not in self.parked]:
            del self.parked_why[jid]
        for jid in [j for j in self._after if j not in self.parked]:
            del self._after[jid]

    @staticmethod
    def _row(s: Session, jid: int) -> m.Job:
        row = s.get(m.Job, jid)
        assert row is not None  # read in this transaction
        return row

    def _waits(
        self,
        s: Session,
        jid: int,
        gate: Any,
        deps: dict[int, tuple[str, str]],
        active: dict[str, int],
        now: float,
    ) -> str | None:
        """Why the job must still wait (None: it may be queued; "cancelled": it was)."""
        if gate.held:
            return f"held (cortex release {jid})"
        for d in gate.after_ok or []:
            state = deps.get(d, ("missing", ""))[0]
            if state in store_gates.FINAL_NOT_OK or state == "missing":
                why = f"dependency afterok:{d} can never be satisfied (job {d} {state})"
                row = self._row(s, jid)
                store.move(s, row, JobState.CANCELLED, why, now)
                row.ended_at = now
                store.event(s, "cancel", why, job_id=jid, team=row.team, at=now)
                return "cancelled"
        waiting = [d for d in gate.after_ok or [] if deps[d][0] != JobState.COMPLETED.value]
        if waiting:
            return "waiting for dependencies: afterok:" + ":".join(map(str, waiting))
        key, limit = gate.array_key, gate.array_limit
        if key is not None and limit is not None:
            if key not in active:
                parked = self._parked_members.get(key, 0)
                active[key] = store_gates.array_unfinished(s, key) - parked
            if active[key] >= limit:
                return f"job array limit: {limit} at once"
            active[key] += 1
        return None

    def _unpark(self, s: Session, row: m.Job, now: float) -> None:
        job = self.parked.pop(row.id)
        reason = self._resolve(job)  # the queues may have changed while it was parked
        if reason is not None:
            why = intake.describe(reason)
            store.move(s, row, JobState.REJECTED, why, now)
            row.ended_at = now
            store.event(s, "rejected", why, job_id=row.id, team=row.team, at=now)
            return
        row.reason = "gates open: queued"
        self.mirror.enqueue(job)
        self.dirty = True
