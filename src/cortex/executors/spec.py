"""What every executor takes and gives back: the launch spec, the handle that names a run for
all time, the exit record, and the environment a job gets. Executor-neutral, so that the local
executor (executors/local/) and the Ray executor share it; the interface is executors/base.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from cortex.jobproto import (
    ENV_CHECKPOINT_DIR,
    ENV_JOB_ID,
    ENV_METRICS_FILE,
    EXIT_OK,
    EXIT_PREEMPTED,
)

Outcome = Literal["completed", "failed", "preempted", "cancelled"]
StopReason = Literal["preempt", "cancel"]

CPU_FLAVOR = "CPU-SLOT"  # the fleet catalog's name for one CPU slot
ENV_ATTEMPT = "CORTEX_ATTEMPT"
ENV_VISIBLE_SLOTS = "CORTEX_VISIBLE_SLOTS"  # CPU slots: the allocated slot ids, "0,1"
# The variables the executor sets; a user's value for one of them is overridden, since they are
# the job's allocation and its contract with the control plane. The API may reject them up front.
TORCHRUN_ENV = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
)
RESERVED_ENV = frozenset(
    {
        "CUDA_VISIBLE_DEVICES",
        "CUDA_DEVICE_ORDER",
        ENV_JOB_ID,
        ENV_ATTEMPT,
        ENV_CHECKPOINT_DIR,
        ENV_METRICS_FILE,
        ENV_VISIBLE_SLOTS,
        *TORCHRUN_ENV,
    }
)


@dataclass(frozen=True)
class Inventory:
    kind: Literal["gpu", "cpu"]
    flavor: str  # fleet catalog name: "H100-SXM5", ..., or "CPU-SLOT"
    count: int
    devices: list[int]  # GPU indices (NVML / PCI order) or CPU slot ids
    memory_gb: float | None = None  # per device (the smallest, if they differ); None for CPU


@dataclass(frozen=True)
class LaunchSpec:
    job_id: int
    attempt: int
    command: list[str]
    env: dict[str, str]
    working_dir: str | None
    devices: list[int]
    nprocs: int = 1
    uses_gpus: bool = False
    checkpoint_dir: Path | None = None
    team: str | None = None  # whose job: decides the Unix user it runs as
    # Where the gang runs, node by node: (node name, that node's device indices). Empty: one
    # machine (the local executor ignores it); a multi-node executor needs it.
    nodes: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def validate(self) -> None:
        """ValueError naming the field, for what would otherwise fail later inside the runner."""
        for name in ("job_id", "attempt", "nprocs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
        if self.nprocs < 1:
            raise ValueError(f"nprocs: must be at least 1, got {self.nprocs}")
        if (
            not isinstance(self.command, list | tuple)
            or not self.command
            or not all(isinstance(a, str) for a in self.command)
        ):
            raise ValueError(f"command: must be a non-empty list of strings, got {self.command!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()):
            raise ValueError("env: names and values must be strings")
        # exec() takes C strings: a NUL would fail inside the runner, far from the caller.
        if any("\0" in a for a in self.command):
            raise ValueError("command: an argument contains a NUL character")
        if any("\0" in v for v in self.env.values()):
            raise ValueError("env: a value contains a NUL character")
        bad = [k for k in self.env if not k or "=" in k or "\0" in k]
        if bad:
            raise ValueError(f"env: invalid variable name {bad[0]!r}")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in self.devices):
            raise ValueError(f"devices: must be non-negative integers, got {self.devices!r}")
        if len(set(self.devices)) != len(self.devices):
            raise ValueError(f"devices: listed twice in {self.devices!r}")
        if self.working_dir is not None and not Path(self.working_dir).is_dir():
            raise ValueError(f"working_dir: {self.working_dir!r} is not a directory")
        self._validate_nodes()

    def _validate_nodes(self) -> None:
        names: set[str] = set()
        for entry in self.nodes:
            if not (isinstance(entry, tuple | list) and len(entry) == 2):
                raise ValueError(f"nodes: expected (name, devices) pairs, got {entry!r}")
            name, devs = entry
            if not isinstance(name, str) or not 0 < len(name) <= 253 or name in names:
                raise ValueError(f"nodes: bad or repeated node name {name!r}")
            names.add(name)
            if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devs):
                raise ValueError(f"nodes: {name}: devices must be non-negative integers")
        if self.nodes and sum(len(d) for _, d in self.nodes) != len(self.devices):
            raise ValueError("nodes: the per-node devices do not add up to `devices`")


@dataclass(frozen=True)
class Handle:
    """What the store keeps to find a run again: pid + start time + boot id name one process
    for all time (a pid alone is reused)."""

    job_id: int
    attempt: int
    pid: int  # the runner's
    pgid: int  # == pid: the runner leads the job's process group
    start_ticks: int  # /proc/<pid>/stat field 22
    boot_id: str
    run_dir: str
    stdout_path: str
    stderr_path: str
    devices: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["devices"] = list(self.devices)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Handle:
        ints = ("job_id", "attempt", "pid", "pgid", "start_ticks")
        strs = ("boot_id", "run_dir", "stdout_path", "stderr_path")
        for k in (*ints, *strs, "devices"):
            if k not in d:
                raise ValueError(f"handle.{k}: missing")
        for k in ints:
            if not isinstance(d[k], int) or isinstance(d[k], bool):
                raise ValueError(f"handle.{k}: expected an integer, got {d[k]!r}")
        for k in strs:
            if not isinstance(d[k], str):
                raise ValueError(f"handle.{k}: expected a string, got {d[k]!r}")
        devices = d["devices"]
        if not isinstance(devices, list | tuple) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in devices
        ):
            raise ValueError(f"handle.devices: expected a list of integers, got {devices!r}")
        return cls(
            **{k: d[k] for k in (*ints, *strs)},
            devices=tuple(devices),
        )


@dataclass(frozen=True)
class GangHandle:
    """A run of an executor other than the local one: the common fields, the executor's `kind`
    ("ray") and what that executor needs to find the run again (`payload`: JSON values, e.g.
    the names of its placement group and actors). Stored as JSON like `Handle`;
    `handle_from_dict` tells the two apart (a dict without `kind` is a local handle, as every
    handle stored before this class existed)."""

    job_id: int
    attempt: int
    kind: str
    run_dir: str
    stdout_path: str
    stderr_path: str
    devices: tuple[int, ...] = ()
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["devices"] = list(self.devices)
        d["payload"] = dict(self.payload)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GangHandle:
        for k in ("job_id", "attempt"):
            if not isinstance(d.get(k), int) or isinstance(d.get(k), bool):
                raise ValueError(f"handle.{k}: expected an integer, got {d.get(k)!r}")
        for k in ("kind", "run_dir", "stdout_path", "stderr_path"):
            if not isinstance(d.get(k), str):
                raise ValueError(f"handle.{k}: expected a string, got {d.get(k)!r}")
        devices = d.get("devices", [])
        if not isinstance(devices, list | tuple) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in devices
        ):
            raise ValueError(f"handle.devices: expected a list of integers, got {devices!r}")
        payload = d.get("payload", {})
        if not isinstance(payload, Mapping):
            raise ValueError(f"handle.payload: expected an object, got {payload!r}")
        return cls(
            job_id=d["job_id"],
            attempt=d["attempt"],
            kind=d["kind"],
            run_dir=d["run_dir"],
            stdout_path=d["stdout_path"],
            stderr_path=d["stderr_path"],
            devices=tuple(devices),
            payload=dict(payload),
        )


def handle_from_dict(d: Mapping[str, Any]) -> Handle | GangHandle:
    """A stored handle of any executor: `kind` absent or "local" is the local executor's."""
    if not isinstance(d, Mapping):
        raise ValueError(f"handle: expected an object, got {type(d).__name__}")
    if d.get("kind", "local") == "local":
        return Handle.from_dict(d)
    return GangHandle.from_dict(d)


@dataclass(frozen=True)
class ExitRecord:
    job_id: int
    attempt: int
    outcome: Outcome
    exit_code: int | None  # None: killed by a signal, or no verdict (detail says which)
    detail: str
    # The executor's cluster ended the run, not a node of it nor the job (the Ray head lost,
    # executors/ray/headloss.py): blamed like a lost node, no retry spent (drive/runs.py).
    cluster_lost: bool = False


def outcome_for(stop: StopReason | None, exit_code: int | None) -> Outcome:
    """A stop request decides over the exit code: a cancelled job is cancelled however it ended,
    and a preempted one is requeued however it ended (it may have exited 0 on SIGTERM without
    finishing). Otherwise: 0 completed, 75 (checkpointed, EX_TEMPFAIL) preempted, else failed."""
    if stop == "cancel":
        return "cancelled"
    if stop == "preempt":
        return "preempted"
    if exit_code == EXIT_OK:
        return "completed"
    if exit_code == EXIT_PREEMPTED:
        return "preempted"
    return "failed"


def job_env(
    spec: LaunchSpec,
    *,
    base: Mapping[str, str],
    checkpoint_dir: Path,
    metrics_file: Path,
) -> dict[str, str]:
    """The environment every rank gets (the runner adds the per-rank torchrun variables).

    Inherited from the service, minus its own CORTEX_* settings (admin token, database URL: a
    job must not see them) and any GPU or torchrun variables; then the user's env on top; then
    the allocation and protocol variables, which the user cannot override."""
    env = {k: v for k, v in base.items() if not k.startswith("CORTEX_") and k not in RESERVED_ENV}
    env.update(spec.env)
    # Unbuffered Python output, so `cortex logs -f` shows lines as they are printed.
    env.setdefault("PYTHONUNBUFFERED", "1")
    ids = ",".join(str(d) for d in spec.devices)
    if spec.uses_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ids
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # so CUDA's indices are NVML's (see gpus.py)
    else:
        # Empty, not unset: a CPU job must not grab a GPU the scheduler gave to someone else.
        env["CUDA_VISIBLE_DEVICES"] = ""
        env[ENV_VISIBLE_SLOTS] = ids
        # BLAS/OpenMP default to one thread per core of the machine; a job holding k slots
        # should use k (a user's own setting wins).
        env.setdefault("OMP_NUM_THREADS", str(max(1, len(spec.devices) // spec.nprocs)))
    for k in TORCHRUN_ENV:
        env.pop(k, None)
    env[ENV_JOB_ID] = str(spec.job_id)
    env[ENV_ATTEMPT] = str(spec.attempt)
    env[ENV_CHECKPOINT_DIR] = str(checkpoint_dir)
    env[ENV_METRICS_FILE] = str(metrics_file)
    return env
