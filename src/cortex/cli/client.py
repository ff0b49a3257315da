"""Client commands (`cortex submit|jobs|job|cancel|logs|queues|nodes|events|token`): they talk
to the API at $CORTEX_URL with $CORTEX_TOKEN."""

from __future__ import annotations

import codecs
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cortex.control.bodies import BodyError, load_yaml

DEFAULT_URL = "http://127.0.0.1:8080"
token_app = typer.Typer(help="Team tokens (admin).", no_args_is_help=True)
SUBMIT_TRIES = 4  # a connection error is retried with the same idempotency key
FINAL_STATES = {"completed", "failed", "cancelled"}
# C0 and C1 control characters and DEL: a job name must not move the cursor, recolour or
# retitle the terminal of whoever lists it.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(text: Any) -> str:
    """A server-provided string made safe to print: control characters shown as `?`, Rich
    markup escaped."""
    return escape(_CONTROL.sub("?", str(text)))


def _fail(msg: str, code: int = 1) -> NoReturn:
    print(f"error: {_CONTROL.sub('?', msg)}", file=sys.stderr)
    raise typer.Exit(code)


def _client(timeout: float | None = 30.0) -> httpx.Client:
    url = os.environ.get("CORTEX_URL", DEFAULT_URL).rstrip("/")
    token = os.environ.get("CORTEX_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=timeout)


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return resp.text.strip() or resp.reason_phrase
    if isinstance(detail, list):
        parts = []
        for d in detail:
            loc = ".".join(str(x) for x in d.get("loc", []) if x != "body") or "body"
            parts.append(f"{loc}: {d.get('msg', '')}")
        return "; ".join(parts)
    return str(detail)


def _base_url() -> str:
    return os.environ.get("CORTEX_URL", DEFAULT_URL)


def _call(method: str, path: str, *, retry: bool = False, source: str = "", **kw: Any) -> Any:
    """One request; errors end the command with one line (exit 2 for refused input). With
    `retry`, a transport error is raised for the caller to retry."""
    try:
        with _client() as c:
            resp = c.request(method, path, **kw)
    except httpx.TransportError:
        if retry:
            raise
        _fail(f"cannot reach {_base_url()}")
    except httpx.HTTPError as err:
        _fail(f"cannot reach {_base_url()}: {err}")
    if resp.status_code == 401:
        _fail(f"unauthorized ({_detail(resp)}); set CORTEX_TOKEN")
    if resp.status_code in (409, 413, 422, 431):
        _fail(f"{source}: {_detail(resp)}" if source else _detail(resp), 2)
    if resp.status_code >= 400:
        _fail(f"{resp.status_code}: {_detail(resp)}")
    ctype = resp.headers.get("content-type", "")
    return resp.json() if ctype.startswith("application/json") else resp.text


def _ts(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "-"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _age(since: float | None, until: float | None = None) -> str:
    """A duration as squeue prints TIME: [d-]hh:mm:ss."""
    if not since:
        return "-"
    s = max(0, int((until or time.time()) - since))
    d, s = divmod(s, 86400)
    text = f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{d}-{text}" if d else text


def _start(e: dict[str, Any] | None) -> str:
    """A start estimate as `HH:MM:SS (HH:MM:SS-HH:MM:SS)`, or `-`."""
    if not e or e.get("start_s") is None:
        return "-" if not e else "later"
    band = f" ({_ts(e['low_s'])}-{_ts(e['high_s'])})" if e.get("low_s") is not None else ""
    return _ts(e["start_s"]) + band


def _jobs_table(jobs: list[dict[str, Any]], start: bool = False) -> Table:
    t = Table(
        "id", "team", "name", "state", "prio", "gpus", "attempt", "submitted", "age", "elapsed",
        "reason",
    )  # fmt: skip
    if start:
        t.add_column("start (band)")
    for j in jobs:
        # A waiting job's reason is its first blocker (like squeue's REASON), else the last
        # transition's.
        reason = j.get("pending_reason") or j["reason"]
        t.add_row(
            str(j["id"]),
            safe(j["team"]),
            safe(j["name"]),
            safe(j["state"]),
            safe(j["priority_class"]),
            str(j["gpus"]),
            str(j["attempt"]),
            _ts(j["submitted_at"]),
            _age(j["submitted_at"], j.get("ended_at")),
            _age(j.get("started_at"), j.get("ended_at")),
            safe(reason[:60]),
            *([_start(j.get("start_estimate"))] if start else []),
        )
    return t


def _job_file(file: Path) -> tuple[Any, int]:
    """The file's jobs as a request body (one job, or `{jobs: [...]}`) and their count; one
    line and exit 2 for anything unreadable."""
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


def submit(
    file: Path = typer.Argument(..., help="job YAML: one job, a list, or a list under `jobs:`"),
    as_json: bool = typer.Option(False, "--json", help="print the created jobs as JSON"),
    idempotency_key: str | None = typer.Option(
        None,
        "--idempotency-key",
        help="submit at most once under this key (default: a new key, reused by this "
        "command's own retries after a connection error)",
    ),
) -> None:
    """Submit the jobs in a YAML file (JobSpec fields plus command, env, working_dir). A file
    of several jobs is stored all or nothing."""
    body, count = _job_file(file)
    try:
        # YAML takes values JSON has no form for (!!binary, !!set): refused here, by name.
        payload = json.dumps(body, allow_nan=True).encode()
    except (TypeError, ValueError) as err:
        _fail(f"{file}: <yaml>: {err}", 2)
    key = idempotency_key or f"cli-{uuid.uuid4()}"
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    for attempt in range(SUBMIT_TRIES):
        try:
            data = _call(
                "POST", "/v1/jobs", content=payload, headers=headers, retry=True, source=str(file)
            )
            break
        except httpx.TransportError as err:
            if attempt == SUBMIT_TRIES - 1:
                _fail(f"cannot reach {_base_url()}: {err} (idempotency key {key})")
            time.sleep(0.5 * 2**attempt)
    created = data["jobs"] if "jobs" in body else [data]
    if as_json:
        _print_json(created)
    else:
        for j in created:
            print(f"submitted job {j['id']} ({_CONTROL.sub('?', j['name'])})")
    if len(created) != count:
        _fail(f"{file}: expected {count} jobs back, got {len(created)}")


def jobs(
    team: str | None = typer.Option(None, "--team"),
    state: str | None = typer.Option(None, "--state"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
    start: bool = typer.Option(
        False, "--start", help="waiting jobs' start estimates (like squeue --start)"
    ),
) -> None:
    """List jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if team:
        params["team"] = team
    if state:
        params["state"] = state
    if start:
        params["start"] = True
    data = _call("GET", "/v1/jobs", params=params)["jobs"]
    if as_json:
        _print_json(data)
    else:
        Console().print(_jobs_table(data, start))


def job(
    job_id: int = typer.Argument(...),
    as_json: bool = typer.Option(False, "--json"),
    start: bool = typer.Option(False, "--start", help="a waiting job's start estimate too"),
) -> None:
    """One job: its state history, progress, preemptions and, while it waits, why."""
    data = _call("GET", f"/v1/jobs/{job_id}")
    waiting = data["state"] in ("queued", "requeued")
    if waiting:
        why = _call("GET", f"/v1/jobs/{job_id}/why", params={"start": True} if start else {})
        data["why"] = {k: why[k] for k in ("summary", "place", "start_estimate")}
    if as_json:
        _print_json(data)
        return
    con = Console()
    con.print(_jobs_table([data]))
    t = Table("time", "from", "to", "reason", title="history")
    for h in data.get("history") or []:
        t.add_row(_ts(h["at"]), safe(h["src"] or "-"), safe(h["dst"]), safe(h["reason"]))
    con.print(t)
    from cortex.cli.why import print_preemptions, print_progress  # it imports this module

    print_progress(con, data.get("progress"))
    print_preemptions(con, data.get("preemption_records") or [])
    if waiting:
        w = data["why"]
        con.print(f"waiting: {safe(w['summary'])} (cortex why {job_id})")
        if w.get("start_estimate"):
            con.print(f"estimated start: {_start(w['start_estimate'])}")


def cancel(
    job_id: int = typer.Argument(...), as_json: bool = typer.Option(False, "--json")
) -> None:
    """Cancel a job (a running one gets SIGTERM, then SIGKILL after the grace period)."""
    data = _call("POST", f"/v1/jobs/{job_id}/cancel")
    if as_json:
        _print_json(data)
    else:
        print(f"cancel requested for job {job_id} (state {data['state']})")


def logs(
    job_id: int = typer.Argument(...),
    follow: bool = typer.Option(
        False, "-f", "--follow", help="keep printing, across attempts, until the job is final"
    ),
    stderr: bool = typer.Option(False, "--stderr", help="show stderr instead of stdout"),
    tail: int = typer.Option(0, "--tail", min=0, help="last N lines only (0: all)"),
    rank: int = typer.Option(
        0,
        "--rank",
        min=0,
        help="this rank's output (rank 0's by default; on the local "
        "executor all ranks share one log)",
    ),
) -> None:
    """Print a job's output (its current attempt's, or with -f every attempt's until the job
    is final: exit 0 only then)."""
    params = {
        "stream": "stderr" if stderr else "stdout",
        "tail": tail,
        "follow": follow,
        "rank": rank,
    }
    if not follow:
        try:
            with _client() as c:
                resp = c.get(f"/v1/jobs/{job_id}/logs", params=params)
        except httpx.HTTPError as err:
            _fail(f"cannot reach {_base_url()}: {err}")
        if resp.status_code >= 400:
            _fail(f"{resp.status_code}: {_detail(resp)}")
        skipped = int(resp.headers.get("x-cortex-log-truncated-bytes", "0") or 0)
        if skipped:
            print(f"(first {skipped} bytes of the log left out)", file=sys.stderr)
        sys.stdout.write(resp.text)
        return
    try:
        with (
            _client(timeout=None) as c,
            c.stream("GET", f"/v1/jobs/{job_id}/logs", params=params) as resp,
        ):
            if resp.status_code >= 400:
                resp.read()
                _fail(f"{resp.status_code}: {_detail(resp)}")
            # One decoder for the stream: a character split across chunks stays whole.
            text = codecs.getincrementaldecoder("utf-8")(errors="replace")
            for chunk in resp.iter_bytes():
                sys.stdout.write(text.decode(chunk))
                sys.stdout.flush()
            sys.stdout.write(text.decode(b"", final=True))
    except httpx.HTTPError as err:
        _fail(f"log stream ended: {err}")
    state = _call("GET", f"/v1/jobs/{job_id}")["state"]
    if state not in FINAL_STATES:
        _fail(f"log stream ended while job {job_id} is {state}")


def queues(as_json: bool = typer.Option(False, "--json")) -> None:
    """Queues, quotas and usage."""
    data = _call("GET", "/v1/queues")
    if as_json:
        _print_json(data)
        return
    t = Table("queue", "nominal share", "borrowing limit", "weight", "running gpus", "pending")
    for q in data:
        limit = q["borrowing_limit_share"]
        t.add_row(
            safe(q["name"]),
            f"{q['nominal_share']:.2f}",
            "-" if limit is None else f"{limit:.2f}",
            f"{q['weight']:g}",
            str(q["running_gpus"]),
            str(q["pending_jobs"]),
        )
    Console().print(t)


def nodes(as_json: bool = typer.Option(False, "--json")) -> None:
    """Nodes, their accelerators and health."""
    data = _call("GET", "/v1/nodes")
    if as_json:
        _print_json(data)
        return
    t = Table("node", "flavor", "kind", "gpus", "allocated", "healthy", "schedulable", "seen")
    for n in data:
        t.add_row(
            safe(n["name"]),
            safe(n["flavor"]),
            safe(n["kind"]),
            str(n["gpus"]),
            str(n["allocated_gpus"]),
            "yes" if n["healthy"] else "no",
            "yes" if n["schedulable"] else "no",
            _ts(n["last_seen"]),
        )
    Console().print(t)


def events(
    job_id: int | None = typer.Option(None, "--job"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Recent events, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if job_id is not None:
        params["job_id"] = job_id
    data = _call("GET", "/v1/events", params=params)
    if as_json:
        _print_json(data)
        return
    t = Table("time", "kind", "job", "team", "message")
    for e in data:
        t.add_row(
            _ts(e["at"]),
            safe(e["kind"]),
            str(e["job_id"] or "-"),
            safe(e["team"] or "-"),
            safe(e["message"]),
        )
    Console().print(t)


@token_app.command("create")
def token_create(
    team: str = typer.Option(..., "--team", help="team name (created with its queue if new)"),
    label: str = typer.Option("", "--label"),
    expires_in_s: float | None = typer.Option(
        None, "--expires-in-s", min=1, help="seconds until it stops working (default: a year)"
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a team token and print it once (needs the admin token in CORTEX_TOKEN)."""
    body: dict[str, Any] = {"team": team, "label": label}
    if expires_in_s is not None:
        body["expires_in_s"] = expires_in_s
    data = _call("POST", "/v1/tokens", json=body)
    if as_json:
        _print_json(data)
    else:
        print(data["token"])


@token_app.command("list")
def token_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every token (never its secret): team, label, expiry, revocation."""
    data = _call("GET", "/v1/tokens")
    if as_json:
        _print_json(data)
        return
    t = Table("id", "team", "admin", "label", "created", "expires", "revoked")
    for k in data:
        t.add_row(
            str(k["id"]),
            safe(k["team"] or "-"),
            "yes" if k["admin"] else "no",
            safe(k["label"]),
            _day(k["created_at"]),
            _day(k["expires_at"]),
            _day(k["revoked_at"]),
        )
    Console().print(t)


@token_app.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., min=1, help="the token's id (see `cortex token list`)"),
) -> None:
    """Revoke a token: it stops working at once."""
    data = _call("DELETE", f"/v1/tokens/{token_id}")
    print(f"token {data['id']} revoked")


def _day(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"
