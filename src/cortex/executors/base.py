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


# Optional, for an executor whose ranks log apart and whose fleet is its own (the Ray
# executor): `rank_log_paths(job_id, attempt, rank)`, `discover()` giving an
# `executors.nodes.ExecutorFleet`, and `node_changes()` giving [(node name, alive)] since the
# last call (control/loop_fleet.py). `find_run(job_id, attempt)` (both executors) gives the
# handle an attempt left on disk, for recovery.


def rank_log_paths(executor: object, job_id: int, attempt: int, rank: int) -> tuple[Path, Path]:
    """One rank's stdout and stderr: its own files where the executor keeps them apart, else
    the attempt's (the local executor's ranks share them)."""
    per_rank = getattr(executor, "rank_log_paths", None)
    if per_rank is not None:
        out, err = per_rank(job_id, attempt, rank)
        return Path(out), Path(err)
    out, err = executor.log_paths(job_id, attempt)  # type: ignore[attr-defined]
    return Path(out), Path(err)
