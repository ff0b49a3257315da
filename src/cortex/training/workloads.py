"""The two workloads behind one interface, so the loop, the benchmark and the calibration treat
them alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cortex.training.config import FsdConfig, FsdModel, OptimusConfig, OptimusModel
from cortex.training.data_fsd import FsdGenerator
from cortex.training.data_optimus import OptimusGenerator
from cortex.training.models_fsd import FsdNet, fsd_constant_output, fsd_losses
from cortex.training.models_optimus import OptimusNet, optimus_constant_output, optimus_losses
from cortex.training.stream import Generator


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # the twin's workload kind (cortex.workload.spec.WorkloadKind)
    build_model: Callable[[Any], nn.Module]
    make_generator: Callable[[Any, int], Generator]
    forward: Callable[[nn.Module, dict[str, torch.Tensor]], Any]
    losses: Callable[[Any, dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    targets: tuple[str, ...]  # batch keys the model predicts
    constant_output: Callable[[dict[str, torch.Tensor], int], Any]


def _fsd_model(m: FsdModel) -> nn.Module:
    return FsdNet(m)


def _fsd_gen(m: FsdModel, seed: int) -> Generator:
    return FsdGenerator(m, seed)


def _optimus_model(m: OptimusModel) -> nn.Module:
    return OptimusNet(m)


def _optimus_gen(m: OptimusModel, seed: int) -> Generator:
    return OptimusGenerator(m, seed)


FSD = Workload(
    name="fsd",
    kind="fsd-video",
    build_model=_fsd_model,
    make_generator=_fsd_gen,
    forward=lambda model, b: model(b["video"], b["speed"]),
    losses=fsd_losses,
    targets=("waypoints", "occupancy"),
    constant_output=fsd_constant_output,
)
OPTIMUS = Workload(
    name="optimus",
    kind="optimus-policy",
    build_model=_optimus_model,
    make_generator=_optimus_gen,
    forward=lambda model, b: model(b["image"], b["proprio"]),
    losses=optimus_losses,
    targets=("action",),
    constant_output=optimus_constant_output,
)
WORKLOADS = {"fsd": FSD, "optimus": OPTIMUS}
CONFIG_OF = {"fsd": FsdConfig, "optimus": OptimusConfig}
