"""API bodies. A submission is the twin's JobSpec plus what a real process needs."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from cortex.fleet.spec import FlavorQuotaSpec
from cortex.workload.spec import ElasticRange, JobSpec

# Every number a client sends is finite and bounded: integers fit PostgreSQL's int4 (the
# store's INTEGER columns), floats stay far from overflow in the scheduler's arithmetic.
INT4_MAX = 2**31 - 1
MAX_SECONDS = 1e9  # about 31 years
MAX_GPU_HOURS = 1e9
Gpus = Annotated[int, Field(gt=0, le=INT4_MAX, strict=True)]  # YAML `true` is not 1
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
Name64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]

Arg = Annotated[str, StringConstraints(max_length=4096)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]
EnvValue = Annotated[str, StringConstraints(max_length=16384)]


class BoundedElastic(ElasticRange):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    min_gpus: Gpus
    max_gpus: Gpus


class SubmitRequest(JobSpec):
    """A job to run: the scheduler's JobSpec (`duration_s` or `work_gpu_hours` is the runtime
    estimate used for backfill) plus the command line, environment and working directory.
    `team` may be left out: it defaults to the caller's team."""

    # Infinity and NaN parse from JSON and YAML but are not JSON: PostgreSQL's json column
    # refuses them, failing the whole insert batch.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # JobSpec's fields, bounded.
    priority_class: Name64 = "normal"
    gpus: Gpus
    flavors: Annotated[list[Name64], Field(max_length=64)] = Field(
        default_factory=list, description="acceptable, in preference order"
    )
    work_gpu_hours: Annotated[float, Field(gt=0, le=MAX_GPU_HOURS)] | None = None
    duration_s: Seconds | None = None
    checkpoint_write_s: Annotated[float, Field(ge=0, le=MAX_SECONDS)] | None = None
    checkpoint_size_gb: Annotated[float, Field(ge=0, le=1e9)] | None = None
    checkpoint_interval_s: Seconds | None = None
    elastic: BoundedElastic | None = None
    submit_s: Annotated[float, Field(ge=0, le=1e12)] = 0.0

    command: Annotated[list[Arg], Field(min_length=1, max_length=1024)]
    env: Annotated[dict[EnvName, EnvValue], Field(max_length=256)] = Field(default_factory=dict)
    working_dir: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    nprocs: Annotated[int, Field(ge=1, le=1024, strict=True)] = Field(
        default=1, description="processes to start (torchrun ranks); at most `gpus`"
    )
    # Strict: a YAML `true` is not one second.
    time_limit_s: Annotated[float, Field(gt=0, le=MAX_SECONDS, strict=True)] | None = Field(
        default=None,
        description="the run is stopped past this many seconds (then failed, not retried); "
        "separate from the runtime estimate duration_s",
    )
    # Gates (control/loop_gates.py): what keeps the job out of the queues until it may run.
    hold: bool = Field(default=False, description="submit held: never scheduled until released")
    after_ok: Annotated[list[Annotated[int, Field(ge=1, le=INT4_MAX)]], Field(max_length=64)] = (
        Field(
            default_factory=list,
            description="job ids that must complete first (Slurm's afterok); one that fails "
            "or is cancelled cancels this job",
        )
    )
    array: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None,
        description="a job array, `FIRST-LAST[%LIMIT]` or `N[%LIMIT]`: one job per index with "
        "CORTEX_ARRAY_INDEX set, at most LIMIT running at once",
    )

    @model_validator(mode="after")
    def _nprocs_fit(self) -> SubmitRequest:
        if self.nprocs > self.gpus:
            raise ValueError("nprocs must not exceed gpus")
        return self

    # Set when the API expands `array` (control/gates.py): (array key, index, limit).
    _array_member: tuple[str, int, int | None] | None = PrivateAttr(default=None)

    # What the scheduler's JobSpec does not take: the process, and the gates.
    PROCESS_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"command", "env", "working_dir", "nprocs", "hold", "after_ok", "array", "time_limit_s"}
    )

    def job_spec(self) -> JobSpec:
        return JobSpec.model_validate(
            self.model_dump(exclude=set(self.PROCESS_FIELDS), mode="json")
        )


class Transition(BaseModel):
    src: str | None
    dst: str
    reason: str
    at: float


class JobOut(BaseModel):
    id: int
    team: str
    name: str
    state: str
    priority_class: str
    gpus: int
    command: list[str]
    working_dir: str | None
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    attempt: int
    failures: int
    preemptions: int
    exit_code: int | None
    reason: str
    cancel_requested: bool
    devices: list[int] | None = None
    history: list[Transition] | None = None
    # A waiting job's first blocker from the last scheduling pass (GET /v1/jobs/{id}/why).
    pending_reason: str | None = None
    # GET /v1/jobs/{id}: the current attempt's progress (cortex.control.progress).
    progress: dict[str, Any] | None = None
    # GET /v1/jobs/{id}: its preemptions, newest first (cortex.control.preemptions).
    preemption_records: list[dict[str, Any]] | None = None
    # With ?start=true, a waiting job's start estimate (control/estimate.py).
    start_estimate: dict[str, Any] | None = None
    # GET /v1/jobs/{id}: its gates, if any (held, after_ok, array key, index and limit).
    gates: dict[str, Any] | None = None


class JobList(BaseModel):
    jobs: list[JobOut]


class SubmitMany(BaseModel):
    """Several jobs submitted together: all are stored, or none."""

    model_config = ConfigDict(extra="forbid")
    jobs: list[SubmitRequest]


class FlavorQuotaIn(FlavorQuotaSpec):
    """One flavor's quota in a queue, as in a fleet file's `flavor_quotas`, bounded: a
    borrowing share past 1 means no more than 1, and counts fit the store's integers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    nominal_share: Annotated[float, Field(ge=0, le=1)] | None = None
    nominal_gpus: Annotated[int, Field(ge=0, le=INT4_MAX, strict=True)] | None = None
    borrowing_limit_share: Annotated[float, Field(ge=0, le=1)] | None = None
    borrowing_limit_gpus: Annotated[int, Field(ge=0, le=INT4_MAX, strict=True)] | None = None


FlavorQuotas = Annotated[dict[Name64, FlavorQuotaIn], Field(max_length=64)]


class QueueOut(BaseModel):
    name: str
    nominal_share: float
    borrowing_limit_share: float | None
    weight: float
    # Per-flavor quotas (Kueue's resource-group flavors): they win over the shares there.
    flavor_quotas: dict[str, dict[str, float | int]] = Field(default_factory=dict)
    min_runtime_s: float | None = None  # None: the service's default
    preemption_budget: int | None = None  # None: no limit
    running_gpus: int = 0
    pending_jobs: int = 0


class QueueUpdate(BaseModel):
    """A quota edit. Finite and bounded: an infinite share once made every tick fail."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    nominal_share: Annotated[float, Field(ge=0, le=1)] | None = None
    # A share of each flavor's GPUs: past 1 it means nothing more than 1.
    borrowing_limit_share: Annotated[float, Field(ge=0, le=1)] | None = None
    weight: Annotated[float, Field(gt=0, le=1e6)] | None = None
    # Preemption protection; null resets to the default (the service's runtime; no budget).
    min_runtime_s: Annotated[float, Field(ge=0, le=365 * 86400)] | None = None
    preemption_budget: Annotated[int, Field(ge=0, le=1_000_000, strict=True)] | None = None
    # The whole per-flavor map, replacing the stored one; {} or null clears it.
    flavor_quotas: FlavorQuotas | None = None


class NodeOut(BaseModel):
    name: str
    flavor: str
    kind: str
    gpus: int
    healthy: bool
    schedulable: bool
    last_seen: float
    allocated_gpus: int


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    team: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    label: Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")] = ""
    expires_in_s: Annotated[float, Field(gt=0, le=10 * 365 * 86400)] | None = Field(
        default=None, description="seconds until the token stops working (default: the setting)"
    )


class TokenOut(BaseModel):
    id: int = 0
    team: str
    token: str
    expires_at: float | None = None
    expires_in_s: float | None = Field(
        default=None, description="how long it lasts: the request's, cut at the service's cap"
    )


class TokenInfo(BaseModel):
    """A token as listed: never its secret."""

    id: int
    team: str | None
    admin: bool
    label: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None


class TokenRevoked(TokenInfo):
    """DELETE /v1/tokens/{id}: idempotent; `already_revoked` when an earlier call did it (its
    `revoked_at` is then that call's)."""

    already_revoked: bool = False


class EventOut(BaseModel):
    id: int
    at: float
    kind: str
    job_id: int | None
    team: str | None
    message: str
