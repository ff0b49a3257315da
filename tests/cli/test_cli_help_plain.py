"""`cortex CMD --help` is printed in Click's plain layout (cli/main.py `_plain_help`: Typer's
Rich panels cost about 100 ms of imports per help). It must say everything Typer's own Rich
help says, for every command and subcommand: the same words (option names, help, defaults,
ranges, required marks), and the options in the same order. Typer's own is rendered here by
turning the plain layout off, so a new option, a changed help text or Rich markup in a help
string (which the plain layout would print raw) shows up as a difference."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import typer
from typer.testing import CliRunner

from cortex.cli import main

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "TERMINAL_WIDTH": "200"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
METAVAR = re.compile(r"<[^<>\s]*(?: [^<>\s]+)*>")  # Typer's `<int range>`, `<list[str]>`
BOX = re.compile(r"[│╭╮╰╯─]")
# Words: what is left between spaces and the punctuation the two layouts put differently
# ("[default: 100; 1<=x<=1000]" against "[1<=x<=1000] ... [default: 100]", "Options:" against
# a panel titled "Options").
WORD = re.compile(r"[^\s\[\];:,]+")
WRAPPED_HYPHEN = re.compile(r"(\w-)\n\s+")  # Click wraps after a hyphen: "no-\n  quarantine"
OPTION = re.compile(r"(?<![\w-])--?[a-zA-Z][\w-]*")


def _help(args: list[str], *, rich: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as m:
        if rich:  # Typer's own layout: the commands keep their default markup mode, "rich"
            m.setattr(main, "_plain_help", lambda cmd: None)
        got = CliRunner().invoke(main.app, [*args, "--help"], env=ENV, prog_name="cortex")
    assert got.exit_code == 0, (args, got.output)
    return ANSI.sub("", got.output)


# Marks only one layout prints: Rich's `*` beside "[required]" (which both print), Click's `/`
# between a flag and its negation (`--x / --no-x`; Rich puts them side by side).
LAYOUT_ONLY = {"*", "/"}


def _words(text: str) -> Counter[str]:
    text = WRAPPED_HYPHEN.sub(r"\1", text)
    words = WORD.findall(BOX.sub(" ", METAVAR.sub(" ", text)))
    return Counter(w for w in words if w not in LAYOUT_ONLY)


def _options(text: str) -> tuple[list[str], set[str]]:
    """Long names in order of appearance (Rich prints `--output -o`, Click `-o, --output`),
    and the short ones."""
    names = OPTION.findall(METAVAR.sub(" ", text))
    longs = [o for o in names if o.startswith("--")]
    return [o for i, o in enumerate(longs) if o not in longs[:i]], set(names) - set(longs)


def _split_commands(text: str, *, rich: bool) -> tuple[str, dict[str, str]]:
    """A group's help without its command list, and the list: name -> help, spaces collapsed.
    Click's plain list shortens each help to one line ("..."); the whole text is in the
    subcommand's own help, compared in its own case."""
    marker = "╭─ Commands" if rich else "\nCommands:\n"
    if marker not in text:
        return text, {}
    head, _, tail = text.partition(marker)
    lines = tail.split("╰")[0].splitlines()[1:] if rich else tail.splitlines()
    indent = 1 if rich else 2  # a row's name starts here; a wrapped line further right
    rows: dict[str, list[str]] = {}
    for raw in lines:
        line = raw.removeprefix("│").rstrip().rstrip("│").rstrip()
        if not line.strip():
            continue
        if line[indent] != " ":
            name, _, rest = line.strip().partition(" ")
            rows[name] = [rest]
        else:
            rows[list(rows)[-1]].append(line)
    return head, {k: " ".join(" ".join(v).split()) for k, v in rows.items()}


def _command_lines() -> list[list[str]]:
    """Every command in the lazy table, and each subcommand of a group (`token create`)."""
    group = typer.main.get_command(main.app)
    ctx = group.make_context("cortex", [], resilient_parsing=True)
    lines: list[list[str]] = []
    for name in sorted(main.LAZY):
        cmd = group.get_command(ctx, name)  # type: ignore[attr-defined]
        lines.append([name])
        lines += [[name, sub] for sub in sorted(getattr(cmd, "commands", {}))]
    return lines


LINES = _command_lines()


def test_every_command_is_covered() -> None:
    """The table drives the cases: all of LAZY, and the groups' subcommands."""
    flat = {" ".join(x) for x in LINES}
    assert set(main.LAZY) <= flat and {"token create", "token list", "fleet show"} <= flat


@pytest.mark.parametrize("args", LINES, ids=[" ".join(x) for x in LINES])
def test_plain_help_says_what_typers_rich_help_says(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _help(args, rich=False, monkeypatch=monkeypatch)
    rich = _help(args, rich=True, monkeypatch=monkeypatch)
    assert "╭" not in plain and "╭" in rich  # two layouts, or the comparison proves nothing
    assert plain.startswith(f"Usage: cortex {' '.join(args)} ")
    assert _options(plain) == _options(rich)
    plain, plain_cmds = _split_commands(plain, rich=False)
    rich, rich_cmds = _split_commands(rich, rich=True)
    assert list(plain_cmds) == list(rich_cmds)
    for name, short in plain_cmds.items():  # whole, or cut at a word with "..."
        assert rich_cmds[name] == short or rich_cmds[name].startswith(short.removesuffix("..."))
    only_plain, only_rich = _words(plain) - _words(rich), _words(rich) - _words(plain)
    assert (only_plain, only_rich) == (Counter(), Counter())


def test_the_comparison_sees_a_lost_help_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: Rich markup in a help string is printed raw by the plain layout
    (and as styled text by Rich), so the words differ."""
    from cortex.cli import client

    wrapped = client.jobs

    def jobs(
        team: str | None = typer.Option(None, help="[bold]only[/bold] this team"),
    ) -> None:
        wrapped(team=team)  # pragma: no cover - only its help is printed

    monkeypatch.setattr(client, "jobs", jobs)
    plain = _help(["jobs"], rich=False, monkeypatch=monkeypatch)
    rich = _help(["jobs"], rich=True, monkeypatch=monkeypatch)
    assert _words(plain) != _words(rich)
