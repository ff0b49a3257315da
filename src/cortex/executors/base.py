"""The one executor interface the control plane's scheduler loop uses. The local executor
implements it (executors/local/executor.py); the Ray executor will. A `Handle` names a run for
all time and survives the service as JSON (`Handle.to_dict`), so a restarted service can adopt
or kill runs it did not start."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from cortex.executors.spec import ExitRecord, Handle, LaunchSpec


class Executor(Protocol):
    def launch(self, spec: LaunchSpec) -> Handle:
        """Start a run; returns once its handle is durable (a crash after this finds it)."""
        ...

    def terminate(self, job_id: int, attempt: int, reason: str = ...) -> None:
        """Stop a run: SIGTERM (or the equivalent), then a kill after the grace period."""
        ...

    def poll(self) -> list[ExitRecord]:
        """Runs that ended since the last poll, each reported once."""
        ...

    def adopt(self, handle: Handle) -> bool:
        """Take over a run a previous service started; False when it is gone."""
        ...

    def kill(self, handle: Handle) -> None:
        """Kill a run at once (recovery: a run the store no longer wants)."""
        ...

    def live_handles(self) -> list[Handle]:
        """Every run of this executor still alive, whoever started it."""
        ...

    def log_paths(self, job_id: int, attempt: int) -> tuple[Path, Path]:
        """Where an attempt's stdout and stderr are (the API's log route reads them)."""
        ...
