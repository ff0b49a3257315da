"""The constant-predictor baseline that training loss is compared with.

The constant is the running mean of every target seen so far in the run, scored on each new
batch before that batch joins the mean: exactly what a model that ignores its input would learn
from the same stream. (The mean of the batch itself would be an unfairly strong baseline: with
8 samples it fits sparse occupancy targets that no input-blind model could know.)"""

from __future__ import annotations

import torch

from cortex.training.workloads import Workload


class ConstantBaseline:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def score(self, batch: dict[str, torch.Tensor]) -> dict[str, float] | None:
        """The baseline's losses on `batch` (None for the first batch), then learn from it."""
        result = None
        with torch.no_grad():
            if self.count:
                means = {k: v / self.count for k, v in self.sums.items()}
                b = batch[self.wl.targets[0]].shape[0]
                losses = self.wl.losses(self.wl.constant_output(means, b), batch)
                result = {k: float(v) for k, v in losses.items()}
            for k in self.wl.targets:
                t = batch[k].float().sum(0)
                self.sums[k] = self.sums[k] + t if k in self.sums else t
            self.count += batch[self.wl.targets[0]].shape[0]
        return result
