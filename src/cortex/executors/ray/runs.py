"""One gang's state in the Ray executor, the helpers that rebuild it after a restart, and the
probe of a cluster address."""

from __future__ import annotations

import socket
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup

from cortex.executors.local.rundir import read_json
from cortex.executors.ray import gang as g
from cortex.executors.ray.agent import verdict_path
from cortex.executors.spec import GangHandle, LaunchSpec, StopReason


@dataclass
class Gang:
    handle: GangHandle
    parts: list[g.NodePart]
    pg: PlacementGroup | None
    phase: str = "placing"  # launching, placing, starting, running
    launch: Future[Any] | None = None  # the worker's creation while launching (launching.py)
    created_at: float | None = None  # monotonic: when the worker began creating it
    abandoned: bool = False  # the executor gave it up (lost head, launch timed out)
    since: float = field(default_factory=time.monotonic)
    spec: LaunchSpec | None = None  # until the ranks start (its env holds the job's secrets)
    env: dict[str, str] | None = None
    agents: dict[int, Any] = field(default_factory=dict)
    # Agent 0's rendezvous address, each agent's start() and its current wait(): Futures
    # that Ray completes from its own threads (ObjectRef.future()), so poll() asks Ray nothing.
    master: Future[Any] | None = None
    started: dict[int, Future[Any]] = field(default_factory=dict)
    waits: dict[int, Future[Any]] = field(default_factory=dict)
    # The calls thread's work for the gang (executor.py): sending the agents their start()
    # and wait() (its result: those Futures, or None when a stop came first), and the GCS's
    # word on the placement group once the placement timeout is up (on the worker).
    sending: Future[Any] | None = None
    pg_state: Future[Any] | None = None
    verdicts: dict[int, dict[str, Any]] = field(default_factory=dict)
    lost: dict[int, str] = field(default_factory=dict)
    stop: StopReason | None = None
    kill_at: float | None = None  # monotonic backstop
    gang_stopped: bool = False
    running_at: float | None = None  # monotonic: every rank started
    note: str = ""

    @property
    def key(self) -> tuple[int, int]:
        return self.handle.job_id, self.handle.attempt


def adopted(h: GangHandle) -> Gang | None:
    """A gang rebuilt from a stored handle; None when the payload is not one we wrote."""
    try:
        parts = [
            g.NodePart(i, str(node), tuple(int(d) for d in devs), tuple(int(r) for r in ranks))
            for i, (node, devs, ranks) in enumerate(h.payload["nodes"])
        ]
    except (KeyError, TypeError, ValueError):
        return None
    return Gang(handle=h, parts=parts, pg=named_pg(str(h.payload.get("pg", ""))))


def named_pg(name: str) -> PlacementGroup | None:
    try:
        return ray.util.get_placement_group(name)
    except ValueError:
        return None


def read_verdict(gang: Gang, index: int) -> dict[str, Any] | None:
    try:
        return read_json(verdict_path(Path(gang.handle.run_dir), index))
    except ValueError:
        return None


def short(e: BaseException) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


def probe(address: str | None, timeout_s: float = 3.0) -> None:
    """ConnectionError, at once, when nothing answers at a HOST:PORT address: `ray.init` would
    retry for minutes, logging as it goes, instead of failing."""
    if not address or "://" in address or address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConnectionError(f"ray_address: expected HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ConnectionError(f"cannot connect to {address}: {err.strerror or err}") from None
