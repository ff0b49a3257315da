"""Measure the training workloads on this device: the torch half of `python -m cortex.calibrate`.

`measure` trains one workload at a preset on one fixed batch and returns samples/s, step time,
NVML board power (mean over the timed window), peak allocated memory and the FLOPs of one step.
Turning those figures into calibration rows (flavor, MFU against the catalog's peak, derived rows
for other flavors, merging into the shipped table) is `cortex.calibrate`'s job: `training`
imports only the job protocol and torch, never the fleet or workload layers.

FLOP count (stated for MFU): `torch.utils.flop_counter.FlopCounterMode` over one full training
step (forward and backward) of the real model and batch: 2 FLOPs per multiply-accumulate of every
matmul, convolution and attention product; elementwise ops, norms and the optimizer are not
counted (they are a few percent and not tensor-core work).

Timing uses one fixed batch generated up front, so that it measures the GPU, not the procedural
data generator (whose CPU cost a real job hides behind DataLoader workers).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from cortex.training.config import build_config
from cortex.training.metrics import GpuPower
from cortex.training.workloads import WORKLOADS, Workload


class _PowerSampler(threading.Thread):
    """Polls NVML every 100 ms while the timed steps run (one reading at the end of a step
    would miss the power swings within it)."""

    def __init__(self, power: GpuPower) -> None:
        super().__init__(daemon=True)
        self.power = power
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            w = self.power.read_w()
            if w is not None:
                self.samples.append(w)
            time.sleep(0.1)


def _batch(
    wl: Workload, cfg: Any, batch_size: int, device: torch.device
) -> dict[str, torch.Tensor]:
    gen = wl.make_generator(cfg.model, 0)
    samples = [gen.sample(i) for i in range(batch_size)]
    return {k: torch.from_numpy(np.stack([s[k] for s in samples])).to(device) for k in samples[0]}


def measure(
    name: str,
    config: str,
    batch_size: int | None,
    device: torch.device,
    seconds: float,
    warmup: int,
    max_steps: int,
) -> dict[str, Any]:
    wl = WORKLOADS[name]
    cfg = build_config(name, config, {"batch_size": batch_size})
    cuda = device.type == "cuda"
    while True:
        bs = cfg.train.batch_size
        try:
            return _measure(wl, cfg, bs, device, seconds, warmup, max_steps)
        except torch.cuda.OutOfMemoryError:
            # Presets are sized by estimate; halve rather than lose the single device call.
            if not cuda or bs == 1:
                raise
            torch.cuda.empty_cache()
            print(f"{name}: out of memory at batch {bs}; retrying at {bs // 2}", file=sys.stderr)
            cfg = build_config(name, config, {"batch_size": bs // 2})


def _measure(
    wl: Workload,
    cfg: Any,
    bs: int,
    device: torch.device,
    seconds: float,
    warmup: int,
    max_steps: int,
) -> dict[str, Any]:
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = wl.build_model(cfg.model).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, fused=cuda)
    batch = _batch(wl, cfg, bs, device)
    autocast: Any = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cuda
        else torch.autocast("cpu", enabled=False)
    )

    def step() -> torch.Tensor:
        with autocast:
            out = wl.forward(model, batch)
        loss = wl.losses(out, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops_per_step = float(counter.get_total_flops())
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    sampler = _PowerSampler(GpuPower(device.index if cuda else None))
    sampler.start()
    steps = 0
    t0 = time.perf_counter()
    while steps < max_steps and time.perf_counter() - t0 < seconds:
        loss = step()
        steps += 1
    float(loss.detach())  # waits for the queued GPU work
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    step_s = elapsed / steps
    return {
        "workload": wl.name,
        "kind": wl.kind,
        "config": cfg.name,
        "batch_size": bs,
        "params": sum(p.numel() for p in model.parameters()),
        "steps_timed": steps,
        "step_s": step_s,
        "samples_per_s": bs / step_s,
        "flops_per_step": flops_per_step,
        "flops_per_sample": flops_per_step / bs,
        "gpu_power_w": float(np.mean(sampler.samples)) if sampler.samples else None,
        "gpu_power_samples": len(sampler.samples),
        "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "final_loss": float(loss.detach()),
    }


def device_name(device: torch.device) -> str:
    """The device as NVML/CUDA names it ("NVIDIA H100 80GB HBM3"), or the CPU smoke label."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)"


def prepare(device: torch.device) -> None:
    """Fast math settings a production job would use on this device."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def cuda_available() -> bool:
    return torch.cuda.is_available()
