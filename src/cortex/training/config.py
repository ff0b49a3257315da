"""Training configurations: named presets (tiny, small, large) per workload plus command-line
overrides, validated with pydantic so that bad values produce one line naming the field.

This module does not import torch, so the CLI can reject bad input before paying torch's import.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cortex.errors import InputError, from_validation_error

Pos = Annotated[int, Field(gt=0, strict=True)]
NonNeg = Annotated[int, Field(ge=0, strict=True)]


class TrainSettings(BaseModel):
    """What every workload shares: the optimizer, the schedule and the job protocol knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: Pos  # per process (per GPU); the global batch is batch_size * WORLD_SIZE
    steps: Pos  # total optimizer steps of the run (a resumed run continues to this step)
    lr: Annotated[float, Field(gt=0, lt=1)]
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup_steps: NonNeg = 5
    log_every: Pos = 5
    checkpoint_every: Pos = 50
    keep_checkpoints: Pos = 3
    num_workers: NonNeg = 1
    seed: NonNeg = 0


class FsdModel(BaseModel):
    """Multi-camera video clip → shared conv encoder → BEV queries (cross-attention) → temporal
    attention → waypoint and occupancy heads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: Pos
    frames: Pos
    height: Pos
    width: Pos
    enc_channels: Pos  # first conv width; the encoder doubles it once, then projects to dim
    dim: Pos
    heads: Pos
    bev_grid: Pos  # BEV is bev_grid x bev_grid cells; the occupancy target uses the same grid
    temporal_layers: Pos = 1
    waypoints: Pos = 4
    boxes: NonNeg = 6  # other vehicles in each scene

    @model_validator(mode="after")
    def _shapes(self) -> FsdModel:
        if self.height % 8 or self.width % 8:
            raise ValueError("height and width must be multiples of 8 (encoder stride)")
        if self.dim % self.heads:
            raise ValueError("dim must be divisible by heads")
        return self


class OptimusModel(BaseModel):
    """Proprioception token + camera patch tokens + action-query tokens through a transformer;
    the query outputs are the next `chunk` joint-position targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    joints: Annotated[int, Field(ge=2, le=16, strict=True)]
    image: Pos
    patch: Pos
    dim: Pos
    heads: Pos
    layers: Pos
    chunk: Pos = 4  # future joint targets predicted per sample (action chunking)
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1

    @model_validator(mode="after")
    def _shapes(self) -> OptimusModel:
        if self.image % self.patch:
            raise ValueError("image must be a multiple of patch")
        if self.dim % self.heads:
            raise ValueError("dim must be divisible by heads")
        return self


class FsdConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    model: FsdModel
    train: TrainSettings


class OptimusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    model: OptimusModel
    train: TrainSettings


# Sizes: tiny runs a few dozen steps on one CPU thread in seconds (tests); small is a CPU
# benchmark size; large is meant to fill one H100 (see docs/training.md for its FLOP count).
FSD_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": {
            "cameras": 2,
            "frames": 2,
            "height": 32,
            "width": 32,
            "enc_channels": 8,
            "dim": 32,
            "heads": 2,
            "bev_grid": 8,
            "waypoints": 4,
            "boxes": 6,
        },
        "train": {
            "batch_size": 8,
            "steps": 100,
            "lr": 3e-3,
            "warmup_steps": 5,
            "log_every": 10,
            "checkpoint_every": 25,
            "num_workers": 1,
        },
    },
    "small": {
        "model": {
            "cameras": 4,
            "frames": 3,
            "height": 64,
            "width": 96,
            "enc_channels": 16,
            "dim": 64,
            "heads": 4,
            "bev_grid": 12,
            "waypoints": 6,
            "boxes": 8,
        },
        "train": {
            "batch_size": 8,
            "steps": 500,
            "lr": 2e-3,
            "warmup_steps": 20,
            "log_every": 10,
            "checkpoint_every": 100,
            "num_workers": 2,
        },
    },
    "large": {
        "model": {
            "cameras": 8,
            "frames": 4,
            "height": 128,
            "width": 256,
            "enc_channels": 64,
            "dim": 256,
            "heads": 8,
            "bev_grid": 32,
            "temporal_layers": 2,
            "waypoints": 8,
            "boxes": 12,
        },
        "train": {
            # 110 GFLOP per sample (fwd+bwd, docs/training.md): 64 is about 7 TFLOP a step
            "batch_size": 64,
            "steps": 20000,
            "lr": 5e-4,
            "warmup_steps": 500,
            "log_every": 20,
            "checkpoint_every": 1000,
            "num_workers": 8,
        },
    },
}

OPTIMUS_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "model": {
            "joints": 3,
            "image": 32,
            "patch": 8,
            "dim": 32,
            "heads": 2,
            "layers": 2,
            "chunk": 4,
        },
        "train": {
            "batch_size": 16,
            "steps": 100,
            "lr": 3e-3,
            "warmup_steps": 5,
            "log_every": 10,
            "checkpoint_every": 25,
            "num_workers": 1,
        },
    },
    "small": {
        "model": {
            "joints": 5,
            "image": 48,
            "patch": 8,
            "dim": 96,
            "heads": 4,
            "layers": 4,
            "chunk": 8,
        },
        "train": {
            "batch_size": 32,
            "steps": 1000,
            "lr": 1e-3,
            "warmup_steps": 50,
            "log_every": 10,
            "checkpoint_every": 200,
            "num_workers": 2,
        },
    },
    "large": {
        "model": {
            "joints": 7,
            "image": 128,
            "patch": 8,
            "dim": 768,
            "heads": 12,
            "layers": 12,
            "chunk": 16,
        },
        "train": {
            "batch_size": 128,
            "steps": 50000,
            "lr": 3e-4,
            "warmup_steps": 1000,
            "log_every": 20,
            "checkpoint_every": 2000,
            "num_workers": 8,
        },
    },
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {"fsd": FSD_PRESETS, "optimus": OPTIMUS_PRESETS}
CONFIG_TYPES: dict[str, type[FsdConfig] | type[OptimusConfig]] = {
    "fsd": FsdConfig,
    "optimus": OptimusConfig,
}


def build_config(
    workload: str, name: str, overrides: dict[str, Any] | None = None
) -> FsdConfig | OptimusConfig:
    """The preset `name` of `workload` with `overrides` applied to its train settings.

    Raises InputError (one line, naming the field) for an unknown preset or a bad value."""
    presets = PRESETS[workload]
    source = f"--config {name}"
    if name not in presets:
        raise InputError(source, "config", f"unknown config (known: {', '.join(presets)})")
    preset = presets[name]
    train = dict(preset["train"])
    for key, value in (overrides or {}).items():
        if value is not None:
            train[key] = value
    try:
        return CONFIG_TYPES[workload].model_validate(
            {"name": name, "model": preset["model"], "train": train}
        )
    except ValidationError as err:
        raise from_validation_error(source, err) from None
