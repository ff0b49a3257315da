"""One output convention for every listing and reading command, as Slurm and kubectl users
expect it: `-o table|wide|json|yaml`, `--json` (the same as `-o json`), `--json-file PATH` (the
JSON into a file, the table still on the terminal) and `--parsable` (`|`-separated, one header
line, every column: for scripts, like `sacct --parsable2`).

Light on purpose: a client command imports this, http.client and Rich, never the server stack (the
CLI must start in well under 300 ms; tests/cli/test_lazy_imports.py checks the module list)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("table", "wide", "json", "yaml")
# C0 and C1 control characters and DEL: a server-provided string must not move the cursor,
# recolour or retitle the terminal of whoever lists it.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Slurm's short state codes (squeue's ST column) beside the long names. Cortex's states map
# onto Slurm's where one exists: admitted is Slurm's CF (configuring: nodes chosen, not yet
# started); a job asked to stop and still running shows CG (completing) in the listing.
STATE_CODES = {
    "queued": "PD",
    "requeued": "PD",
    "held": "PD",
    "admitted": "CF",
    "running": "R",
    "preempted": "PR",
    "failed": "F",
    "completed": "CD",
    "cancelled": "CA",
    "rejected": "RJ",
}


def state_code(job: dict[str, Any]) -> str:
    """squeue's ST for a job as the API returns it."""
    if job.get("state") == "running" and job.get("cancel_requested"):
        return "CG"
    return STATE_CODES.get(str(job.get("state")), "?")


def bad_option(command: str, option: str, reason: str) -> NoReturn:
    """The CLI's one line for bad input, `error: <source>: <field>: <reason>`, exit 2."""
    print(f"error: {command}: {option}: {CONTROL.sub('?', reason)}", file=sys.stderr)
    raise typer.Exit(2)


# Typer reads options from defaults; declared once so every command spells them alike.
OUTPUT = typer.Option(
    "table", "-o", "--output", help="table (default), wide (every column), json or yaml"
)
JSON = typer.Option(False, "--json", help="JSON on stdout (the same as -o json)")
JSON_FILE = typer.Option(
    None, "--json-file", help="also write the JSON to this file (the table stays on stdout)"
)
PARSABLE = typer.Option(
    False, "--parsable", help="every column, `|`-separated, one header line (for scripts)"
)


@dataclass(frozen=True)
class Col:
    """A column: its header, how to read it from one API object, and whether only `-o wide`
    (and `--parsable`) shows it."""

    header: str
    get: Callable[[dict[str, Any]], Any]
    wide: bool = False


@dataclass(frozen=True)
class Out:
    """The chosen format for one command run."""

    fmt: str
    json_file: Path | None = None

    @classmethod
    def pick(
        cls,
        command: str,
        output: str = "table",
        as_json: bool = False,
        json_file: Path | None = None,
        parsable: bool = False,
    ) -> Out:
        fmt = output.strip().lower()
        if fmt not in FORMATS:
            known = ", ".join(FORMATS)
            bad_option(command, "--output", f"unknown format {output!r}; one of {known}")
        chosen = [f for f, on in (("json", as_json), ("parsable", parsable)) if on]
        if fmt != "table":
            chosen.append(fmt)
        if len(set(chosen)) > 1:
            bad_option(command, "--output", f"choose one of {', '.join(sorted(set(chosen)))}")
        return cls(chosen[0] if chosen else "table", json_file)

    @property
    def structured(self) -> bool:
        """JSON or YAML: the API's objects as they are, no table."""
        return self.fmt in ("json", "yaml")

    def emit(self, data: Any) -> bool:
        """Write `data` to --json-file if asked, and print it as JSON or YAML if that is the
        format. True when the command is done (no table wanted)."""
        if self.json_file is not None:
            try:
                self.json_file.write_text(json.dumps(data, indent=2) + "\n")
            except OSError as err:
                print(f"error: {self.json_file}: <file>: {err.strerror or err}", file=sys.stderr)
                raise typer.Exit(2) from None
        if self.fmt == "json":
            print(json.dumps(data, indent=2))
        elif self.fmt == "yaml":
            import yaml  # only here: most runs never need it

            sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return self.structured

    def rows(self, data: Any, items: Sequence[dict[str, Any]], cols: Sequence[Col]) -> None:
        """Print a listing in the chosen format (`data` is what JSON and YAML print)."""
        if self.emit(data):
            return
        if self.fmt == "parsable":
            print("|".join(c.header for c in cols))
            for it in items:
                print("|".join(_plain(c.get(it)).replace("|", "?") for c in cols))
            return
        from rich.markup import escape
        from rich.table import Table

        shown = [c for c in cols if self.fmt == "wide" or not c.wide]
        t = Table(*(c.header for c in shown))
        for it in items:
            t.add_row(*(escape(_plain(c.get(it))) for c in shown))
        console().print(t)


PIPE_WIDTH = 10_000  # columns for a table sent to a pipe or a file: in practice, no limit


def console() -> Console:
    """Rich's console for the client's tables and lines: a terminal's width; off a terminal
    (`cortex jobs | grep running`) whole rows, not Rich's 80 columns that cut the state to
    "runn…" and wrap a row over several lines, unless COLUMNS sets a width."""
    from rich.console import Console

    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(highlight=False, width=PIPE_WIDTH if piped else None)


def _plain(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return CONTROL.sub("?", str(v))
