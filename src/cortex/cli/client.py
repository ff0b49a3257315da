"""Client commands (`cortex submit|jobs|job|cancel|logs|queues|nodes|events|token`): they talk
to the API at $CORTEX_URL with $CORTEX_TOKEN."""

from __future__ import annotations

import codecs
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from cortex.cli import http
from cortex.cli.output import (
    CONTROL,
    JSON,
    JSON_FILE,
    OUTPUT,
    PARSABLE,
    Col,
    Out,
    bad_option,
    console,
    state_code,
)

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
token_app = typer.Typer(help="Team tokens (admin).", no_args_is_help=True)
FINAL_STATES = {"completed", "failed", "cancelled", "rejected"}
STATES = (
    "queued", "admitted", "running", "preempted", "failed", "requeued", "completed",
    "rejected", "cancelled",
)  # fmt: skip
MAX_IDS = 1000  # ids per `cancel`, `hold` or `release`
MAX_JOB_ID = 2**31 - 1  # the API's bound (PostgreSQL's int4)
MAX_ERRORS = 10  # errors of one refusal printed on its line; the rest are counted
_CONTROL = CONTROL


class CallError(Exception):
    """A refused request, raised instead of ending the command (`_call(keep_going=True)`)."""


def safe(text: Any) -> str:
    """A server-provided string made safe to print: control characters shown as `?`, Rich
    markup escaped."""
    return escape(_CONTROL.sub("?", str(text)))


def _fail(msg: str, code: int = 1) -> NoReturn:
    print(f"error: {_CONTROL.sub('?', msg)}", file=sys.stderr)
    raise typer.Exit(code)


def _client(timeout: float | None = 30.0) -> http.Client | httpx.Client:
    """The standard library's client for plain HTTP (cli/http.py: a fraction of httpx's start),
    httpx for TLS or a proxy."""
    url = os.environ.get("CORTEX_URL", DEFAULT_URL).rstrip("/")
    token = os.environ.get("CORTEX_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if http.plain(url):
        return http.Client(base_url=url, headers=headers, timeout=timeout)
    httpx_client: type[httpx.Client] = http.import_httpx().Client
    return httpx_client(base_url=url, headers=headers, timeout=timeout)


def _detail(resp: Any) -> str:
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return resp.text.strip() or resp.reason_phrase
    if isinstance(detail, list):
        parts = []
        for d in detail[:MAX_ERRORS]:
            loc = ".".join(str(x) for x in d.get("loc", []) if x != "body") or "body"
            parts.append(f"{loc}: {d.get('msg', '')}")
        if len(detail) > MAX_ERRORS:  # one line stays readable for a file of 1,000 bad jobs
            parts.append(f"and {len(detail) - MAX_ERRORS} more")
        return "; ".join(parts)
    return str(detail)


def _base_url() -> str:
    return os.environ.get("CORTEX_URL", DEFAULT_URL)


def check_ids(command: str, job_ids: list[int]) -> None:
    """Several ids for one command: at most MAX_IDS, each one the API could name (exit 2 with
    one line, as for any refused option, before any request)."""
    if len(job_ids) > MAX_IDS:
        bad_option(command, "JOB_IDS", f"at most {MAX_IDS} ids at once")
    for jid in job_ids:
        if not 1 <= jid <= MAX_JOB_ID:
            bad_option(command, "JOB_IDS", f"{jid}: a job id is an integer from 1 to {MAX_JOB_ID}")


def _refused(resp: Any, source: str = "") -> NoReturn:
    """End the command for an HTTP refusal: exit 2 for refused input, else 1."""
    code = 2 if resp.status_code in (409, 413, 422, 431) else 1
    if code == 2:
        _fail(f"{source}: {_detail(resp)}" if source else _detail(resp), 2)
    _fail(f"{resp.status_code}: {_detail(resp)}")


def _call(
    method: str,
    path: str,
    *,
    retry: bool = False,
    source: str = "",
    keep_going: bool = False,
    **kw: Any,
) -> Any:
    """One request; errors end the command with one line (exit 2 for refused input). With
    `retry`, a transport error is raised for the caller to retry; with `keep_going`, an HTTP
    refusal is raised as CallError (a command acting on several ids tries them all)."""
    try:
        with _client() as c:
            resp = c.request(method, path, **kw)
    except http.transport_errors():
        if retry:
            raise
        _fail(f"cannot reach {_base_url()}")
    except http.http_errors() as err:
        _fail(f"cannot reach {_base_url()}: {err}")
    if resp.status_code == 401:
        _fail(f"unauthorized ({_detail(resp)}); set CORTEX_TOKEN")
    if keep_going and resp.status_code >= 400:
        raise CallError(f"{resp.status_code}: {_detail(resp)}")
    if resp.status_code >= 400:
        _refused(resp, source)
    ctype = resp.headers.get("content-type", "")
    return resp.json() if ctype.startswith("application/json") else resp.text


def _ts(t: float | None) -> str:
    """A moment as its time of day, with its date when that is not today."""
    if not t:
        return "-"
    at = time.localtime(t)
    same_day = at[:3] == time.localtime()[:3]
    return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", at)


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


def job_cols(start: bool = False) -> list[Col]:
    """`cortex jobs` columns, squeue's habits: ST beside the state, a waiting job's reason is
    its first blocker (else the last transition's), TIME-like age and elapsed."""
    cols = [
        Col("id", lambda j: j["id"]),
        Col("team", lambda j: j["team"]),
        Col("name", lambda j: j["name"]),
        Col("st", state_code),
        Col("state", lambda j: j["state"]),
        Col("prio", lambda j: j["priority_class"]),
        Col("gpus", lambda j: j["gpus"]),
        Col("attempt", lambda j: j["attempt"], wide=True),
        Col("submitted", lambda j: _ts(j["submitted_at"]), wide=True),
        Col("age", lambda j: _age(j["submitted_at"], j.get("ended_at"))),
        Col("elapsed", lambda j: _age(j.get("started_at"), j.get("ended_at"))),
        Col("reason", lambda j: (j.get("pending_reason") or j["reason"])[:60]),
        Col("exit", lambda j: j.get("exit_code"), wide=True),
        Col("failures", lambda j: j.get("failures"), wide=True),
        Col("preemptions", lambda j: j.get("preemptions"), wide=True),
        Col("devices", lambda j: ",".join(map(str, j.get("devices") or [])) or None, wide=True),
        Col("command", lambda j: " ".join(j.get("command") or [])[:80], wide=True),
    ]
    if start:
        cols.append(Col("start (band)", lambda j: _start(j.get("start_estimate"))))
    return cols


def jobs(
    team: str | None = typer.Option(
        None, "--team", help="one team's jobs (admin; a team token sees only its own)"
    ),
    state: str | None = typer.Option(None, "--state", help="one state (queued, running, ...)"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    start: bool = typer.Option(
        False, "--start", help="waiting jobs' start estimates (like squeue --start)"
    ),
    watch: bool = typer.Option(False, "--watch", "-w", help="redraw every --interval seconds"),
    interval_s: float = typer.Option(2.0, "--interval", min=0.5, max=3600, help="--watch period"),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """List jobs, newest first."""
    out = Out.pick("cortex jobs", output, as_json, json_file, parsable)
    if state is not None and state not in STATES:
        bad_option("cortex jobs", "--state", f"unknown state {state!r}; one of {', '.join(STATES)}")
    params: dict[str, Any] = {"limit": limit}
    if team:
        params["team"] = team
    if state:
        params["state"] = state
    if start:
        params["start"] = True

    def once() -> bool:
        data = _call("GET", "/v1/jobs", params=params)["jobs"]
        out.rows(data, data, job_cols(start))
        return False

    watch_loop(once, watch, interval_s)


def job(
    job_id: int = typer.Argument(...),
    start: bool = typer.Option(False, "--start", help="a waiting job's start estimate too"),
    watch: bool = typer.Option(
        False, "--watch", "-w", help="redraw every --interval seconds until the job is final"
    ),
    interval_s: float = typer.Option(2.0, "--interval", min=0.5, max=3600, help="--watch period"),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """One job: its state history, progress, preemptions and, while it waits, why."""
    out = Out.pick("cortex job", output, as_json, json_file, parsable)

    def once() -> bool:
        data = _call("GET", f"/v1/jobs/{job_id}")
        _show_job(out, job_id, data, start)
        return data["state"] in FINAL_STATES

    watch_loop(once, watch, interval_s)


def _show_job(out: Out, job_id: int, data: dict[str, Any], start: bool) -> None:
    waiting = data["state"] in ("queued", "requeued")
    if waiting:
        why = _call("GET", f"/v1/jobs/{job_id}/why", params={"start": True} if start else {})
        data["why"] = {k: why[k] for k in ("summary", "place", "start_estimate")}
    if out.fmt not in ("table", "wide"):
        out.rows(data, [data], job_cols())
        return
    out.emit(data)  # --json-file
    out.rows(None, [data], job_cols())
    con = console()
    t = Table("time", "from", "to", "reason", title="history")
    for h in data.get("history") or []:
        t.add_row(_ts(h["at"]), safe(h["src"] or "-"), safe(h["dst"]), safe(h["reason"]))
    con.print(t)
    from cortex.cli.why import print_preemptions, print_progress  # it imports this module

    print_progress(con, data.get("progress"))
    print_preemptions(con, data.get("preemption_records") or [])
    gates = data.get("gates")
    if gates:
        parts = ["held"] if gates.get("held") else []
        if gates.get("after_ok"):
            parts.append("afterok:" + ":".join(map(str, gates["after_ok"])))
        if gates.get("array_key"):
            limit = gates.get("array_limit")
            parts.append(f"array index {gates['array_index']}" + (f" (%{limit})" if limit else ""))
        if gates.get("time_limit_s"):
            parts.append(f"time limit {gates['time_limit_s']:g} s")
        con.print("gates: " + ", ".join(safe(p) for p in parts))
    if waiting:
        w = data["why"]
        con.print(f"waiting: {safe(w['summary'])} (cortex why {job_id})")
        if w.get("start_estimate"):
            con.print(f"estimated start: {_start(w['start_estimate'])}")


def watch_loop(once: Callable[[], bool], watch: bool, interval_s: float) -> None:
    """Run `once` (True: nothing more to watch), and with --watch again every interval, the
    screen cleared between, like `watch squeue`; Ctrl-C ends it with exit 0."""
    if not watch:
        once()
        return
    try:
        while True:
            if sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            print(f"every {interval_s:g}s: {time.strftime('%H:%M:%S')}")
            if once():
                return
            sys.stdout.flush()
            time.sleep(interval_s)
    except KeyboardInterrupt:
        return


def cancel(
    job_ids: list[int] = typer.Argument(..., help="one or more job ids"),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Cancel jobs (a running one gets SIGTERM, then SIGKILL after the grace period). Every id
    is tried; exit 1 if any could not be cancelled."""
    out = Out.pick("cortex cancel", output, as_json, json_file, parsable)
    check_ids("cortex cancel", job_ids)
    done, failed = [], []
    for jid in dict.fromkeys(job_ids):  # each id once, in the order given
        try:
            done.append(_call("POST", f"/v1/jobs/{jid}/cancel", keep_going=True))
        except CallError as err:
            failed.append({"id": jid, "error": str(err)})
            print(f"error: job {jid}: {CONTROL.sub('?', str(err))}", file=sys.stderr)
    if out.fmt == "table" and not out.json_file:
        for j in done:
            # The service answers 202 for a job already final too: nothing was asked of it.
            if j["state"] in FINAL_STATES and not j.get("cancel_requested"):
                print(f"job {j['id']} already {j['state']}: nothing to cancel")
            else:
                print(f"cancel requested for job {j['id']} (state {j['state']})")
    else:
        out.rows(done, done, job_cols())
    if failed:
        raise typer.Exit(1)


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
        except http.http_errors() as err:
            _fail(f"cannot reach {_base_url()}: {err}")
        if resp.status_code >= 400:
            _refused(resp)
        skipped = int(resp.headers.get("x-cortex-log-truncated-bytes", "0") or 0)
        if skipped:
            print(f"(first {skipped} bytes of the log left out)", file=sys.stderr)
        if resp.headers.get("x-cortex-log-attempt") == "0":  # else nothing tells "not yet"
            print(f"(job {job_id} has not started: no output yet)", file=sys.stderr)
        sys.stdout.write(resp.text)
        return
    try:
        with (
            _client(timeout=None) as c,
            c.stream("GET", f"/v1/jobs/{job_id}/logs", params=params) as resp,
        ):
            if resp.status_code >= 400:
                resp.read()
                _refused(resp)
            # One decoder for the stream: a character split across chunks stays whole.
            text = codecs.getincrementaldecoder("utf-8")(errors="replace")
            for chunk in resp.iter_bytes():
                sys.stdout.write(text.decode(chunk))
                sys.stdout.flush()
            sys.stdout.write(text.decode(b"", final=True))
    except http.http_errors() as err:
        _fail(f"log stream ended: {err}")
    state = _call("GET", f"/v1/jobs/{job_id}")["state"]
    if state not in FINAL_STATES:
        _fail(f"log stream ended while job {job_id} is {state}")


def queues(
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Queues, quotas and usage."""
    out = Out.pick("cortex queues", output, as_json, json_file, parsable)
    data = _call("GET", "/v1/queues")
    cols = [
        Col("queue", lambda q: q["name"]),
        Col("nominal share", lambda q: f"{q['nominal_share']:.2f}"),
        Col(
            "borrowing limit",
            lambda q: (
                None if q["borrowing_limit_share"] is None else f"{q['borrowing_limit_share']:.2f}"
            ),
        ),
        Col("weight", lambda q: f"{q['weight']:g}"),
        Col("flavor quotas", lambda q: _flavor_quotas(q.get("flavor_quotas") or {})),
        Col("running gpus", lambda q: q["running_gpus"]),
        Col("pending", lambda q: q["pending_jobs"]),
    ]
    out.rows(data, data, cols)


def _flavor_quotas(quotas: dict[str, dict[str, float]]) -> str | None:
    """`H200-SXM: nominal 0.75 borrow 0.25; H100-SXM5: nominal 8`: what each entry sets (a share
    of the flavor, or a GPU count); what it leaves out follows the queue's shares."""
    parts = []
    for flavor, fq in quotas.items():
        nominal = fq.get("nominal_gpus", fq.get("nominal_share"))
        limit = fq.get("borrowing_limit_gpus", fq.get("borrowing_limit_share"))
        said = [f"{k} {v:g}" for k, v in (("nominal", nominal), ("borrow", limit)) if v is not None]
        parts.append(" ".join([f"{flavor}:", *said]))
    return "; ".join(parts) or None


def nodes(
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Nodes, their accelerators and health."""
    out = Out.pick("cortex nodes", output, as_json, json_file, parsable)
    data = _call("GET", "/v1/nodes")
    cols = [
        Col("node", lambda n: n["name"]),
        Col("flavor", lambda n: n["flavor"]),
        Col("kind", lambda n: n["kind"]),
        Col("gpus", lambda n: n["gpus"]),
        Col("allocated", lambda n: n["allocated_gpus"]),
        Col("healthy", lambda n: bool(n["healthy"])),
        Col("schedulable", lambda n: bool(n["schedulable"])),
        Col("seen", lambda n: _ts(n["last_seen"])),
    ]
    out.rows(data, data, cols)


def events(
    job_id: int | None = typer.Option(None, "--job"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Recent events, newest first."""
    out = Out.pick("cortex events", output, as_json, json_file, parsable)
    params: dict[str, Any] = {"limit": limit}
    if job_id is not None:
        params["job_id"] = job_id
    data = _call("GET", "/v1/events", params=params)
    cols = [
        Col("time", lambda e: _ts(e["at"])),
        Col("kind", lambda e: e["kind"]),
        Col("job", lambda e: e["job_id"]),
        Col("team", lambda e: e["team"]),
        Col("message", lambda e: e["message"]),
    ]
    out.rows(data, data, cols)


@token_app.command("create")
def token_create(
    team: str = typer.Option(..., "--team", help="team name (created with its queue if new)"),
    label: str = typer.Option("", "--label"),
    expires_in_s: float | None = typer.Option(
        None,
        "--expires-in-s",
        min=1,
        max=10 * 365 * 86400,  # the API's bound; the service caps it at CORTEX_MAX_TOKEN_TTL_S
        help="seconds until it stops working (default and cap: the service's "
        "CORTEX_MAX_TOKEN_TTL_S, a year)",
    ),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
) -> None:
    """Create a team token and print it once (needs the admin token in CORTEX_TOKEN)."""
    out = Out.pick("cortex token create", output, as_json, json_file)
    body: dict[str, Any] = {"team": team, "label": label}
    if expires_in_s is not None:
        body["expires_in_s"] = expires_in_s
    data = _call("POST", "/v1/tokens", json=body)
    got_s = data.get("expires_in_s")
    if expires_in_s is not None and got_s is not None and got_s < expires_in_s:
        # The service cut it to its cap: said on stderr, so a script reading the token from
        # stdout is unchanged (it was cut without a word).
        print(
            "note: cut to the service's cap (CORTEX_MAX_TOKEN_TTL_S): this token expires in "
            f"{got_s:.0f} s ({got_s / 86400:.4g} days), not {expires_in_s:.0f} s",
            file=sys.stderr,
        )
    if not out.emit(data):
        print(data["token"])


@token_app.command("list")
def token_list(
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Every token (never its secret): team, label, expiry, revocation."""
    out = Out.pick("cortex token list", output, as_json, json_file, parsable)
    data = _call("GET", "/v1/tokens")
    cols = [
        Col("id", lambda k: k["id"]),
        Col("team", lambda k: k["team"]),
        Col("admin", lambda k: bool(k["admin"])),
        Col("label", lambda k: k["label"]),
        Col("created", lambda k: _day(k["created_at"])),
        Col("expires", lambda k: _day(k["expires_at"])),
        Col("revoked", lambda k: _day(k["revoked_at"])),
    ]
    out.rows(data, data, cols)


@token_app.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., min=1, help="the token's id (see `cortex token list`)"),
) -> None:
    """Revoke a token: it stops working at once. Revoking one revoked already is no error:
    it says when it was (exit 0)."""
    data = _call("DELETE", f"/v1/tokens/{token_id}")
    if data.get("already_revoked"):
        print(f"token {data['id']} was already revoked at {_ts(data['revoked_at'])}")
    else:
        print(f"token {data['id']} revoked")


def _day(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"
