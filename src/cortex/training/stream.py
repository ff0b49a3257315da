"""A batch stream keyed by step index, so that a data position is one integer.

Batch `step` on rank r holds samples `step * global_batch + r * batch + [0, batch)`; worker w of
W produces the batches with `(step - start) % W == w`. PyTorch's DataLoader takes batches from
its workers round-robin, so the loader yields steps start, start + 1, ... in order whatever the
worker count, and a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class Generator(Protocol):
    def sample(self, index: int) -> dict[str, np.ndarray]: ...


class BatchStream(IterableDataset[dict[str, torch.Tensor]]):
    """Endless batches from `make_generator()` (built inside each worker: generators hold
    precomputed arrays that need not be pickled across)."""

    def __init__(
        self,
        make_generator: Callable[[], Generator],
        batch_size: int,
        start_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.make_generator = make_generator
        self.batch_size = batch_size
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size

    def batch(self, gen: Generator, step: int) -> dict[str, torch.Tensor]:
        first = (step * self.world_size + self.rank) * self.batch_size
        samples = [gen.sample(first + i) for i in range(self.batch_size)]
        return {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        gen = self.make_generator()
        step = self.start_step + worker
        while True:
            yield self.batch(gen, step)
            step += workers


def _ignore_sigterm(worker_id: int) -> None:
    """Executors may signal the whole process group. A worker killed by SIGTERM would make the
    main process fail with "DataLoader worker exited unexpectedly" instead of checkpointing, so
    workers leave SIGTERM to the main process, which stops them when it exits."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(stream: BatchStream, num_workers: int, seed: int) -> DataLoader[Any]:
    """A DataLoader over whole batches. Its own generator keeps the loader from drawing from the
    global torch RNG, whose state the checkpoint restores (an extra draw would break resume)."""
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        generator=g,
        worker_init_fn=_ignore_sigterm,
        persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
    )
