"""cortex.cli.fastparams gives the values and errors Typer's pydantic adapters give: the same
command, run with and without it, prints the same thing for good and bad input alike."""

from __future__ import annotations

from typing import Annotated

import pytest
import typer
from typer._coercion import build_runtime_param, resolve_type_descriptor
from typer.models import OptionInfo
from typer.testing import CliRunner

from cortex.cli import fastparams
from cortex.cli.main import LazyGroup


def _app(fast: bool) -> typer.Typer:
    """`cortex`'s own group (which installs the fast path on the commands it hands out) or
    Typer's plain one, with the same command."""
    app = typer.Typer(
        cls=LazyGroup if fast else None, add_completion=False, pretty_exceptions_enable=False
    )

    @app.callback()
    def root() -> None:
        """A group, as `cortex` is."""

    @app.command()
    def probe(
        ids: Annotated[list[int] | None, typer.Argument()] = None,
        limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
        interval: Annotated[float, typer.Option(min=0.5, max=3600)] = 2.0,
        ratio: float = 1.0,
        count: int = 0,
        team: str | None = None,
        env: Annotated[list[str] | None, typer.Option("--env")] = None,
        flag: bool = False,
    ) -> None:
        for name, v in locals().items():
            print(name, type(v).__name__, repr(v))

    return app


CASES = [
    [],
    ["1", "2", "-3"],
    ["--limit", "50", "--interval", "0.5", "--ratio", "-2.25", "--count", "-0"],
    ["--team", "fsd", "--env", "A=1", "--env", "", "--flag"],
    ["--team", ""],  # an empty string is a value
    ["--limit", "abc"],  # errors: each goes to Typer's adapter, message unchanged
    ["--limit", "0"],  # below min=1
    ["--limit", "1001"],  # above max
    ["--limit", "+5"],
    ["--limit", "007"],
    ["--limit", "1_000"],
    ["--limit", " 5"],
    ["--limit", "5.0"],
    ["--interval", "0.25"],  # below min=0.5
    ["--interval", "1e3"],
    ["--ratio", "nan"],
    ["--ratio", "inf"],
    ["--ratio", ".5"],
    ["--count", "99999999999999999999999"],  # 23 digits: past the fast path's 18
    ["x"],
    ["1", "y"],
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(c) or "(none)" for c in CASES])
def test_same_output_with_and_without(args: list[str]) -> None:
    runner = CliRunner()
    slow = runner.invoke(_app(False), ["probe", *args])
    fast = runner.invoke(_app(True), ["probe", *args])
    assert (fast.exit_code, fast.output) == (slow.exit_code, slow.output)
    assert fast.exception is None or isinstance(fast.exception, SystemExit)


def test_the_fast_path_answers_the_plain_cases() -> None:
    """Not a vacuous equality: the plain values are answered here (no adapter), the others
    are left to Typer."""
    info = OptionInfo(min=1, max=1000)
    assert fastparams.plain_value(int, info, "50") == 50
    assert fastparams.plain_value(float, OptionInfo(), "-2.25") == -2.25
    assert fastparams.plain_value(list[int], OptionInfo(), ("1", "2")) == [1, 2]
    assert fastparams.plain_value(str, OptionInfo(), "fsd") == "fsd"
    for ann, value in [(int, "0"), (int, "+5"), (int, "abc"), (float, "1e3"), (int, 5.0)]:
        assert fastparams.plain_value(ann, info, value) is fastparams._UNSET, (ann, value)


@pytest.mark.parametrize(
    ("ann", "value"),
    [(int, "12"), (int, "-7"), (int, 3), (float, "0.5"), (float, "10"), (float, 2.0), (str, "a")],
)
def test_fast_values_equal_the_adapters(ann: type, value: object) -> None:
    info = OptionInfo()
    real = build_runtime_param(resolve_type_descriptor(ann, info))
    want = real._coerce_value(value, param=None, ctx=None)  # type: ignore[arg-type]
    got = fastparams.plain_value(ann, info, value)
    assert got == want and type(got) is type(want)
