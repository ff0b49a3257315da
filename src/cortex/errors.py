"""Errors that reach users: bad input names the file, the field and the reason."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module; pydantic is the server's and the twin's
    from pydantic import ValidationError


class InputError(Exception):
    """Bad user input (a fleet, job or trace file). The CLI prints it on one line and exits 2."""

    def __init__(self, source: str, field: str, reason: str) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        super().__init__(f"{source}: {field}: {reason}")


def from_validation_error(source: str, err: ValidationError, prefix: str = "") -> InputError:
    """Turn pydantic's first error into an InputError with a dotted field path."""
    first = err.errors()[0]
    loc = ""
    for part in first.get("loc", ()):
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    if prefix and loc:
        field = prefix + (loc if loc.startswith("[") else f".{loc}")
    else:
        field = prefix or loc or "<root>"
    msg = str(first.get("msg", "invalid value"))
    return InputError(source, field, msg)


def read_text(path: str | Path, source: str | None = None) -> str:
    """A user's text file, or an InputError naming it: missing, a directory, unreadable, or
    not UTF-8 (a binary file given by mistake raised UnicodeDecodeError, a traceback). A
    leading byte-order mark (a spreadsheet's "CSV UTF-8") is dropped, not read as a column."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise InputError(source or str(path), "<file>", err.strerror or str(err)) from None
    except UnicodeDecodeError as err:
        raise InputError(
            source or str(path), "<file>", f"not UTF-8 text (byte {err.start}: {err.reason})"
        ) from None


def check_output(path: str | Path, option: str) -> None:
    """Refuse an output path that cannot be written before any work is done: an unwritable
    --json found after a 40-s run lost the run, and with --json and --html given the JSON was
    already written (half the outputs). A folder that does not exist yet is made at write."""
    p = Path(path)
    if p.is_dir():
        raise InputError(str(p), option, "is a directory")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(str(p), option, f"{parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(str(p), option, f"{parent} is not writable")


def check_outputs(
    outputs: dict[str, str | Path | None], inputs: Sequence[str | Path | None] = ()
) -> None:
    """check_output for each output given, and refuse one that is an input file of the run
    (`cortex plan p.yaml --json p.yaml` replaced the plan with its report) or the path of
    another output (`--json r --html r`: the JSON was written, then overwritten)."""
    given = {option: Path(out) for option, out in outputs.items() if out is not None}
    files = [Path(i) for i in inputs if i is not None and Path(i).is_file()]
    seen: dict[Path, str] = {}
    for option, out in given.items():
        check_output(out, option)
        where = out.resolve()
        for f in files:
            if f.resolve() == where:
                raise InputError(str(out), option, "is an input of this run: it would be replaced")
        if where in seen:
            raise InputError(str(out), option, f"is also the {seen[where]} path")
        seen[where] = option


def columns_once(header: Sequence[str] | None, source: str) -> None:
    """Refuse a CSV header that names a column twice: csv.DictReader keeps the last one's
    cells, so a trace with two `num_gpus` columns (or a cap curve with two `throughput_kept`)
    was read from the second without a word."""
    seen: set[str] = set()
    for col in header or ():
        if col in seen:
            raise InputError(source, f"row 1: {col}", "column given twice")
        seen.add(col)
