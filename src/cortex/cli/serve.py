"""`cortex serve`: the control plane (API, scheduler loop, local executor) in one process."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from cortex.control.config import Settings


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="port to listen on"),
    home: Path | None = typer.Option(
        None,
        "--home",
        help="state directory (SQLite file, job runs); default $CORTEX_HOME or ~/.cortex",
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="SQLAlchemy URL; default $CORTEX_DATABASE_URL or SQLite in --home",
    ),
    slots: int | None = typer.Option(
        None, "--slots", min=1, help="CPU slots to offer when the machine has no GPU"
    ),
    grace_s: float | None = typer.Option(
        None, "--grace-s", min=0, help="seconds between SIGTERM and SIGKILL (default 30)"
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn and service log level"),
) -> None:
    """Start the control plane. At first start it prints the admin token once (or takes
    $CORTEX_ADMIN_TOKEN)."""
    import uvicorn

    from cortex.control.service import Service

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env(home=home, database_url=database_url, slots=slots, grace_s=grace_s)
    svc = Service(settings)
    if svc.new_admin_token:
        typer.echo(f"admin token (shown once, keep it): {svc.new_admin_token}", err=False)
    typer.echo(
        f"cortex control plane on http://{host}:{port} "
        f"({svc.loop.node_name}: {len(svc.loop.all_devices)} x {svc.loop.flavor}; "
        f"store {settings.url.split('://')[0]}; recovered {svc.recovered})",
        err=True,
    )
    # The event loop, the submission writer and the scheduler loop share the GIL; a shorter
    # switch interval than the default 5 ms keeps one from holding requests up behind another.
    sys.setswitchinterval(0.001)
    uvicorn.run(svc.app, host=host, port=port, log_level=log_level.lower(), access_log=False)
