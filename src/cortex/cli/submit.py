"""`cortex submit`: a YAML job file, or a one-off command after `--` (like `sbatch --wrap` and
`ray job submit -- CMD`); `--wait` follows the jobs to their end and exits as they did."""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperCommand

from cortex.cli import http
from cortex.cli.client import FINAL_STATES, _base_url, _call, _fail, _start, job_cols
from cortex.cli.output import CONTROL, JSON, JSON_FILE, OUTPUT, Out, bad_option

SUBMIT_TRIES = 4  # a connection error is retried with the same idempotency key
WAIT_POLL_S = (0.5, 1.0, 2.0, 5.0)  # --wait polls fast first, then every 5 s
SOURCE = "cortex submit"


class SubmitCommand(TyperCommand):
    """Remembers how many arguments came after `--`: those are the one-off command, the one
    before them (if any) the job file. Click drops the `--` itself, so this is the only place
    that can tell `submit job.yaml` from `submit -- job.yaml`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["cortex.after_dashdash"] = len(args) - args.index("--") - 1 if "--" in args else 0
        return super().parse_args(ctx, args)


def _refuse(field: str, reason: str) -> NoReturn:
    bad_option(SOURCE, field, reason)


def _job_file(file: Path) -> tuple[Any, int]:
    """The file's jobs as a request body (one job, or `{jobs: [...]}`) and their count; one
    line and exit 2 for anything unreadable."""
    from cortex.control.bodies import BodyError, load_yaml  # PyYAML: only for a file

    try:
        raw = file.read_bytes()
    except OSError as err:
        _fail(f"{file}: <file>: {err.strerror or err}", 2)
    try:
        data = load_yaml(raw)
    except BodyError as err:
        _fail(f"{file}: <yaml>: {err}", 2)
    items = data.get("jobs") if isinstance(data, dict) and "jobs" in data else data
    if isinstance(items, list):
        if not items:
            _fail(f"{file}: jobs: no jobs in file", 2)
        return {"jobs": items}, len(items)
    if not isinstance(items, dict):
        _fail(f"{file}: <root>: expected a job mapping or a list of jobs", 2)
    return items, 1


def _env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for p in pairs:
        name, eq, value = p.partition("=")
        if not eq or not name:
            _refuse("--env", f"{p!r}: expected NAME=VALUE")
        env[name] = value
    return env


def parse_dependency(text: str) -> list[int]:
    """`afterok:ID[:ID...]`, several joined by commas (Slurm's syntax): the job ids."""
    ids: list[int] = []
    for clause in text.split(","):
        kind, _, rest = clause.strip().partition(":")
        if kind != "afterok":
            _refuse("--dependency", f"{clause!r}: only afterok:ID[:ID] is supported")
        for part in rest.split(":"):
            if not part.isdigit() or not 1 <= int(part) <= 2**31 - 1:
                _refuse("--dependency", f"{clause!r}: {part!r} is not a job id")
            ids.append(int(part))
    if len(ids) > 64:
        _refuse("--dependency", "at most 64 dependencies")
    return ids


def _with_gates(body: Any, hold: bool, dependency: str | None, array: str | None) -> Any:
    """The gate options applied to every job of the body."""
    extra: dict[str, Any] = {}
    if hold:
        extra["hold"] = True
    if dependency:
        extra["after_ok"] = parse_dependency(dependency)
    if array:
        extra["array"] = array
    if not extra:
        return body
    if "jobs" in body:
        return {"jobs": [{**j, **extra} if isinstance(j, dict) else j for j in body["jobs"]]}
    return {**body, **extra}


def _one_off(cmd: list[str], opts: dict[str, Any]) -> dict[str, Any]:
    """A job body for a command line given after `--`: the options given and a name from the
    program. No working directory unless asked (the service's run directory: the caller's
    own directory may lie outside the team's allowed roots, or on another machine)."""
    job: dict[str, Any] = {
        "name": opts["name"] or Path(cmd[0]).name[:64] or "job",
        "gpus": opts["gpus"],
        "command": cmd,
    }
    if opts["working_dir"]:
        job["working_dir"] = os.path.abspath(opts["working_dir"])
    for key in ("team", "priority_class", "duration_s", "time_limit_s", "nprocs"):
        if opts[key] is not None:
            job[key] = opts[key]
    if opts["flavor"]:
        job["flavors"] = opts["flavor"]
    if opts["env"]:
        job["env"] = _env(opts["env"])
    return job


def _post(body: Any, payload: bytes, key: str, source: str) -> Any:
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    for attempt in range(SUBMIT_TRIES):
        try:
            return _call(
                "POST", "/v1/jobs", content=payload, headers=headers, retry=True, source=source
            )
        except http.transport_errors() as err:
            if attempt == SUBMIT_TRIES - 1:
                _fail(f"cannot reach {_base_url()}: {err} (idempotency key {key})")
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def exit_code_of(jobs: list[dict[str, Any]]) -> int:
    """`--wait`'s exit status, as `sbatch --wait` gives it for several jobs: the highest of
    theirs. Completed is 0; failed is the job's own exit code when it has one in 1..255, else
    1; cancelled and rejected are 1 (no process exit code says why)."""
    worst = 0
    for j in jobs:
        if j["state"] == "completed":
            code = 0
        elif (
            j["state"] == "failed"
            and isinstance(j.get("exit_code"), int)
            and (1 <= j["exit_code"] <= 255)
        ):
            code = j["exit_code"]
        else:
            code = 1
        worst = max(worst, code)
    return worst


def wait_for_jobs(ids: list[int], timeout_s: float) -> list[dict[str, Any]]:
    """Poll until every job is final; their last answers. Past `timeout_s` (0: no limit):
    one line and exit 1."""
    deadline = time.monotonic() + timeout_s if timeout_s else None
    polls = 0
    final: dict[int, dict[str, Any]] = {}
    while True:
        for jid in ids:
            if jid not in final:
                j = _call("GET", f"/v1/jobs/{jid}")
                if j["state"] in FINAL_STATES:
                    final[jid] = j
        if len(final) == len(ids):
            return [final[j] for j in ids]
        if deadline is not None and time.monotonic() > deadline:
            left = [str(j) for j in ids if j not in final]
            _fail(f"--wait: timed out after {timeout_s:g} s; still running: {', '.join(left)}")
        time.sleep(WAIT_POLL_S[min(polls, len(WAIT_POLL_S) - 1)])
        polls += 1


def _report(out: Out, created: list[dict[str, Any]]) -> None:
    if out.fmt == "parsable":
        for j in created:
            print(j["id"])
    elif out.fmt == "table":
        out.emit(created)
        for j in created:
            print(f"submitted job {j['id']} ({CONTROL.sub('?', j['name'])})")
    else:
        out.rows(created, created, job_cols())


def _split(ctx: typer.Context, args: list[str] | None) -> tuple[list[str], str | None]:
    """The command after `--` and the job file before it (one of the two)."""
    args = list(args or [])
    n_cmd = int(ctx.meta.get("cortex.after_dashdash", 0))
    cmd, before = (args[len(args) - n_cmd :], args[: len(args) - n_cmd]) if n_cmd else ([], args)
    if cmd and before:
        _refuse("FILE", "give a job file or a command after `--`, not both")
    if not cmd and len(before) != 1:
        _refuse("FILE", "expected one job file, or a command after `--`")
    return cmd, before[0] if before else None


def _dry_run(out: Out, body: Any, payload: bytes, source: str) -> None:
    if "jobs" in body:
        _refuse("--dry-run", "takes one job; this file has a list")
    got = _call(
        "POST", "/v1/jobs/dry-run", content=payload, source=source,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    if out.emit(got):
        return
    if out.fmt == "parsable":
        print("start_s|low_s|high_s|flavor|nodes|never|reason")
        nodes = ",".join(f"{n['node']}:{n['gpus']}" for n in got.get("nodes") or [])
        cells = [got.get(k) for k in ("start_s", "low_s", "high_s", "flavor")]
        cells += [nodes, got.get("never"), got.get("reason")]
        print("|".join("" if c is None else CONTROL.sub("?", str(c)) for c in cells))
        return
    if got.get("never"):
        print(f"it would never start: {CONTROL.sub('?', str(got['reason']))}")
    elif got.get("start_s") is None:
        why = got.get("reason") or "not within the estimate's horizon (30 days)"
        print(f"no start estimate: {CONTROL.sub('?', str(why))}")
    else:
        where = ", ".join(f"{CONTROL.sub('?', n['node'])} ({n['gpus']})" for n in got["nodes"])
        print(
            f"it would start at {_start(got)} in queue {CONTROL.sub('?', got['queue'])}, on "
            f"{CONTROL.sub('?', got['flavor'])}: {where} (nothing submitted)"
        )


def submit(
    ctx: typer.Context,
    args: list[str] = typer.Argument(
        None,
        help="a job YAML (one job, a list, or a list under `jobs:`), or `-- CMD ARGS` to run "
        "one command",
        show_default=False,
    ),
    name: str | None = typer.Option(None, "--name", help="one-off: the job's name"),
    gpus: int = typer.Option(1, "--gpus", min=1, max=2**31 - 1, help="one-off: GPUs"),
    team: str | None = typer.Option(None, "--team", help="one-off: team (admin token only)"),
    priority_class: str | None = typer.Option(None, "--priority-class", help="one-off"),
    flavor: list[str] = typer.Option([], "--flavor", help="one-off: acceptable flavor (repeat)"),
    duration_s: float | None = typer.Option(
        None,
        "--duration-s",
        min=0.001,
        max=1e9,
        help="one-off: runtime estimate (default: the time limit, else the queue's default)",
    ),
    time_limit_s: float | None = typer.Option(
        None, "--time-limit-s", help="one-off: stop it past this (failed, not retried)"
    ),
    nprocs: int | None = typer.Option(None, "--nprocs", min=1, max=1024, help="one-off: ranks"),
    env: list[str] = typer.Option([], "--env", help="one-off: NAME=VALUE (repeat)"),
    working_dir: str | None = typer.Option(
        None, "--working-dir", help="one-off: where it runs (`.`: this directory)"
    ),
    hold: bool = typer.Option(False, "--hold", help="submit held (cortex release ID runs it)"),
    dependency: str | None = typer.Option(
        None, "--dependency", "-d", help="afterok:ID[:ID]: start only after these completed"
    ),
    array: str | None = typer.Option(
        None,
        "--array",
        help="a job array, e.g. 0-99%8: one job per index (CORTEX_ARRAY_INDEX), "
        "at most 8 running at once",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="where and when it would start; submit nothing (one job)"
    ),
    wait: bool = typer.Option(
        False, "--wait", help="wait until every job is final; exit as they did (0: completed)"
    ),
    wait_timeout_s: float = typer.Option(
        0.0, "--wait-timeout-s", min=0, max=1e9, help="give up waiting after this (0: never)"
    ),
    idempotency_key: str | None = typer.Option(
        None,
        "--idempotency-key",
        help="submit at most once under this key (default: a new key, reused by this "
        "command's own retries after a connection error)",
    ),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = typer.Option(
        False, "--parsable", help="print only the job ids, one a line (like sbatch --parsable)"
    ),
) -> None:
    """Submit the jobs in a YAML file (JobSpec fields plus command, env, working_dir; several
    jobs are stored all or nothing), or one command: `cortex submit --gpus 2 -- python x.py`."""
    out = Out.pick(SOURCE, output, as_json, json_file, parsable)
    cmd, file = _split(ctx, args)
    if time_limit_s is not None and not (math.isfinite(time_limit_s) and 0 < time_limit_s <= 1e9):
        _refuse("--time-limit-s", "must be a finite number of seconds, at most 1e9")
    if cmd:
        opts = {
            "name": name, "gpus": gpus, "team": team, "priority_class": priority_class,
            "flavor": flavor, "duration_s": duration_s, "nprocs": nprocs, "env": env,
            "working_dir": working_dir, "time_limit_s": time_limit_s,
        }  # fmt: skip
        body: Any = _one_off(cmd, opts)
        count, source = 1, SOURCE
    else:
        assert file is not None
        body, count = _job_file(Path(file))
        source = file
    body = _with_gates(body, hold, dependency, array)
    try:
        # YAML takes values JSON has no form for (!!binary, !!set): refused here, by name.
        payload = json.dumps(body, allow_nan=True).encode()
    except (TypeError, ValueError) as err:
        _fail(f"{source}: <yaml>: {err}", 2)
    if dry_run:
        _dry_run(out, body, payload, source)
        return
    key = idempotency_key or f"cli-{uuid.uuid4()}"
    data = _post(body, payload, key, source)
    created = data["jobs"] if "jobs" in data and isinstance(data["jobs"], list) else [data]
    _report(out, created)
    if len(created) != count and not array:
        _fail(f"{source}: expected {count} jobs back, got {len(created)}")
    if wait:
        done = wait_for_jobs([j["id"] for j in created], wait_timeout_s)
        if out.fmt == "table":
            for j in done:
                code = j.get("exit_code")
                print(f"job {j['id']} {j['state']}" + (f" (exit {code})" if code else ""))
        raise typer.Exit(exit_code_of(done))
