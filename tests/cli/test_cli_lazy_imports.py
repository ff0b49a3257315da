"""A client command imports no server stack: no FastAPI, SQLAlchemy, numpy, scheduler or twin
(each costs a user hundreds of milliseconds on every `cortex jobs`), and not the parts of its
libraries it does not use (pydantic through Typer's option adapters, click through httpx's own
command line). Checked by the modules loaded, in a fresh process, not by timing
(bench/cli_start.py measures the time; tests/control/test_cli_start_imports.py does the same
against a real server)."""

from __future__ import annotations

import pytest

from cliprobe import heavy, run
from cortex.cli.main import LAZY

# Port 9 (discard) on loopback: nothing listens, so a command runs to its request and fails
# there, having imported all it imports before talking to the server.
CLOSED = {"CORTEX_URL": "http://127.0.0.1:9"}
SERVER_SIDE = {"sim", "fleet", "trace", "power", "serve", "plan"}
CLIENT = sorted(set(LAZY) - SERVER_SIDE)


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "-o", "wide"],
        ["jobs", "--limit", "5", "--state", "queued"],
        ["job", "1"],
        ["cancel", "1", "2"],
        ["submit", "--duration-s", "5", "--", "python3", "-c", "pass"],
        ["queues", "--json"],
        ["why", "1"],
        ["events", "--parsable"],
        ["logs", "1", "--tail", "10"],
        ["--version"],
        ["--help"],
    ],
)
def test_client_commands_import_no_server_stack(args: list[str]) -> None:
    code, _, mods = run(args, CLOSED)
    assert "cortex.cli.main" in mods  # the probe ran
    assert code != 0 or args[0].startswith("--")  # it reached its request, and failed there
    assert heavy(mods) == []


@pytest.mark.parametrize("name", CLIENT)
def test_client_help_imports_no_server_stack(name: str) -> None:
    code, out, mods = run([name, "--help"], CLOSED)
    assert code == 0 and "Usage" in out
    assert heavy(mods) == []


def test_the_probe_sees_a_server_import() -> None:
    """The check can fail: `cortex sim --help` loads the twin and the scheduler."""
    _, _, mods = run(["sim", "--help"], CLOSED)
    assert any(m == "cortex.scheduler" or m.startswith("cortex.scheduler.") for m in heavy(mods))


def test_client_set_is_the_table_less_the_server_side() -> None:
    """A command added to LAZY is a client command (and guarded above) unless listed here."""
    assert set(LAZY) >= SERVER_SIDE and {"jobs", "job", "why", "submit"} <= set(CLIENT)
