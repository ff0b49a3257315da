"""API bodies. A submission is the twin's JobSpec plus what a real process needs."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from cortex.workload.spec import JobSpec

Arg = Annotated[str, StringConstraints(max_length=4096)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]
EnvValue = Annotated[str, StringConstraints(max_length=16384)]


class SubmitRequest(JobSpec):
    """A job to run: the scheduler's JobSpec (`duration_s` or `work_gpu_hours` is the runtime
    estimate used for backfill) plus the command line, environment and working directory.
    `team` may be left out: it defaults to the caller's team."""

    # Infinity and NaN parse from JSON and YAML but are not JSON: PostgreSQL's json column
    # refuses them, failing the whole insert batch.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    command: Annotated[list[Arg], Field(min_length=1, max_length=1024)]
    env: Annotated[dict[EnvName, EnvValue], Field(max_length=256)] = Field(default_factory=dict)
    working_dir: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    nprocs: Annotated[int, Field(ge=1, le=1024, strict=True)] = Field(
        default=1, description="processes to start (torchrun ranks); at most `gpus`"
    )

    @model_validator(mode="after")
    def _nprocs_fit(self) -> SubmitRequest:
        if self.nprocs > self.gpus:
            raise ValueError("nprocs must not exceed gpus")
        return self

    PROCESS_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"command", "env", "working_dir", "nprocs"}
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


class JobList(BaseModel):
    jobs: list[JobOut]


class QueueOut(BaseModel):
    name: str
    nominal_share: float
    borrowing_limit_share: float | None
    weight: float
    running_gpus: int = 0
    pending_jobs: int = 0


class QueueUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nominal_share: Annotated[float, Field(ge=0, le=1)] | None = None
    borrowing_limit_share: Annotated[float, Field(ge=0)] | None = None
    weight: Annotated[float, Field(gt=0, le=1e6)] | None = None


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
    model_config = ConfigDict(extra="forbid")
    team: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    label: Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")] = ""


class TokenOut(BaseModel):
    team: str
    token: str


class EventOut(BaseModel):
    id: int
    at: float
    kind: str
    job_id: int | None
    team: str | None
    message: str
