"""The on-disk record of one run (one attempt of one job), shared by the executor and the runner.

    ROOT/jobs/<job_id>/checkpoints/           CORTEX_CHECKPOINT_DIR default: kept across attempts
    ROOT/jobs/<job_id>/metrics.jsonl          CORTEX_METRICS_FILE: appended across attempts
    ROOT/jobs/<job_id>/attempts/<n>/
        spec.json       what the runner runs (command, env, nprocs, grace); written before spawn
        handle.json     the runner's pid and start time; the runner starts nothing before it exists
        terminate.json  a stop request (reason, grace); survives a service restart
        exit.json       the runner's verdict, written last, atomically
        stdout.log, stderr.log   the job's output (all ranks of a gang share them)
        runner.log      the runner's own messages

The files, not the service's memory, are the record: a service killed at any moment finds every
run it started here, and a file is either absent or complete (written to a temp name, renamed).
Only the verdict is also fsynced: it is the one file that still matters after the machine
itself crashes (a job that finished before the crash need not run again); after a reboot no
runner is alive, so a lost spec, handle or stop request changes nothing."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cortex.executors.spec import Handle, StopReason


def job_dir(root: Path, job_id: int) -> Path:
    return root / "jobs" / str(job_id)


def run_dir(root: Path, job_id: int, attempt: int) -> Path:
    return job_dir(root, job_id) / "attempts" / str(attempt)


class RunFiles:
    def __init__(self, path: Path) -> None:
        self.dir = path
        self.spec = path / "spec.json"
        self.handle = path / "handle.json"
        self.terminate = path / "terminate.json"
        self.exit = path / "exit.json"
        self.stdout = path / "stdout.log"
        self.stderr = path / "stderr.log"
        self.runner_log = path / "runner.log"


def write_json_atomic(path: Path, data: Any, *, durable: bool = True) -> None:
    """Temp file, rename: a reader, or a process killed at any moment, sees the old file (or
    none) or the complete new one, never a torn write. `durable` adds fsyncs of the file and
    the directory, so that it also survives a crash of the machine; files that only matter
    while this boot's processes live (spec, handle, stop request) skip them, since they cost
    ~10 ms each and a launch writes two."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(data, sort_keys=True).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None if it does not exist. Files are only ever renamed into place,
    so a present file is complete; one that does not parse raises (it is not ours)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


@dataclass
class RunState:
    """What the executor knows of one run it watches, beyond what the run dir holds."""

    handle: Handle
    files: RunFiles
    stop: StopReason | None = None
    kill_at: float | None = None  # monotonic; backstop SIGKILL time
    runner_status: int | None = None  # the runner's own wait status, when we reaped it
    dead: bool = False  # the runner has exited (and was reaped, if it was ours)
    signalled_at: float | None = None  # wall time the SIGTERM was sent
    job_running: bool | None = None  # whether the job still ran just before it was signalled
    verdict_seen_at: float | None = None
    notes: list[str] = field(default_factory=list)
