"""`cortex nodes [--unhealthy]` (like `sinfo -R`: nodes out of service or failing, with
reasons), `cortex drain NODE --reason R [--burn-in-s S]` and `cortex undrain NODE` (admin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

from cortex.cli import client
from cortex.cli.client import _call, _print_json, _ts, safe
from cortex.cli.output import JSON, JSON_FILE, OUTPUT, PARSABLE, Col, Out


def nodes(
    unhealthy: bool = typer.Option(
        False, "--unhealthy", help="only nodes down, drained or with failures, with reasons"
    ),
    output: str = OUTPUT,
    as_json: bool = JSON,
    json_file: Path | None = JSON_FILE,
    parsable: bool = PARSABLE,
) -> None:
    """Nodes, their accelerators and health; --unhealthy lists the failing ones and why."""
    if not unhealthy:
        client.nodes(output, as_json, json_file, parsable)
        return
    out = Out.pick("cortex nodes", output, as_json, json_file, parsable)
    data = _call("GET", "/v1/nodes/health", params={"unhealthy": True})
    cols = [
        Col("node", lambda n: n["name"]),
        Col("state", lambda n: n["state"]),
        Col("score", lambda n: f"{n['score']:.2f}"),
        Col("node failures", lambda n: n["node_failures"]),
        Col("job failures", lambda n: n["job_failures"]),
        Col("since", lambda n: _ts(n["since"])),
        Col("back at", lambda n: _ts(n["return_at"]) if n["return_at"] else "-"),
        Col("reason", lambda n: n["reason"]),
    ]
    out.rows(data, data, cols)


def drain(
    node: str = typer.Argument(..., help="the node's name"),
    reason: str = typer.Option(..., "--reason", help="why (shown by cortex nodes --unhealthy)"),
    burn_in_s: float | None = typer.Option(
        None,
        "--burn-in-s",
        min=0,
        max=30 * 86400,  # the API's bound (control/api/node_health.py MAX_BURN_IN_S)
        help="back in service after this long (default: undrain)",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Take a node out of service (admin): its jobs finish, nothing new starts there."""
    body: dict[str, Any] = {"reason": reason}
    if burn_in_s is not None:
        body["burn_in_s"] = burn_in_s
    data = _call("POST", f"/v1/nodes/{quote(node, safe='')}/drain", json=body, source="--reason")
    if as_json:
        _print_json(data)
        return
    back = data.get("return_at")
    print(f"node {safe(node)} drained" + (f"; back at {_ts(back)}" if back else ""))


def undrain(node: str = typer.Argument(..., help="the node's name")) -> None:
    """Return a drained node to service (admin)."""
    _call("POST", f"/v1/nodes/{quote(node, safe='')}/undrain")
    print(f"node {safe(node)} undrained")
