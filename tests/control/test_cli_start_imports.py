"""Client commands answered by a real `cortex serve` (a subprocess on 127.0.0.1, the local
executor) load none of the server stack nor pydantic/click (tests/cliprobe.py's lists): the
whole path, reading and printing the answer included, not only up to the request."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import LiveServer

from cliprobe import heavy, run


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = LiveServer(tmp_path / "home", f"sqlite:///{tmp_path / 'live.db'}", slots=1, grace_s=2)
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()


def test_client_commands_against_a_real_server_import_no_server_stack(
    server: LiveServer,
) -> None:
    env = {"CORTEX_URL": server.base, "CORTEX_TOKEN": server.team_token("fsd")}
    code, out, mods = run(
        ["submit", "--parsable", "--name", "probe-job", "--duration-s", "60", "--",
         sys.executable, "-c", "print('hello from probe-job')"],
        env,
    )  # fmt: skip
    assert code == 0, out
    assert heavy(mods) == []
    job_id = out.strip().splitlines()[-1]
    assert job_id.isdigit(), out
    for args, expect in [
        (["jobs"], "probe-job"),
        (["jobs", "-o", "wide", "--limit", "10"], "probe-job"),
        (["job", job_id], "probe-job"),
        (["why", job_id], job_id),
        (["queues"], "nominal share"),
        (["events", "--limit", "5"], job_id),
        (["--version"], "cortex "),
    ]:
        code, out, mods = run(args, env)
        assert code == 0 and expect in out, (args, out)
        assert heavy(mods) == [], args
