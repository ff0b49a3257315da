"""`cortex why JOB` and `cortex queue [--team T]`: why a job waits, and where it stands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cortex.cli.client import _call, _ts, safe
from cortex.cli.output import JSON, JSON_FILE, OUTPUT, PARSABLE, Col, Out, console

BLOCKER_COLS = [
    Col("rank", lambda b: b["rank"]),
    Col("code", lambda b: b["code"]),
    Col("requested", lambda b: b.get("requested_gpus")),
    Col("free", lambda b: b.get("free_gpus")),
    Col("free in quota", lambda b: b.get("free_in_quota")),
    Col("largest block", lambda b: b.get("largest_block_gpus")),
    Col("power MW", lambda b: b.get("power_headroom_mw")),
    Col("message", lambda b: b["message"]),
    Col("hint", lambda b: b.get("hint")),
]


def _num(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def why(
    job_id: int = typer.Argument(..., min=1, help="the job's id"),
    start: bool = typer.Option(False, "--start", help="also estimate when it starts"),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Why a job is not running: every blocker from the last scheduling pass, ranked, with its
    numbers and a hint; whether it can ever run; its place in the queue."""
    out = Out.pick("cortex why", output, as_json, json_file, parsable)
    data = _call("GET", f"/v1/jobs/{job_id}/why", params={"start": True} if start else {})
    if out.fmt == "parsable" or out.structured:
        out.rows(data, data["blockers"], BLOCKER_COLS)
        return
    out.emit(data)
    con = console()
    con.print(f"job {data['job_id']} is {safe(data['state'])}: {safe(data['summary'])}")
    if data["never"]:
        con.print("it can never run under the fleet and quotas it was judged against")
    place = data.get("place")
    if place:
        con.print(
            f"queue {safe(place['queue'])}: position {place['position']}, "
            f"{place['ahead_total']} jobs ahead in all queues "
            f"({place['ahead_in_queue']} in its own)"
        )
    pr = data.get("priority")
    if pr:
        con.print(
            f"ordered by {safe(pr['ordering'])}: class {safe(pr['priority_class'])} "
            f"({_num(pr['priority'])}), its queue's dominant share "
            f"{pr['queue_dominant_share']:.3f}, submitted {_ts(pr['submitted_at'])}"
        )
    if data.get("start_estimate"):
        from cortex.cli.client import _start

        con.print(f"estimated start: {_start(data['start_estimate'])}")
    if data.get("as_of"):
        con.print(f"as of the scheduling pass at {_ts(data['as_of'])}")
    if not data["blockers"]:
        return
    t = Table("#", "code", "requested", "free", "free in quota", "largest block", "power MW", "why")
    for b in data["blockers"]:
        t.add_row(
            str(b["rank"]),
            safe(b["code"]),
            _num(b.get("requested_gpus")),
            _num(b.get("free_gpus")),
            _num(b.get("free_in_quota")),
            _num(b.get("largest_block_gpus")),
            _num(b.get("power_headroom_mw")),
            safe(b["message"]),
        )
    con.print(t)
    for b in data["blockers"]:
        if b.get("hint"):
            con.print(f"hint ({safe(b['code'])}): {safe(b['hint'])}")


def queue(
    team: str | None = typer.Option(None, "--team", help="one team's queue (admin: any)"),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="jobs shown per queue"),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Waiting jobs per cluster queue in queue order, with the jobs ahead of each (other
    teams' jobs are counted, not named)."""
    out = Out.pick("cortex queue", output, as_json, json_file, parsable)
    params: dict[str, Any] = {"limit": limit}
    if team:
        params["team"] = team
    data = _call("GET", "/v1/queue", params=params)
    if out.fmt == "parsable" or out.structured:
        rows = [{**j, "queue": q["queue"]} for q in data["queues"] for j in q["jobs"]]
        out.rows(data, rows, QUEUE_COLS)
        return
    out.emit(data)
    con = console()
    for q in data["queues"]:
        t = Table(
            "pos", "id", "name", "gpus", "ahead (own)", "ahead (others)", "reason",
            title=f"{safe(q['queue'])}: {q['pending']} waiting",
        )  # fmt: skip
        for j in q["jobs"]:
            t.add_row(
                str(j["position"]),
                str(j["id"]),
                safe(j["name"]),
                str(j["gpus"]),
                str(j["ahead_in_queue"]),
                str(j["ahead_other_queues"]),
                safe(j["top_reason"] or "-"),
            )
        con.print(t)


QUEUE_COLS = [
    Col("queue", lambda j: j["queue"]),
    Col("pos", lambda j: j["position"]),
    Col("id", lambda j: j["id"]),
    Col("name", lambda j: j["name"]),
    Col("gpus", lambda j: j["gpus"]),
    Col("ahead (own)", lambda j: j["ahead_in_queue"]),
    Col("ahead (others)", lambda j: j["ahead_other_queues"]),
    Col("reason", lambda j: j["top_reason"]),
]


def print_progress(con: Console, p: dict[str, Any] | None) -> None:
    """`cortex job`: the current attempt's progress line."""
    if not p:
        return
    parts = [f"attempt {p['attempt']}" if p.get("attempt") else "", f"step {_num(p.get('step'))}"]
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4g}")
    if p.get("samples_per_s") is not None:
        parts.append(f"{p['samples_per_s']:.1f} samples/s")
    if p.get("reported_at"):
        parts.append(f"at {_ts(p['reported_at'])}")
    if p.get("checkpoint_at"):
        step = _num(p.get("checkpoint_step"))
        parts.append(f"last checkpoint step {step} at {_ts(p['checkpoint_at'])}")
    con.print("progress: " + ", ".join(safe(x) for x in parts if x))


def print_preemptions(con: Console, recs: list[dict[str, Any]]) -> None:
    """`cortex job`: each preemption, newest first."""
    if not recs:
        return
    t = Table(
        "time", "attempt", "by", "rule", "min since checkpoint", "requeue by",
        title="preemptions",
    )  # fmt: skip
    for r in recs:
        lost = r.get("since_checkpoint_s")
        t.add_row(
            _ts(r["at"]),
            str(r["attempt"]),
            f"job {r['preemptor_id']}" if r.get("preemptor_id") is not None else "power",
            safe(r["rule"]),
            "-" if lost is None else f"{lost / 60:.1f}",
            _ts(r["requeue_by"]),
        )
    con.print(t)


def share(
    team: str | None = typer.Option(None, "--team", help="one team (admin: any)"),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Fair share per team and flavor (like sshare): guaranteed, used, borrowed, idle and lent
    GPUs, and the weighted dominant share that orders the queues (lowest first)."""
    out = Out.pick("cortex share", output, as_json, json_file, parsable)
    params = {"team": team} if team else {}
    data = _call("GET", "/v1/share", params=params)
    if out.fmt == "parsable" or out.structured:
        rows = [
            {**f, "team": r["team"], "weight": r["weight"], "dominant_share": r["dominant_share"]}
            for r in data["teams"]
            for f in r["flavors"]
        ]
        out.rows(data, rows, SHARE_COLS)
        return
    out.emit(data)
    t = Table(
        "team", "flavor", "guaranteed", "limit", "used", "borrowed", "idle", "lent", "weight",
        "dominant share",
    )  # fmt: skip
    for row in data["teams"]:
        for f in row["flavors"]:
            t.add_row(
                safe(row["team"]),
                safe(f["flavor"]),
                str(f["guaranteed"]),
                _num(f["borrowing_limit"]) if f["borrowing_limit"] is not None else "none",
                str(f["used"]),
                str(f["borrowed"]),
                str(f["idle"]),
                str(f["lent"]),
                f"{row['weight']:g}",
                f"{row['dominant_share']:.3f}",
            )
    for c in data["cohort"]:
        t.add_row(
            "(cohort)", safe(c["flavor"]), str(c["total"]), "-", str(c["used"]),
            str(c["borrowed"]), "-", "-", "-", "-",
        )  # fmt: skip
    console().print(t)


SHARE_COLS = [
    Col("team", lambda f: f["team"]),
    Col("flavor", lambda f: f["flavor"]),
    Col("guaranteed", lambda f: f["guaranteed"]),
    Col("limit", lambda f: f["borrowing_limit"]),
    Col("used", lambda f: f["used"]),
    Col("borrowed", lambda f: f["borrowed"]),
    Col("idle", lambda f: f["idle"]),
    Col("lent", lambda f: f["lent"]),
    Col("weight", lambda f: f["weight"]),
    Col("dominant share", lambda f: f"{f['dominant_share']:.3f}"),
]
