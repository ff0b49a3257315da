"""`cortex serve`: the control plane (API, scheduler loop, local executor) in one process.
Every flag is also a CORTEX_<NAME> variable (see cortex.control.settings); flags win."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from cortex.control.settings import Settings


def serve(
    host: str | None = typer.Option(None, "--host", help="address to listen on (127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="port to listen on (8080)"),
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
        None, "--slots", help="CPU slots to offer when the machine has no GPU"
    ),
    grace_s: float | None = typer.Option(
        None, "--grace-s", help="seconds between SIGTERM and SIGKILL (default 30)"
    ),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate: serve HTTPS"),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert"),
    log_level: str | None = typer.Option(
        None, "--log-level", help="critical, error, warning, info (default) or debug"
    ),
    log_format: str | None = typer.Option(
        None, "--log-format", help="text (default) or json (one object a line)"
    ),
    run_as: str | None = typer.Option(
        None, "--run-as", help='team -> Unix user of its jobs: "team=user,*=user" (root service)'
    ),
    allow_same_user: bool | None = typer.Option(
        None,
        "--allow-same-user/--no-allow-same-user",
        help="run jobs as this service's own user (default: only for a non-root service "
        "without --run-as, with a warning)",
    ),
    power_policy: str | None = typer.Option(
        None, "--power-policy", help="none (default), admit or cap: the twin's power policies"
    ),
    site_cap_kw: float | None = typer.Option(
        None, "--site-cap-kw", help="facility power cap in kW (needed by admit and cap)"
    ),
    rack_cap_kw: float | None = typer.Option(
        None, "--rack-cap-kw", help="IT power cap per rack in kW (bounds each GPU's limit)"
    ),
    outdoor_temp_c: float | None = typer.Option(
        None, "--outdoor-temp-c", help="outdoor temperature at start (PUT /v1/power updates it)"
    ),
    executor: str | None = typer.Option(
        None, "--executor", help="local (this machine, default) or ray (a Ray cluster)"
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="the Ray cluster to join (--executor ray), e.g. HOST:6379"
    ),
    hot_spares: int | None = typer.Option(
        None, "--hot-spares", help="nodes per pod held as hot spares for gangs that lose one (0)"
    ),
    burn_in: bool | None = typer.Option(
        None,
        "--burn-in/--no-burn-in",
        help="a node back from a drain runs a diagnostic first, and returns only if it passes",
    ),
    burn_in_timeout_s: float | None = typer.Option(
        None, "--burn-in-timeout-s", help="the diagnostic's time limit (300)"
    ),
) -> None:
    """Start the control plane. At first start it prints the admin token once (or takes
    $CORTEX_ADMIN_TOKEN; changing that variable revokes the previous admin token)."""
    settings = Settings.from_env(
        host=host,
        port=port,
        home=home,
        database_url=database_url,
        slots=slots,
        grace_s=grace_s,
        tls_cert=tls_cert,
        tls_key=tls_key,
        log_level=log_level.lower() if log_level else None,
        log_format=log_format.lower() if log_format else None,
        run_as=run_as,
        allow_same_user=allow_same_user,
        power_policy=power_policy,
        site_cap_kw=site_cap_kw,
        rack_cap_kw=rack_cap_kw,
        outdoor_temp_c=outdoor_temp_c,
        executor=executor,
        ray_address=ray_address,
        hot_spares=hot_spares,
        burn_in=burn_in,
        burn_in_timeout_s=burn_in_timeout_s,
    )
    _run(settings)


def _unreachable(settings: Settings, err: Exception) -> str:
    """One line for a database the service could not use: which one (no password), what the
    driver said, and for a timeout the setting that bounds the wait."""
    from cortex.control.db import shown

    orig = getattr(err, "orig", None) or err
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    line = f"{shown(settings.url)}: {first}"
    if type(orig).__name__ == "ConnectionTimeout":  # psycopg's; no import for SQLite stores
        line += (
            f" (no answer within {settings.db_connect_timeout_s} s: CORTEX_DB_CONNECT_TIMEOUT_S)"
        )
    return line


def _run(settings: Settings) -> None:
    """Start the service on these settings and serve until stopped."""
    import uvicorn

    from cortex.control import logfmt
    from cortex.control.httpcap import capped_protocol
    from cortex.control.service import Service
    from cortex.executors.local.users import PrivilegeError

    logfmt.configure(settings.log_level, settings.log_format)
    from sqlalchemy.exc import OperationalError

    from cortex.control.homelock import hold_home

    lock = hold_home(settings.home)  # held until this process ends; InputError: exit 2
    try:
        svc = Service(settings)
    except OperationalError as err:
        typer.echo(f"error: serve: database: {_unreachable(settings, err)}", err=True)
        raise typer.Exit(2) from None
    except PrivilegeError as err:
        typer.echo(f"error: serve: {err}", err=True)
        raise typer.Exit(2) from None
    if svc.new_admin_token:
        typer.echo(f"admin token (shown once, keep it): {svc.new_admin_token}", err=False)
    scheme = "https" if settings.tls_cert else "http"
    typer.echo(
        f"cortex control plane on {scheme}://{settings.host}:{settings.port} "
        f"({svc.loop.node_name}: {len(svc.loop.all_devices)} x {svc.loop.flavor}; "
        f"store {settings.url.split('://')[0]}; recovered {svc.recovered})",
        err=True,
    )
    # The event loop, the submission writer and the scheduler loop share the GIL; a shorter
    # switch interval than the default 5 ms keeps one from holding requests up behind another.
    sys.setswitchinterval(0.001)
    uvicorn.run(
        svc.app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's loggers go through ours (text or JSON)
        access_log=False,
        # Not behind a proxy by default, and nothing reads the client address: the middleware
        # that rewrites it from X-Forwarded-* headers is a cost on every request for nothing.
        proxy_headers=False,
        server_header=False,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        # The head is capped as it arrives (the guard middleware checks the parsed headers too).
        http=capped_protocol(settings.max_header_bytes + 1024),
    )
    os.close(lock)  # the service has shut down (uvicorn's lifespan closed it)
