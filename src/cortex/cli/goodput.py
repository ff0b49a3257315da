"""`cortex goodput [--team T] [--since 7d] [--job ID]`: where the GPU-time went, by the twin's
categories (productive, restart overhead, checkpoint writes, work lost to failures and to
preemption), with queueing and each large job's effective training time."""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cortex.cli.client import _call, _ts, safe
from cortex.cli.output import JSON, JSON_FILE, OUTPUT, PARSABLE, Col, Out, console

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^(\d{1,9}(?:\.\d{1,6})?)([smhd])$")
MAX_TIME_S = 1e11


def parse_since(text: str, now: float) -> float:
    """`7d`, `12h`, `30m`, `90s` back from now, or Unix seconds; ValueError naming why."""
    t = text.strip()
    got = _DURATION.match(t)
    if got:
        return max(0.0, now - float(got.group(1)) * _UNITS[got.group(2)])
    try:
        v = float(t)
    except ValueError:
        raise ValueError("a duration such as 7d, 12h, 30m or Unix seconds") from None
    if not math.isfinite(v) or not 0 <= v <= MAX_TIME_S:
        raise ValueError(f"Unix seconds between 0 and {MAX_TIME_S:.0e}")
    return v


def _hours(gpu_s: float) -> str:
    return f"{gpu_s / 3600.0:,.2f}"


def _books_table(gpu_s: dict[str, float], title: str) -> Table:
    total = sum(gpu_s.values())
    t = Table("category", "GPU-h", "share", title=title)
    for k, v in gpu_s.items():
        t.add_row(safe(k), _hours(v), f"{v / total:.1%}" if total > 0 else "-")
    t.add_row("allocated", _hours(total), "100.0%" if total > 0 else "-")
    return t


def goodput(
    team: str | None = typer.Option(None, "--team", help="one team (admin: any)"),
    since: str | None = typer.Option(None, "--since", help="7d, 12h, 30m, or Unix seconds"),
    job: int | None = typer.Option(None, "--job", min=1, help="one job, attempt by attempt"),
    large_gpus: int | None = typer.Option(
        None, "--large-gpus", min=1, help="jobs this large get a line (default: the twin's)"
    ),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Goodput and its losses (like a sacct report of where the time went). `--parsable`
    lists the GPU-hours by category (with `--job`: the attempts), one row each."""
    out = Out.pick("cortex goodput", output, as_json, json_file, parsable)
    params: dict[str, Any] = {}
    if large_gpus is not None:
        params["large_gpus"] = large_gpus
    if job is not None:
        data = _call("GET", f"/v1/jobs/{job}/goodput", params=params)
        if out.fmt == "parsable":
            out.rows(data, *_attempt_rows(data))
        elif not out.emit(data):
            _print_job(data)
        return
    if since is not None:
        try:
            params["since"] = parse_since(since, time.time())
        except ValueError as err:
            print(f"error: --since: {err}", file=sys.stderr)
            raise typer.Exit(2) from None
    if team:
        params["team"] = team
    data = _call("GET", "/v1/goodput", params=params)
    if out.fmt == "parsable":
        books = [{"category": k, "gpu_s": v} for k, v in data["gpu_s"].items()]
        out.rows(data, books, BOOK_COLS)
        return
    if out.emit(data):
        return
    con = console()
    who = f"team {safe(data['team'])}" if data.get("team") else "the fleet"
    con.print(
        f"{who} since {_day(data['since'])}: goodput {data['goodput']:.1%} of "
        f"{_hours(data['allocated_gpu_s'])} allocated GPU-h, {data['jobs']} jobs, "
        f"{data['attempts']} attempts, {data['queueing_s'] / 3600:.2f} h queueing"
    )
    con.print(_books_table(data["gpu_s"], "GPU-hours by category"))
    if data["large_jobs"]:
        t = Table("id", "name", "team", "gpus", "state", "goodput", "effective training time",
                  title=f"jobs of {data['large_job_gpus']}+ GPUs")  # fmt: skip
        for j in data["large_jobs"]:
            ett = j.get("effective_training_time")
            t.add_row(str(j["job_id"]), safe(j["name"]), safe(j["team"]), str(j["gpus"]),
                      safe(j["state"]), f"{j['goodput']:.1%}",
                      "-" if ett is None else f"{ett:.1%}")  # fmt: skip
        con.print(t)


def _day(t: float) -> str:
    """The window's start with its date: a week back, the time of day alone reads as now."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


BOOK_COLS = (
    Col("category", lambda b: b["category"]),
    Col("gpu_hours", lambda b: f"{b['gpu_s'] / 3600.0:.6f}"),
)


def _attempt_rows(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Col]]:
    """The attempts flattened, one column per category of seconds (as the API names them)."""
    rows = [
        {**{k: a[k] for k in ("attempt", "outcome", "started_at", "ended_at", "node")},
         **{f"{k}_s": v for k, v in a["seconds"].items()}}
        for a in data["attempts"]
    ]  # fmt: skip
    keys = list(rows[0]) if rows else ["attempt", "outcome", "started_at", "ended_at", "node"]
    return rows, [Col(k, _getter(k)) for k in keys]


def _getter(key: str) -> Any:
    return lambda row: row[key]


def _print_job(data: dict[str, Any]) -> None:
    con = console()
    ett = data.get("effective_training_time")
    con.print(
        f"job {data['job_id']} ({safe(data['name'])}, {data['gpus']} GPUs) is "
        f"{safe(data['state'])}: goodput {data['goodput']:.1%}, "
        f"queueing {data['queueing_s']:.0f} s"
        + ("" if ett is None else f", effective training time {ett:.1%}")
    )
    t = Table("attempt", "outcome", "start", "end", "node", "productive s", "startup/restart s",
              "checkpoint s", "lost s", title="attempts")  # fmt: skip
    for a in data["attempts"]:
        sec = a["seconds"]
        lost = sec["rework_after_failures"] + sec["rework_after_preemptions"]
        t.add_row(str(a["attempt"]), safe(a["outcome"]), _ts(a["started_at"]),
                  _ts(a["ended_at"]), safe(a["node"] or "-"), f"{sec['productive']:.0f}",
                  f"{sec['startup'] + sec['restart_overhead']:.0f}",
                  f"{sec['checkpoint_writes']:.0f}", f"{lost:.0f}")  # fmt: skip
    con.print(t)
    con.print(_books_table(data["gpu_s"], "GPU-hours by category"))
