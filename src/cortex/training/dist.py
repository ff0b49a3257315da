"""torch.distributed from the torchrun-compatible environment the executors set
(MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK): gloo on CPU, NCCL on GPU."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device_choice: str) -> DistInfo:
    """Start the process group when WORLD_SIZE > 1 and pick this rank's device.

    `device_choice` is auto (CUDA when present), cpu or cuda."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is available")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1:
        torch_dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            init_method="env://",
            world_size=world,
            rank=rank,
            timeout=dt.timedelta(minutes=5),
        )
    return DistInfo(rank, local_rank, world, device)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when it is true on any: ranks receive SIGTERM at slightly different
    times but must stop at the same step, or the survivors hang in the next all-reduce."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def any_ranks(flags: tuple[bool, ...], info: DistInfo) -> tuple[bool, ...]:
    """`any_rank` for several flags in one all-reduce (one collective per step, not one per
    flag)."""
    if not info.distributed:
        return flags
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=info.device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return tuple(bool(x > 0) for x in t.tolist())


def barrier(info: DistInfo) -> None:
    if info.distributed:
        torch_dist.barrier()


def teardown(info: DistInfo) -> None:
    if info.distributed and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
