"""An in-test executor with the LocalExecutor's interface, for unit tests of the loop and API
only: processes are records, exits are scripted by the test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any


@dataclass(frozen=True)
class FakeHandle:
    job_id: int
    attempt: int
    devices: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "attempt": self.attempt, "devices": list(self.devices)}


@dataclass
class FakeExit:
    job_id: int
    attempt: int
    outcome: str
    exit_code: int | None
    detail: str = ""


@dataclass
class FakeExecutor:
    root: Path
    launched: list[Any] = field(default_factory=list)
    alive: dict[tuple[int, int], Any] = field(default_factory=dict)
    terminated: list[tuple[int, int, str]] = field(default_factory=list)
    exits: list[FakeExit] = field(default_factory=list)
    adoptable: set[tuple[int, int]] = field(default_factory=set)
    killed: list[Any] = field(default_factory=list)
    fail_launch: bool = False
    live: list[FakeHandle] = field(default_factory=list)  # runs found on disk after a restart
    on_disk: dict[tuple[int, int], FakeHandle] = field(default_factory=dict)  # live or finished

    def launch(self, spec: Any) -> FakeHandle:
        if self.fail_launch:
            raise OSError("no such file or directory: 'nope'")
        self.launched.append(spec)
        self.alive[(spec.job_id, spec.attempt)] = spec
        return FakeHandle(spec.job_id, spec.attempt, tuple(spec.devices))

    def terminate(self, job_id: int, attempt: int, reason: str = "preempt") -> None:
        self.terminated.append((job_id, attempt, reason))

    def finish(self, job_id: int, outcome: str = "completed", code: int | None = 0) -> None:
        """Test helper: the live attempt of job_id exits."""
        for jid, att in list(self.alive):
            if jid == job_id:
                del self.alive[(jid, att)]
                self.exits.append(FakeExit(jid, att, outcome, code))

    def poll(self) -> list[FakeExit]:
        out, self.exits = self.exits, []
        return out

    def adopt(self, handle: Any) -> bool:
        key = (
            (handle["job_id"], handle["attempt"])
            if isinstance(handle, dict)
            else (handle.job_id, handle.attempt)
        )
        return key in self.adoptable

    def kill(self, handle: Any) -> None:
        self.killed.append(handle)

    def find_run(self, job_id: int, attempt: int) -> FakeHandle | None:
        return self.on_disk.get((job_id, attempt))

    def live_handles(self) -> list[FakeHandle]:
        return list(self.live)

    def log_paths(self, job_id: int, attempt: int) -> tuple[Path, Path]:
        d = self.root / str(job_id) / str(attempt)
        return d / "stdout.log", d / "stderr.log"


def inventory(count: int = 4) -> SimpleNamespace:
    return SimpleNamespace(kind="cpu", flavor="CPU-SLOT", count=count, devices=list(range(count)))


@dataclass(frozen=True)
class Spec:
    """Stands in for executor.LaunchSpec in unit tests."""

    job_id: int
    attempt: int
    command: list[str]
    env: dict[str, str]
    working_dir: str | None
    devices: list[int]
    nprocs: int
    uses_gpus: bool
    checkpoint_dir: Path | None
    team: str | None = None
    nodes: tuple[tuple[str, tuple[int, ...]], ...] = ()
