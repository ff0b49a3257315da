"""JobSpec: what a team submits. Validated with pydantic at the edges (files, API)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cortex import yamlfiles
from cortex.errors import InputError, from_validation_error, read_text


class WorkloadKind(StrEnum):
    """Kinds of work with distinct speed profiles across flavors (see data/throughput.csv)."""

    FSD_VIDEO = "fsd-video"
    OPTIMUS_POLICY = "optimus-policy"
    LLM = "llm"
    EVAL = "eval"
    GENERIC = "generic"


PositiveInt = Annotated[int, Field(gt=0, strict=True)]  # YAML `true` is not 1
PositiveFloat = Annotated[float, Field(gt=0)]


class ElasticRange(BaseModel):
    """Gang sizes an elastic job accepts; the scheduler may start it anywhere in [min, max]."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_gpus: PositiveInt
    max_gpus: PositiveInt

    @model_validator(mode="after")
    def _ordered(self) -> ElasticRange:
        if self.min_gpus > self.max_gpus:
            raise ValueError("min_gpus must not exceed max_gpus")
        return self


def write_s_of(
    checkpoint_write_s: float | None, checkpoint_size_gb: float | None, storage_write_gbps: float
) -> float | None:
    """`JobSpec.write_s`'s rule on its two fields' values: also the control plane's goodput's
    (control/goodput_ledger.py, from a stored spec's values)."""
    if checkpoint_write_s is None and checkpoint_size_gb is not None:
        return checkpoint_size_gb / storage_write_gbps
    return checkpoint_write_s


class JobSpec(BaseModel):
    """One gang-scheduled job. Work is given at the reference flavor (H100-SXM5) either as total
    GPU-hours or as the duration at the requested gang size."""

    # Every number finite, as traces and the control plane's bodies have it: a job file's
    # checkpoint_write_s of .inf put NaN in the twin's GPU-hour books.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    team: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    priority_class: str = "normal"
    gpus: PositiveInt
    flavors: list[str] = Field(default_factory=list, description="acceptable, in preference order")
    work_gpu_hours: PositiveFloat | None = None
    duration_s: PositiveFloat | None = None
    checkpoint_write_s: Annotated[float, Field(ge=0)] | None = None
    checkpoint_size_gb: Annotated[float, Field(ge=0)] | None = None
    checkpoint_interval_s: PositiveFloat | None = None
    checkpoint_on_signal: bool = Field(
        default=True,
        strict=True,
        description="writes a checkpoint within the grace period when preempted (SIGTERM, "
        "exit 75) and keeps all its work; false: loses what it did since its last checkpoint",
    )
    kind: WorkloadKind = WorkloadKind.GENERIC
    elastic: ElasticRange | None = None
    submit_s: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _work_given_once(self) -> JobSpec:
        if (self.work_gpu_hours is None) == (self.duration_s is None):
            raise ValueError("give exactly one of work_gpu_hours or duration_s")
        if self.checkpoint_write_s is not None and self.checkpoint_size_gb is not None:
            raise ValueError("give at most one of checkpoint_write_s or checkpoint_size_gb")
        if self.elastic is not None and not (
            self.elastic.min_gpus <= self.gpus <= self.elastic.max_gpus
        ):
            raise ValueError("gpus must lie within elastic.min_gpus..elastic.max_gpus")
        return self

    def write_s(self, storage_write_gbps: float) -> float | None:
        """Seconds per checkpoint write: `checkpoint_write_s`, else `checkpoint_size_gb` over
        the fleet's checkpoint write bandwidth; None when neither is given (no checkpoints).
        Both drivers' rule (the twin's job files, the control plane's jobs)."""
        return write_s_of(self.checkpoint_write_s, self.checkpoint_size_gb, storage_write_gbps)

    @property
    def reference_duration_s(self) -> float:
        """Seconds this job runs at the reference flavor on its requested gang."""
        if self.duration_s is not None:
            return self.duration_s
        assert self.work_gpu_hours is not None
        return self.work_gpu_hours * 3600.0 / self.gpus


class JobFile(BaseModel):
    """A YAML job file holds one job, or a list under `jobs:`."""

    model_config = ConfigDict(extra="forbid")
    jobs: list[JobSpec]


def parse_jobs(data: Any, source: str) -> list[JobSpec]:
    """Validate already-parsed YAML/JSON into JobSpecs; raise InputError naming the field."""
    if isinstance(data, dict) and "jobs" in data:
        items = data["jobs"]
        if not isinstance(items, list):
            raise InputError(source, "jobs", "must be a list of jobs")
        prefix = "jobs"
    elif isinstance(data, list):
        items, prefix = data, ""
    elif isinstance(data, dict):
        items, prefix = [data], ""
    else:
        raise InputError(source, "<root>", "expected a job mapping or a list of jobs")
    specs: list[JobSpec] = []
    for i, item in enumerate(items):
        where = f"{prefix}[{i}]" if prefix else (f"[{i}]" if len(items) > 1 else "")
        try:
            specs.append(JobSpec.model_validate(item))
        except ValidationError as err:
            raise from_validation_error(source, err, where) from None
    if not specs:
        raise InputError(source, "jobs", "no jobs in file")
    return specs


def load_jobs(path: str | Path) -> list[JobSpec]:
    """Read a YAML job file (one job or many)."""
    p = Path(path)
    text = read_text(p)
    try:
        data = yamlfiles.load(text)  # YAML 1.2's booleans: `on` is not True
    except yaml.YAMLError as err:
        raise InputError(str(p), "<yaml>", str(err).splitlines()[0]) from None
    return parse_jobs(data, str(p))
