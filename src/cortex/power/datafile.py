"""Read the power package's CSV data files: leading `#` lines give sources, then a header."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

from cortex.errors import InputError, read_text


def read_rows(name: str, path: Path | None = None) -> list[dict[str, str]]:
    """Rows of a shipped data file (`cortex/power/data/NAME`) or of `path` when given.

    Lines starting with `#` are comments (the file's sources and rules) and are skipped.
    A missing or unreadable file is an input error naming the path.
    """
    if path is None:
        source = f"cortex/power/data/{name}"
        text = resources.files("cortex.power").joinpath(f"data/{name}").read_text()
    else:
        source = str(path)
        text = read_text(path, source)
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(source, "<file>", "no header row")
    return list(csv.DictReader(lines))


def number(row: dict[str, str], key: str, source: str, where: str) -> float:
    """A float field of a data row; a missing or non-numeric value names the row and field."""
    raw = (row.get(key) or "").strip()
    try:
        return float(raw)
    except ValueError:
        raise InputError(source, f"{where}.{key}", f"not a number: {raw!r}") from None
