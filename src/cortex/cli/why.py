"""`cortex why JOB` and `cortex queue [--team T]`: why a job waits, and where it stands."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cortex.cli.client import _call, _print_json, _ts, safe


def _num(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def why(
    job_id: int = typer.Argument(..., min=1, help="the job's id"),
    as_json: bool = typer.Option(False, "--json"),
    start: bool = typer.Option(False, "--start", help="also estimate when it starts"),
) -> None:
    """Why a job is not running: every blocker from the last scheduling pass, ranked, with its
    numbers and a hint; whether it can ever run; its place in the queue."""
    data = _call("GET", f"/v1/jobs/{job_id}/why", params={"start": True} if start else {})
    if as_json:
        _print_json(data)
        return
    con = Console(highlight=False)
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
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Waiting jobs per cluster queue in queue order, with the jobs ahead of each (other
    teams' jobs are counted, not named)."""
    params: dict[str, Any] = {"limit": limit}
    if team:
        params["team"] = team
    data = _call("GET", "/v1/queue", params=params)
    if as_json:
        _print_json(data)
        return
    con = Console(highlight=False)
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
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fair share per team and flavor (like sshare): guaranteed, used, borrowed, idle and lent
    GPUs, and the weighted dominant share that orders the queues (lowest first)."""
    params = {"team": team} if team else {}
    data = _call("GET", "/v1/share", params=params)
    if as_json:
        _print_json(data)
        return
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
    Console(highlight=False).print(t)
