"""Option values coerced without pydantic when they are plain (`--limit 50`, `--team fsd`).

Typer (0.29 and later) builds a pydantic TypeAdapter for each parameter the first time a value
passes through it, even for a flag left at its default: every command then pays for importing
pydantic (about a third of a client command's start on a loaded machine). Typer's own values
for the plain cases are known and simple: a str stays that str, an int in decimal digits is
`int()`, a float in plain notation is `float()`. This module answers those here and hands
anything else (a bound crossed, `0x10`, `1e3`, a path, a choice, a custom parser) to Typer's
adapter, built then, so the value and the error message are Typer's own. tests/cli/
test_cli_fastparams.py compares the two on a table of inputs.

Typer exposes no setting for this; the hook is its lazily built `_runtime_param` (checked with
hasattr, so another Typer without it is left as it is)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from typer._coercion import RuntimeParam, build_runtime_param
from typer._typing import get_args, get_origin

if TYPE_CHECKING:
    from typer._click import Command, Context
    from typer.core import _TyperParameter

# Decimal integers without a sign or leading zeros ("+5", "007", "1_000" go to pydantic),
# at most 18 digits so the value is far from any limit.
_INT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,17})?")
_UNSET = object()


def _leaf(ann: Any, value: Any, lo: float | None, hi: float | None) -> Any:
    """The value Typer's adapter would return, or _UNSET when this cannot tell."""
    if ann is str:
        return value if type(value) is str else _UNSET
    if ann is bool:
        return value if type(value) is bool else _UNSET
    if ann is int:
        if type(value) is int:
            out: Any = value
        elif type(value) is str and _INT.fullmatch(value):
            out = int(value)
        else:
            return _UNSET
    elif ann is float:
        if type(value) is float:
            out = value
        elif type(value) is str and _FLOAT.fullmatch(value):
            out = float(value)
        else:
            return _UNSET
    else:
        return _UNSET
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        return _UNSET  # the bound's message is Typer's
    return out


def plain_value(ann: Any, info: Any, value: Any) -> Any:
    """Typer's value for `value` under annotation `ann`, or _UNSET."""
    if any(getattr(info, k, None) for k in ("parser", "click_type", "clamp", "path_type")):
        return _UNSET
    lo, hi = getattr(info, "min", None), getattr(info, "max", None)
    if get_origin(ann) is list:
        (item,) = get_args(ann) or (None,)
        if not isinstance(value, (list, tuple)):
            return _UNSET
        out = [_leaf(item, v, lo, hi) for v in value]
        return _UNSET if any(v is _UNSET for v in out) else out
    return _leaf(ann, value, lo, hi)


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """Plain values here; anything else through the adapter Typer would have built."""

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        out = plain_value(self.annotation, self.parameter_info, value)
        if out is not _UNSET:
            return out
        real = build_runtime_param(param.type_descriptor)
        param._runtime_param = real
        return real._coerce_value(value, param=param, ctx=ctx)


def install(cmd: Command, ctx: Context) -> None:
    """Give every Typer parameter of `cmd` (and of its subcommands) the plain coercion,
    `--help` included (Click makes that one on first use, hence `get_params`)."""
    for p in cmd.get_params(ctx):
        desc = getattr(p, "type_descriptor", None)
        if desc is None or getattr(p, "_runtime_param", _UNSET) is not None:
            continue
        if desc.file_annotation is not None:
            continue
        p._runtime_param = PlainRuntimeParam(  # type: ignore[attr-defined]
            parameter_info=desc.parameter_info, annotation=desc.annotation
        )
    for sub in getattr(cmd, "commands", {}).values():
        install(sub, ctx)
