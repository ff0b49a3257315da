"""A Ray cluster that cannot be reached: the executor fails at once with the address (Ray's
own init would retry for minutes), and `cortex serve` says so in one line, serves, and
retries with backoff from the executor's polls instead of waiting or crashing."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from cortex.control import service
from cortex.control.settings import Settings
from cortex.executors.ray.executor import RayExecutor


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


def test_an_unreachable_address_fails_at_once_naming_it(tmp_path: Path) -> None:
    addr = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ConnectionError, match=f"cannot connect to {addr}"):
        RayExecutor(tmp_path, addr)
    with pytest.raises(ConnectionError, match="expected HOST:PORT"):
        RayExecutor(tmp_path, "no-port-here")


def test_serve_does_not_wait_for_the_cluster_and_retries_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    addr = f"127.0.0.1:{_closed_port()}"
    settings = Settings(home=tmp_path, executor="ray", ray_address=addr)
    with caplog.at_level(logging.ERROR):
        executor, fleet = service.ray_executor(settings)  # returns at once: serve goes on
        assert fleet.pending and fleet.names == [] and not executor.connected
        delays = []
        for _ in range(3):
            executor._backoff.next_at = 0.0  # the wait is over (its length is checked below)
            delays.append(executor._backoff.delay)
            assert executor.poll() == []
    assert delays == [2.0, 4.0, 8.0]  # doubling from 1 s (the first try's), to 30 s at most
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # one line per try, the first one the service's
    assert lines[0] == (
        f"ray: cluster {addr} not usable: cannot connect to {addr}: Connection refused; "
        "serving with no fleet yet (jobs stay queued), reconnecting in the background"
    )
    assert lines[1].endswith("retrying in 2 s") and lines[3].endswith("retrying in 8 s")


def test_run_as_is_refused_with_ray_not_silently_dropped(tmp_path: Path) -> None:
    from cortex.executors.local.users import PrivilegeError

    settings = Settings(home=tmp_path, executor="ray", ray_address="127.0.0.1:1", run_as="*=nobody")
    with pytest.raises(PrivilegeError, match="run_as: not applied by the Ray executor"):
        service.ray_executor(settings)
