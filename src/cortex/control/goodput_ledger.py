"""The goodput books of many jobs in one pass, from plain rows: what the goodput page
(ui/goodput_view.py) and GET /v1/goodput (goodput.fleet_goodput) book, thousands of jobs at
a time at 100k GPUs.

The figures are `goodput.book_job`'s to the last bit (tests/control/test_goodput_ledger.py):
the same rule (drive/goodput.split_values, which split_attempt calls), the attempts in the
same order, every sum taken in the same order. What it saves is the objects: an ORM row per
attempt record (SQLAlchemy's identity map), an Attempt, a Books and a dict per category per
attempt, for jobs that each have one or two attempts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.control import store_health as sh
from cortex.drive import goodput as gp
from cortex.drive import runs
from cortex.workload.spec import write_s_of

_A = m.AttemptRecord
# An attempt as booked: (number, gpus, started_at, ended_at or None, outcome, first_step_at,
# checkpoint_at, checkpoints, checkpoint_write_s).
AttemptRow = tuple[int, int, float, float | None, str, float | None, float | None, int, float]
_N_CATEGORIES = len(gp.ATTEMPT_CATEGORIES)
_ZERO = (0.0,) * _N_CATEGORIES
_by_number = itemgetter(0)
_LOSS_AT = tuple((k, gp.ATTEMPT_CATEGORIES.index(k)) for k in gp.LOSSES)


def _declared(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and v >= 0 else None


def declared_write_s(w: object, size_gb: object, storage_write_gbps: float) -> float:
    """A job's seconds per checkpoint write from its spec's `checkpoint_write_s` and
    `checkpoint_size_gb` values, by the estimate's rule (`JobSpec.write_s`: the size over the
    fleet's write bandwidth when no seconds are given); 0 when it declared neither (a value
    not a number >= 0 counts as none). goodput.write_s's rule, for values read by the query."""
    return write_s_of(_declared(w), _declared(size_gb), storage_write_gbps) or 0.0


def attempts_by_job(s: Session, team: str | None, since: float) -> dict[int, list[AttemptRow]]:
    """`store_health.attempts_since`'s records (ended at or after `since`, newest first,
    bounded), only the columns booked, grouped by job."""
    q = select(
        _A.job_id, _A.attempt, _A.gpus, _A.started_at, _A.ended_at, _A.outcome,
        _A.first_step_at, _A.checkpoint_at, _A.checkpoints, _A.checkpoint_write_s,
    ).where(_A.ended_at >= since)  # fmt: skip
    if team is not None:
        q = q.where(_A.team == team)
    out: dict[int, list[AttemptRow]] = {}
    for job_id, *rest in s.execute(q.order_by(_A.ended_at.desc()).limit(sh.MAX_ROWS)):
        out.setdefault(job_id, []).append(tuple(rest))
    return out


def jobs_to_book(s: Session, team: str | None, since: float) -> list[Any]:
    """The jobs `store_health.jobs_for` books, in one query, as plain rows (id, team, name,
    state, gpus, submitted_at, ended_at, attempt, write_s, size_gb, run_start): only the
    columns the books read, the spec reduced to its checkpoint_write_s and checkpoint_size_gb
    (`declared_write_s` makes them one figure; decoding each job's JSON columns
    into an ORM object cost most of a booking), and for a running job when its current
    attempt's first allocation was made (`store_ui.running_starts`, joined here rather than
    asked apart), else None."""
    a, j = m.Allocation, m.Job
    starts = (
        select(a.job_id, func.min(a.created_at).label("start"))
        .join(j, j.id == a.job_id)
        .where(j.state == "running", a.active.is_(True), a.attempt == j.attempt)
        .group_by(a.job_id)
    )
    if team is not None:
        starts = starts.where(j.team == team)
    run = starts.subquery()
    ended = select(_A.job_id).where(_A.ended_at >= since)
    q = (
        select(
            j.id,
            j.team,
            j.name,
            j.state,
            j.gpus,
            j.submitted_at,
            j.ended_at,
            j.attempt,
            j.spec["checkpoint_write_s"].as_float().label("write_s"),
            j.spec["checkpoint_size_gb"].as_float().label("size_gb"),
            run.c.start,
        )
        .outerjoin(run, run.c.job_id == j.id)
        .where(or_(j.state.in_(runs.UNFINISHED_VALUES), j.submitted_at >= since, j.id.in_(ended)))
    )
    if team is not None:
        q = q.where(j.team == team)
    return list(s.execute(q.limit(sh.MAX_ROWS)).all())


@dataclass(slots=True)
class JobFigures:
    """One job's books: GPU-seconds per ATTEMPT_CATEGORIES (in that order), its wait, its
    attempts (0: it held no GPUs in the window, only its wait counts), its productive wall
    seconds and its first attempt's start."""

    gpu_s: Sequence[float]
    queueing_s: float
    attempts: int
    productive_s: float = 0.0
    first_start_s: float | None = None

    @property
    def allocated_gpu_s(self) -> float:
        return sum(self.gpu_s)

    def goodput(self) -> float:
        alloc = self.allocated_gpu_s
        return self.gpu_s[0] / alloc if alloc > 0 else 0.0

    def lost_gpu_s(self) -> dict[str, float]:
        return {k: self.gpu_s[i] for k, i in _LOSS_AT}

    def lost_total_gpu_s(self) -> float:
        """sum(lost_gpu_s().values()), the same sum, without the dict."""
        total = 0.0
        for _, i in _LOSS_AT:
            total += self.gpu_s[i]
        return total


def _running(job_id: int, number: int, gpus: int, start: float, write_s: float,
             progress: Any, now: float) -> AttemptRow:  # fmt: skip
    p = None
    try:
        p = progress.current(job_id, number, start, now) if progress is not None else None
    except Exception:  # a progress file that cannot be read costs the figures, not the page
        p = None
    if p is None:
        return (number, gpus, start, None, "running", None, None, 0, write_s)
    return (number, gpus, start, None, "running", p.first_at, p.checkpoint_at, p.checkpoints,
            write_s)  # fmt: skip


def book(
    job_id: int, state: str, gpus: int, submitted_at: float, attempt: int, write_s: float,
    records: list[AttemptRow], running_start: float | None, progress: Any, now: float,
) -> JobFigures:  # fmt: skip
    """`goodput.book_job` for one job from its row's columns and its attempt rows."""
    waiting = runs.unfinished(state) and state not in ("running", "admitted")
    if not records and running_start is None:
        return JobFigures(_ZERO, gp.queueing_spans_s(submitted_at, [], now, waiting), 0)
    atts = list(records)
    if running_start is not None and all(a[0] != attempt for a in atts):
        atts.append(_running(job_id, attempt, gpus, running_start, write_s, progress, now))
    atts.sort(key=_by_number)
    acc = list(_ZERO)
    productive = 0.0
    spans: list[tuple[float, float | None]] = []
    for number, n, start, end, outcome, first, mark, marks, per_write_s in atts:
        vals = gp.split_values(number, start, end, outcome, first, mark, marks, per_write_s, now)
        acc = [x + n * v for x, v in zip(acc, vals, strict=True)]
        productive += vals[0]
        spans.append((start, end))
    queued = gp.queueing_spans_s(submitted_at, spans, now, waiting)
    return JobFigures(acc, queued, len(atts), productive, atts[0][2])


def book_rows(
    rows: Iterable[Any], by_job: dict[int, list[AttemptRow]], progress: Any, now: float,
    storage_write_gbps: float,
) -> Iterator[tuple[Any, JobFigures]]:  # fmt: skip
    """Each job row of `jobs_to_book`, in id order, with its books (a running attempt's
    checkpoint writes at the fleet's `storage_write_gbps` for a job that declared a size)."""
    for r in sorted(rows, key=_by_number):
        jid, _team, _name, state, gpus, submitted_at, _ended, attempt, w, size, start = r
        write = declared_write_s(w, size, storage_write_gbps)
        yield r, book(jid, state, gpus, submitted_at, attempt, write, by_job.get(jid, []),
                      start, progress, now)  # fmt: skip


def add_to(books: gp.Books, f: JobFigures) -> None:
    """`books.merge` of the job's Books, from its figures (the same sums, in the same order)."""
    if f.attempts:
        d = books.gpu_s
        for k, v in zip(gp.ATTEMPT_CATEGORIES, f.gpu_s, strict=True):
            d[k] += v
    books.queueing_s += f.queueing_s
    books.attempts += f.attempts
