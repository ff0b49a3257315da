"""Errors that reach users: bad input names the file, the field and the reason."""

from __future__ import annotations

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
    loc = ".".join(str(p) for p in first.get("loc", ()))
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "<root>")
    msg = str(first.get("msg", "invalid value"))
    return InputError(source, field, msg)
