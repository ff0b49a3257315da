"""The `cortex` command. One module per command group; bad input exits 2 with one line."""

from __future__ import annotations

import sys

import typer

from cortex.cli import client as client_cmd
from cortex.cli import fleet as fleet_cmd
from cortex.cli import goodput as goodput_cmd
from cortex.cli import nodes as nodes_cmd
from cortex.cli import plan as plan_cmd
from cortex.cli import power as power_cmd
from cortex.cli import serve as serve_cmd
from cortex.cli import sim as sim_cmd
from cortex.cli import trace as trace_cmd
from cortex.cli import why as why_cmd
from cortex.errors import InputError

app = typer.Typer(
    help="Cortex: the operating layer for AI training superclusters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("sim")(sim_cmd.sim)
app.add_typer(fleet_cmd.app, name="fleet")
app.add_typer(trace_cmd.app, name="trace")
app.add_typer(power_cmd.app, name="power")
app.command("serve")(serve_cmd.serve)
app.command("plan")(plan_cmd.plan)
for _name in ("submit", "jobs", "job", "cancel", "logs", "queues", "events"):
    app.command(_name)(getattr(client_cmd, _name))
app.add_typer(client_cmd.token_app, name="token")
app.command("why")(why_cmd.why)
app.command("queue")(why_cmd.queue)
app.command("share")(why_cmd.share)
app.command("goodput")(goodput_cmd.goodput)
for _name in ("nodes", "drain", "undrain"):  # node health (cli/nodes.py)
    app.command(_name)(getattr(nodes_cmd, _name))


def main() -> None:
    """Entry point. Typer reports bad options itself (usage, exit 2); input files that fail
    validation raise InputError, printed here on one line with exit code 2."""
    try:
        app()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
