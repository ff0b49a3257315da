"""A Ray cluster that cannot be reached: the executor fails at once with the address (Ray's
own init would retry for minutes), and `cortex serve` says so in one line and retries with
backoff instead of crashing."""

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


class _StopError(Exception):
    pass


def test_serve_logs_one_line_per_try_and_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    addr = f"127.0.0.1:{_closed_port()}"
    settings = Settings(home=tmp_path, executor="ray", ray_address=addr)
    delays: list[float] = []

    def sleep(s: float) -> None:
        delays.append(s)
        if len(delays) == 3:
            raise _StopError

    monkeypatch.setattr(service.time, "sleep", sleep)
    with caplog.at_level(logging.ERROR, logger="cortex.control"), pytest.raises(_StopError):
        service.ray_executor(settings)
    assert delays == [1.0, 2.0, 4.0]  # doubling from 1 s (to 30 s at most)
    lines = [r.getMessage() for r in caplog.records if r.name == "cortex.control"]
    assert len(lines) == 3
    assert lines[0].startswith(f"ray: cluster {addr} not usable: cannot connect to {addr}")
    assert lines[0].endswith("retrying in 1 s")
