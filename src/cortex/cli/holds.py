"""`cortex hold ID...` and `cortex release ID...` (Slurm's `scontrol hold|release`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cortex.cli.client import CallError, _call, check_ids, job_cols
from cortex.cli.output import CONTROL, JSON, JSON_FILE, OUTPUT, PARSABLE, Out


def _each(command: str, action: str, job_ids: list[int], out: Out) -> None:
    check_ids(command, job_ids)
    done, failed = [], 0
    for jid in dict.fromkeys(job_ids):
        try:
            done.append(_call("POST", f"/v1/jobs/{jid}/{action}", keep_going=True))
        except CallError as err:
            failed += 1
            print(f"error: job {jid}: {CONTROL.sub('?', str(err))}", file=sys.stderr)
    if out.fmt == "table" and not out.json_file:
        for j in done:
            print(f"job {j['id']} {'held' if action == 'hold' else 'released'}")
    else:
        out.rows(done, done, job_cols())
    if failed:
        raise typer.Exit(1)


def hold(
    job_ids: list[int] = typer.Argument(..., help="one or more waiting jobs"),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Hold waiting jobs: they stay queued and are never scheduled until released."""
    _each(
        "cortex hold",
        "hold",
        job_ids,
        Out.pick("cortex hold", output, as_json, json_file, parsable),
    )


def release(
    job_ids: list[int] = typer.Argument(..., help="one or more held jobs"),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Release held jobs: they join their queue again."""
    out = Out.pick("cortex release", output, as_json, json_file, parsable)
    _each("cortex release", "release", job_ids, out)
