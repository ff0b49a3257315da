"""Trace CSV: the project's format for replaying a stream of jobs.

One job per row, with a header row. Columns (order free, names exact, unknown columns ignored,
so the Philly files in shared/traces/philly-gavel load as they are):

| column | required | meaning |
|---|---|---|
| `submit_time_s` | yes | arrival, seconds from the trace start, >= 0 |
| `num_gpus` | yes | gang size, a whole number >= 1 |
| `duration_s` | yes | run time on the reference flavor (H100-SXM5) at that gang size, >= 0 |
| `name` or `job_id` | no | job name (`name` wins); default `job-<i>` |
| `team` | no | submitting team; default given by the caller (`research`) |
| `priority` | no | priority class: `production`, `normal` (default) or `preemptible` |
| `flavor` | no | acceptable flavors, `|`-separated, in preference order; empty = any |
| `kind` | no | workload kind (`fsd-video`, `optimus-policy`, `llm`, `eval`, `generic`) |
| `checkpoint_write_s` | no | seconds to write one checkpoint, >= 0; empty = no checkpoints |
| `checkpoint_on_signal` | no | `true` (default) or `false`: checkpoints when preempted (1) |

(1) Within the grace period, keeping all its work; `false` loses what it did since its last
checkpoint (workload/preempt_rule.py).

Empty optional cells take the default. Jobs are sorted by submit time (stable) and numbered
0..n-1. A bad cell raises InputError(file, "row <line>: <column>", reason); line 1 is the header.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from cortex.errors import InputError, columns_once
from cortex.fleet.catalog import load_catalog
from cortex.workload.job import Job
from cortex.workload.spec import WorkloadKind

REQUIRED_COLUMNS = ("submit_time_s", "num_gpus", "duration_s")
WRITE_COLUMNS = (
    "name",
    "submit_time_s",
    "num_gpus",
    "duration_s",
    "team",
    "priority",
    "flavor",
    "kind",
    "checkpoint_write_s",
    "checkpoint_on_signal",
)
PRIORITY_CLASSES = ("production", "normal", "preemptible")
FLAVOR_SEPARATOR = "|"
_KINDS = frozenset(k.value for k in WorkloadKind)
_TEAM_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # as JobSpec.team


_Row = tuple[float, str, str, int, float, str, tuple[str, ...], str, float | None, bool]
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def read_trace(path: str | Path, *, default_team: str = "research") -> list[Job]:
    """Read a trace CSV into Jobs sorted by submit time (stable), ids 0..n-1.

    Raises InputError naming the file, the row and column, and the reason.
    """
    p = Path(path)
    src = str(p)
    rows: list[_Row] = []
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's BOM: not a column
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            if not header:
                raise InputError(src, "row 1", "empty file: expected a header row")
            columns_once(header, src)
            for col in REQUIRED_COLUMNS:
                if col not in header:
                    raise InputError(src, f"row 1: {col}", "required column missing")
            name_col = next((c for c in ("name", "job_id") if c in header), "")
            for rec in reader:
                rows.append(_parse_row(rec, reader.line_num, src, name_col, default_team))
    except OSError as err:
        raise InputError(src, "<file>", err.strerror or str(err)) from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(src, "<file>", f"not a readable CSV file: {err}") from None
    if not rows:  # as a job file with `jobs: []` is: a replay of nothing is a mistake
        raise InputError(src, "row 2", "no jobs: a header and no rows")
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])  # sorted() is stable
    jobs: list[Job] = []
    for new_id, i in enumerate(order):
        submit_s, name, team, gpus, duration_s, prio, flavors, kind, ckpt, on_signal = rows[i]
        jobs.append(
            Job(
                new_id,
                name or f"job-{new_id}",
                team,
                gpus,
                duration_s,
                priority_class=prio,
                flavors=flavors,
                kind=kind,
                submit_s=submit_s,
                ckpt_write_s=ckpt,
                ckpt_on_signal=on_signal,
            )
        )
    return jobs


def _parse_row(
    rec: Mapping[str, str | None], line: int, src: str, name_col: str, default_team: str
) -> _Row:
    """Validate one data row of a trace; `line` is its line number in the file."""

    def where(col: str) -> str:
        return f"row {line}: {col}"

    if None in rec:  # csv.DictReader files a row's fields beyond the header under None
        extra = rec[None]  # type: ignore[index]
        n = len(rec) - 1 + (len(extra) if isinstance(extra, list) else 1)
        raise InputError(src, f"row {line}", f"{n} fields, the header has {len(rec) - 1} columns")
    submit_s = _number(rec, "submit_time_s", src, where)
    gpus_f = _number(rec, "num_gpus", src, where)
    duration_s = _number(rec, "duration_s", src, where)
    if submit_s < 0:
        raise InputError(src, where("submit_time_s"), f"negative: {submit_s:g}")
    if gpus_f <= 0:
        raise InputError(src, where("num_gpus"), f"must be at least 1, got {gpus_f:g}")
    if not gpus_f.is_integer():
        raise InputError(src, where("num_gpus"), f"not a whole number: {gpus_f:g}")
    if duration_s < 0:
        raise InputError(src, where("duration_s"), f"negative: {duration_s:g}")
    team = _cell(rec, "team") or default_team
    if not _TEAM_RE.match(team):
        raise InputError(src, where("team"), f"not a team name: {team!r}")
    prio = _cell(rec, "priority") or "normal"
    if prio not in PRIORITY_CLASSES:
        known = ", ".join(PRIORITY_CLASSES)
        raise InputError(src, where("priority"), f"unknown class {prio!r} (known: {known})")
    catalog = load_catalog()
    flavors = tuple(f.strip() for f in _cell(rec, "flavor").split(FLAVOR_SEPARATOR) if f.strip())
    for f in flavors:
        if f not in catalog:
            known = ", ".join(catalog)
            raise InputError(src, where("flavor"), f"unknown flavor {f!r} (known: {known})")
    kind = _cell(rec, "kind") or WorkloadKind.GENERIC.value
    if kind not in _KINDS:
        known = ", ".join(k.value for k in WorkloadKind)
        raise InputError(src, where("kind"), f"unknown kind {kind!r} (known: {known})")
    ckpt: float | None = None
    if _cell(rec, "checkpoint_write_s"):
        ckpt = _number(rec, "checkpoint_write_s", src, where)
        if ckpt < 0:
            raise InputError(src, where("checkpoint_write_s"), f"negative: {ckpt:g}")
    raw = _cell(rec, "checkpoint_on_signal").lower()
    if raw and raw not in _BOOLS:
        raise InputError(src, where("checkpoint_on_signal"), f"not true or false: {raw!r}")
    on_signal = _BOOLS.get(raw, True)
    name = _cell(rec, name_col) if name_col else ""
    return (submit_s, name, team, int(gpus_f), duration_s, prio, flavors, kind, ckpt, on_signal)


def write_trace(jobs: Iterable[Job], path: str | Path) -> int:
    """Write jobs as a trace CSV (all columns of WRITE_COLUMNS); return the number of rows.

    Numbers are written exactly, so `read_trace(write_trace(jobs))` gives the same jobs.
    """
    rows = (
        {
            "name": j.name,
            "submit_time_s": _fmt(j.submit_s),
            "num_gpus": str(j.gpus),
            "duration_s": _fmt(j.work_s),
            "team": j.team,
            "priority": j.priority_class,
            "flavor": FLAVOR_SEPARATOR.join(j.flavors),
            "kind": j.kind,
            "checkpoint_write_s": "" if j.ckpt_write_s is None else _fmt(j.ckpt_write_s),
            "checkpoint_on_signal": "true" if j.ckpt_on_signal else "false",
        }
        for j in jobs
    )
    return _write_rows(rows, Path(path), WRITE_COLUMNS)


ALIBABA_COLUMNS = ("name", "num_gpu", "gpu_spec", "qos", "creation_time", "deletion_time",
                   "scheduled_time")  # fmt: skip
ALIBABA_PREEMPTIBLE_QOS = "BE"
"""Alibaba's best-effort QoS class (`BE`) maps to `preemptible`; the others in the openb pod list
(`LS` latency-sensitive, `Burstable`, `Guaranteed`) map to `normal`."""


def convert_alibaba(pod_csv: str | Path, out_csv: str | Path) -> int:
    """Convert Alibaba's openb pod list (cluster-trace-gpu-v2023) to a trace CSV.

    Keeps GPU tasks (`num_gpu > 0`); a fractional share (`gpu_milli < 1000`) rounds up to one
    GPU. submit = `creation_time`, duration = `deletion_time - scheduled_time`; rows never
    scheduled or with a non-positive duration are dropped. Alibaba's GPU types are not flavors
    of ours, so `flavor` stays empty and the types go, as they are, to an extra `gpu_spec`
    column that read_trace ignores. Returns the number of jobs written.
    """
    src = str(pod_csv)
    out: list[tuple[float, dict[str, str]]] = []
    try:
        with Path(pod_csv).open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            columns_once(header, src)
            for col in ALIBABA_COLUMNS:
                if col not in header:
                    raise InputError(src, f"row 1: {col}", "required column missing")
            for rec in reader:
                row = _alibaba_row(rec, _where_fn(reader.line_num), src)
                if row is not None:
                    out.append(row)
    except OSError as err:
        raise InputError(src, "<file>", err.strerror or str(err)) from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(src, "<file>", f"not a readable CSV file: {err}") from None
    out.sort(key=lambda t: t[0])
    cols = ("name", "submit_time_s", "num_gpus", "duration_s", "priority", "gpu_spec")
    return _write_rows((r for _, r in out), Path(out_csv), cols)


def _alibaba_row(
    rec: Mapping[str, str | None], where: Callable[[str], str], src: str
) -> tuple[float, dict[str, str]] | None:
    """One pod as (creation time, trace row), or None when it is not a finished GPU task."""
    gpus = _number(rec, "num_gpu", src, where)
    if gpus <= 0 or not _cell(rec, "scheduled_time") or not _cell(rec, "deletion_time"):
        return None
    created = _number(rec, "creation_time", src, where)
    ended = _number(rec, "deletion_time", src, where)
    duration_s = ended - _number(rec, "scheduled_time", src, where)
    if duration_s <= 0:
        return None
    prio = "preemptible" if _cell(rec, "qos") == ALIBABA_PREEMPTIBLE_QOS else "normal"
    row = {
        "name": _cell(rec, "name"),
        "submit_time_s": _fmt(created),
        "num_gpus": str(max(1, math.ceil(gpus))),
        "duration_s": _fmt(duration_s),
        "priority": prio,
        "gpu_spec": _cell(rec, "gpu_spec"),
    }
    return created, row


def _where_fn(line: int) -> Callable[[str], str]:
    return lambda col: f"row {line}: {col}"


def _cell(rec: Mapping[str, str | None], col: str) -> str:
    raw = rec.get(col)
    return raw.strip() if raw else ""


def _number(
    rec: Mapping[str, str | None], col: str, src: str, where: Callable[[str], str]
) -> float:
    raw = _cell(rec, col)
    if not raw:
        raise InputError(src, where(col), "missing value")
    try:
        val = float(raw)
    except ValueError:
        raise InputError(src, where(col), f"not a number: {raw!r}") from None
    if not math.isfinite(val):
        raise InputError(src, where(col), f"not a finite number: {raw!r}")
    return val


def _fmt(x: float) -> str:
    """Shortest text that reads back to the same float; whole numbers without '.0'."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _write_rows(rows: Iterable[Mapping[str, str]], path: Path, cols: tuple[str, ...]) -> int:
    n = 0
    try:
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow(r)
                n += 1
    except OSError as err:
        raise InputError(str(path), "<file>", err.strerror or str(err)) from None
    return n
