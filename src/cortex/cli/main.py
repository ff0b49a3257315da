"""The `cortex` command. One module per command group; bad input exits 2 with one line.

Commands are imported when run, not at start (`LazyGroup`): a client command such as
`cortex jobs` must not pay for the twin, the scheduler or the server stack (numpy, FastAPI,
SQLAlchemy), so it starts in a fraction of the 300 ms a user notices. Click's documented
pattern for lazy subcommands; tests/cli/test_lazy_imports.py keeps it so."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

import typer
from typer.core import TyperGroup

from cortex.gcscope import collector_scope, end_process_now, leave_heap_to_os

try:  # built on Typer 0.29's internals; with another Typer, plain Typer (only slower)
    from cortex.cli import fastparams
except ImportError:  # pragma: no cover - the Typer the project installs has them
    fastparams = None  # type: ignore[assignment]

if TYPE_CHECKING:  # Typer's own Click (vendored); `import click` would load a second one
    from types import FrameType

    from typer._click import Command, Context, HelpFormatter

# name: (module, attribute, command class or None, short help). A Typer attribute is a group.
LAZY: dict[str, tuple[str, str, str | None, str]] = {
    "sim": ("cortex.cli.sim", "sim", None, "Run the digital twin."),
    "fleet": ("cortex.cli.fleet", "app", None, "Fleets: presets and files."),
    "trace": ("cortex.cli.trace", "app", None, "Cluster traces."),
    "power": ("cortex.cli.power", "app", None, "Power: the swing of one large job."),
    "serve": ("cortex.cli.serve", "serve", None, "Run the control plane."),
    "plan": ("cortex.cli.plan", "plan", None, "Plan accelerator orders, halls and cash."),
    "submit": ("cortex.cli.submit", "submit", "SubmitCommand", "Submit jobs (a file or -- CMD)."),
    "jobs": ("cortex.cli.client", "jobs", None, "List jobs, newest first."),
    "job": ("cortex.cli.client", "job", None, "One job: history, progress, why it waits."),
    "cancel": ("cortex.cli.client", "cancel", None, "Cancel jobs."),
    "hold": ("cortex.cli.holds", "hold", None, "Hold waiting jobs."),
    "release": ("cortex.cli.holds", "release", None, "Release held jobs."),
    "logs": ("cortex.cli.client", "logs", None, "Print a job's output."),
    "queues": ("cortex.cli.client", "queues", None, "Queues, quotas and usage."),
    "nodes": ("cortex.cli.nodes", "nodes", None, "Nodes, their accelerators and health."),
    "drain": ("cortex.cli.nodes", "drain", None, "Take a node out of service (admin)."),
    "undrain": ("cortex.cli.nodes", "undrain", None, "Return a drained node to service (admin)."),
    "events": ("cortex.cli.client", "events", None, "Recent events, newest first."),
    "token": ("cortex.cli.client", "token_app", None, "Team tokens (admin)."),
    "why": ("cortex.cli.why", "why", None, "Why a job is not running."),
    "queue": ("cortex.cli.why", "queue", None, "Waiting jobs per queue, in order."),
    "share": ("cortex.cli.why", "share", None, "Fair share per team and flavor."),
    "goodput": ("cortex.cli.goodput", "goodput", None, "Goodput and where the rest went."),
}


class LazyGroup(TyperGroup):
    """Commands registered eagerly (`app.command`) work as before; those in LAZY are imported
    on first use and turned into Click commands the way Typer would."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if fastparams is not None:  # the root's own options (--version, --help, completion)
            fastparams.install(self, ctx)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY})

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        got = super().get_command(ctx, cmd_name)
        if got is not None or cmd_name not in LAZY:
            if got is not None and fastparams is not None:
                fastparams.install(got, ctx)
            return got
        module_name, attr, cls_name, _ = LAZY[cmd_name]
        # Importing a command's modules (the twin's: ~0.5 s) builds thousands of long-lived
        # objects: young collections rare meanwhile (cortex/gcscope.py).
        with collector_scope(freeze=False):
            module = importlib.import_module(module_name)
        obj = getattr(module, attr)
        cmd: Command
        if isinstance(obj, typer.Typer):
            # A group even with one command (`power swing`): get_command would collapse it.
            cmd = typer.main.get_group(obj)
        else:
            sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            cls = getattr(module, cls_name) if cls_name else None
            sub.command(cmd_name, **({"cls": cls} if cls else {}))(obj)
            cmd = typer.main.get_command(sub)
        cmd.name = cmd_name
        _plain_help(cmd)
        if fastparams is not None:
            fastparams.install(cmd, ctx)
        self.commands[cmd_name] = cmd
        return cmd

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """`cortex --help` lists the commands from LAZY's short help, importing none."""
        rows = [(name, LAZY[name][3]) for name in sorted(LAZY)]
        rows += [
            (name, cmd.get_short_help_str())
            for name, cmd in sorted(self.commands.items())
            if name not in LAZY and not cmd.hidden
        ]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


def _plain_help(cmd: Command) -> None:
    """Help in Click's plain layout, as the root's own (`rich_markup_mode=None`): Typer's Rich
    panels import typer.rich_utils, which loads rich.markdown (markdown-it) and rich.traceback
    (pygments) even when no Markdown is rendered, about 100 ms of CPU on every `CMD --help`
    (bench/RESULTS.md §46). Same text, option by option: tests/cli/test_cli_help_plain.py."""
    cmd.rich_markup_mode = None  # type: ignore[attr-defined]
    for sub in getattr(cmd, "commands", {}).values():
        _plain_help(sub)


def _version(value: bool) -> None:
    if value:
        from cortex import __version__

        print(f"cortex {__version__}")
        raise typer.Exit()


app = typer.Typer(
    cls=LazyGroup,
    help="Cortex: the operating layer for AI training superclusters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Cortex: the operating layer for AI training superclusters."""


def main(end_process: bool = True) -> None:
    """Entry point. Typer reports bad options itself (usage, exit 2); input files that fail
    validation raise InputError, printed here on one line with exit code 2. A command that
    succeeded and left a large heap (`sim`) ends the process without freeing it, its output
    flushed (gcscope.end_process_now: not when called with its output captured), and only
    when this call is the program itself (`_the_program`: not under a profiler's or a
    debugger's runner). A caller that goes on after the command in its own process
    (bench/power_census.py prints its counts after the run) passes `end_process=False`: it
    gets the SystemExit back, as before."""
    from cortex.errors import InputError

    leave_heap_to_os(False)  # only this call's command may ask
    try:
        app()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as done:  # Click ends every run, a success too, with SystemExit
        if end_process and done.code in (None, 0) and _the_program(sys._getframe(1)):
            end_process_now()
        raise


def _the_program(caller: FrameType | None) -> bool:
    """Whether `caller` (main's) is the process's outermost code, with nothing under it but
    runpy (`python -m cortex`): the console script, `python -c`. A tool that runs the program
    inside its own code and acts once it returns (`python -m cProfile -o F -m cortex`,
    pyinstrument, memray, pdb, trace) would lose what it writes then to the early exit."""
    below = caller.f_back if caller is not None else None
    while below is not None:
        if below.f_globals.get("__name__") != "runpy":
            return False
        below = below.f_back
    return True


if __name__ == "__main__":
    main()
