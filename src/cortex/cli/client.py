"""Client commands (`cortex submit|jobs|job|cancel|logs|queues|nodes|events|token`): they talk
to the API at $CORTEX_URL with $CORTEX_TOKEN."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
import yaml
from rich.console import Console
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8080"
token_app = typer.Typer(help="Team tokens (admin).", no_args_is_help=True)


def _fail(msg: str, code: int = 1) -> NoReturn:
    print(f"error: {msg}", file=sys.stderr)
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


def _call(method: str, path: str, **kw: Any) -> Any:
    try:
        with _client() as c:
            resp = c.request(method, path, **kw)
    except httpx.HTTPError as err:
        _fail(f"cannot reach {os.environ.get('CORTEX_URL', DEFAULT_URL)}: {err}")
    if resp.status_code == 401:
        _fail(f"unauthorized ({_detail(resp)}); set CORTEX_TOKEN")
    if resp.status_code in (413, 422):
        _fail(_detail(resp), 2)
    if resp.status_code >= 400:
        _fail(f"{resp.status_code}: {_detail(resp)}")
    ctype = resp.headers.get("content-type", "")
    return resp.json() if ctype.startswith("application/json") else resp.text


def _ts(t: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) if t else "-"


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def _jobs_table(jobs: list[dict[str, Any]]) -> Table:
    t = Table("id", "team", "name", "state", "prio", "gpus", "attempt", "submitted", "reason")
    for j in jobs:
        t.add_row(
            str(j["id"]),
            j["team"],
            j["name"],
            j["state"],
            j["priority_class"],
            str(j["gpus"]),
            str(j["attempt"]),
            _ts(j["submitted_at"]),
            j["reason"][:60],
        )
    return t


def submit(
    file: Path = typer.Argument(..., help="job YAML: one job, a list, or a list under `jobs:`"),
    as_json: bool = typer.Option(False, "--json", help="print the created jobs as JSON"),
) -> None:
    """Submit the jobs in a YAML file (JobSpec fields plus command, env, working_dir)."""
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as err:
        _fail(f"{file}: {err.strerror or err}", 2)
    except yaml.YAMLError as err:
        _fail(f"{file}: <yaml>: {str(err).splitlines()[0]}", 2)
    items = data.get("jobs") if isinstance(data, dict) and "jobs" in data else data
    items = items if isinstance(items, list) else [items]
    created = []
    for i, item in enumerate(items):
        try:
            created.append(_call("POST", "/v1/jobs", json=item))
        except typer.Exit:
            if len(items) > 1:
                print(
                    f"error: {file}: job [{i}] rejected; {len(created)} submitted before it",
                    file=sys.stderr,
                )
            raise
    if as_json:
        _print_json(created)
    else:
        for j in created:
            print(f"submitted job {j['id']} ({j['name']})")


def jobs(
    team: str | None = typer.Option(None, "--team"),
    state: str | None = typer.Option(None, "--state"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if team:
        params["team"] = team
    if state:
        params["state"] = state
    data = _call("GET", "/v1/jobs", params=params)["jobs"]
    if as_json:
        _print_json(data)
    else:
        Console().print(_jobs_table(data))


def job(job_id: int = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """One job and its state history."""
    data = _call("GET", f"/v1/jobs/{job_id}")
    if as_json:
        _print_json(data)
        return
    con = Console()
    con.print(_jobs_table([data]))
    t = Table("time", "from", "to", "reason", title="history")
    for h in data.get("history") or []:
        t.add_row(_ts(h["at"]), h["src"] or "-", h["dst"], h["reason"])
    con.print(t)


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
    follow: bool = typer.Option(False, "-f", "--follow", help="keep printing until the run ends"),
    stderr: bool = typer.Option(False, "--stderr", help="show stderr instead of stdout"),
    tail: int = typer.Option(0, "--tail", min=0, help="last N lines only (0: all)"),
) -> None:
    """Print a job's output."""
    params = {"stream": "stderr" if stderr else "stdout", "tail": tail, "follow": follow}
    if not follow:
        sys.stdout.write(_call("GET", f"/v1/jobs/{job_id}/logs", params=params))
        return
    try:
        with (
            _client(timeout=None) as c,
            c.stream("GET", f"/v1/jobs/{job_id}/logs", params=params) as resp,
        ):
            if resp.status_code >= 400:
                resp.read()
                _fail(f"{resp.status_code}: {_detail(resp)}")
            for chunk in resp.iter_bytes():
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
    except httpx.HTTPError as err:
        _fail(f"log stream ended: {err}")


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
            q["name"],
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
            n["name"],
            n["flavor"],
            n["kind"],
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
        t.add_row(_ts(e["at"]), e["kind"], str(e["job_id"] or "-"), e["team"] or "-", e["message"])
    Console().print(t)


@token_app.command("create")
def token_create(
    team: str = typer.Option(..., "--team", help="team name (created with its queue if new)"),
    label: str = typer.Option("", "--label"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a team token and print it once (needs the admin token in CORTEX_TOKEN)."""
    data = _call("POST", "/v1/tokens", json={"team": team, "label": label})
    if as_json:
        _print_json(data)
    else:
        print(data["token"])
