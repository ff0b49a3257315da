"""The training loop shared by both workloads: resume, train, log, checkpoint, stop on SIGTERM."""

from __future__ import annotations

import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cortex import jobproto
from cortex.training import checkpoint, dist, testhooks
from cortex.training.baseline import ConstantBaseline
from cortex.training.config import FsdConfig, OptimusConfig
from cortex.training.metrics import GpuPower, MetricsWriter
from cortex.training.signals import StopFlag
from cortex.training.stream import BatchStream, make_loader
from cortex.training.workloads import Workload


@dataclass(frozen=True)
class RunOptions:
    checkpoint_dir: Path | None
    metrics_file: Path | None
    device: str = "auto"  # auto | cpu | cuda
    deterministic: bool | None = None  # None: on for CPU, off for GPU (cuDNN autotuning)
    # Also checkpoint when this many seconds have passed since the last one (the control
    # plane's CORTEX_CHECKPOINT_INTERVAL_S), whatever the step count; None: steps only.
    checkpoint_interval_s: float | None = None


def lr_lambda(warmup: int, total: int) -> Any:
    """Linear warm-up, then cosine decay to 10% of the peak rate."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        frac = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    return f


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _state(
    wl: Workload,
    cfg: FsdConfig | OptimusConfig,
    step: int,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    global_batch: int,
    world: int,
) -> dict[str, Any]:
    return {
        "workload": wl.name,
        "config": cfg.model.model_dump(),
        "step": step,
        "model": _unwrap(model).state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "rng": checkpoint.rng_state(),
        # The stream is keyed by step, so the next step *is* the data position.
        "data": {"next_step": step, "samples_seen": step * global_batch, "world_size": world},
    }


def train(wl: Workload, cfg: FsdConfig | OptimusConfig, opts: RunOptions) -> int:
    """Run to `cfg.train.steps`; return the exit code (0 done, 75 preempted)."""
    stop = StopFlag()
    stop.install()  # first, so a SIGTERM during start-up still ends in a clean exit 75
    info = dist.setup(opts.device)
    try:
        return _train(wl, cfg, opts, info, stop)
    finally:
        dist.teardown(info)


def _train(
    wl: Workload,
    cfg: FsdConfig | OptimusConfig,
    opts: RunOptions,
    info: dist.DistInfo,
    stop: StopFlag,
) -> int:
    t = cfg.train
    cuda = info.device.type == "cuda"
    _seed(t.seed, cuda, opts.deterministic)

    ckpt_dir = _checkpoint_dir(opts, info)
    metrics = _metrics_writer(opts, info, wl.name, cfg.name)
    power = GpuPower(info.device.index if cuda else None)

    model = wl.build_model(cfg.model).to(info.device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(t.warmup_steps, t.steps))
    start = _resume(wl, cfg, ckpt_dir, model, opt, sched, metrics)
    _announce(wl.name, cfg.name, model, info, start, t.steps)
    net = _wrap(model, info, cuda)

    global_batch = t.batch_size * info.world_size
    stream = BatchStream(
        lambda: wl.make_generator(cfg.model, t.seed),
        t.batch_size,
        start,
        info.rank,
        info.world_size,
    )
    batches = iter(make_loader(stream, t.num_workers, t.seed))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()

    def save(step: int) -> None:
        if ckpt_dir is not None and info.is_main:
            path = checkpoint.save(
                ckpt_dir,
                step,
                _state(wl, cfg, step, net, opt, sched, global_batch, info.world_size),
                t.keep_checkpoints,
            )
            metrics.write(event="checkpoint", step=step, path=str(path))
        dist.barrier(info)

    window = _Window(info.device)
    baseline = ConstantBaseline(wl)
    if cuda:
        torch.cuda.reset_peak_memory_stats(info.device)
    step = start
    timer = CheckpointTimer(opts.checkpoint_interval_s)
    try:
        stop_now = dist.any_rank(stop.requested, info)
        while step < t.steps:
            if stop_now:
                save(step)
                metrics.write(event="preempted", step=step, signal=stop.signal_name or "SIGTERM")
                return jobproto.EXIT_PREEMPTED
            batch = {k: v.to(info.device, non_blocking=True) for k, v in next(batches).items()}
            net.train()
            with autocast:
                out = wl.forward(net, batch)
            losses = wl.losses(out, batch)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            window.add(losses, baseline.score(batch))
            testhooks.pause_at_step(step, stop)
            if step % t.log_every == 0 or step == t.steps:
                _log_step(
                    metrics,
                    window.flush(global_batch),
                    step,
                    t.steps,
                    info,
                    lr=sched.get_last_lr()[0],
                    samples_seen=step * global_batch,
                    world_size=info.world_size,
                    gpu_power_w=power.read_w(),
                    gpu_mem_peak_gb=_mem_peak_gb(info.device) if cuda else None,
                )
            # One collective for the stop (acted on at the top of the next iteration, which
            # saves anyway) and the interval, measured after the step.
            stop_now, time_due = dist.any_ranks((stop.requested, timer.due()), info)
            periodic = step % t.checkpoint_every == 0 or time_due
            if periodic and step < t.steps and not stop_now:
                save(step)
                timer.reset()
        save(step)
        testhooks.dump_params(model, info.rank)
        metrics.write(event="done", step=step)
        return jobproto.EXIT_OK
    finally:
        metrics.close()
        # An error's traceback holds this frame, and with it the loader's workers, until the
        # interpreter's exit SIGTERMs and joins them: they ignore SIGTERM (stream.py), so the
        # process waited for ever. Dropping the iterator stops them the DataLoader's own way.
        del batches


def _announce(
    workload: str, config: str, model: nn.Module, info: dist.DistInfo, start: int, steps: int
) -> None:
    if info.is_main:
        params = sum(p.numel() for p in model.parameters())
        print(
            f"{workload} --config {config}: {params:,} parameters, device {info.device}, "
            f"world {info.world_size}, steps {start}..{steps}",
            file=sys.stderr,
            flush=True,
        )


def _metrics_writer(
    opts: RunOptions, info: dist.DistInfo, workload: str, config: str
) -> MetricsWriter:
    """The metrics file's writer (main rank only); every line names the job and its attempt,
    which the control plane reads to keep attempts apart."""
    common = {
        "job_id": os.environ.get(jobproto.ENV_JOB_ID),
        "attempt": _attempt(),
        "workload": workload,
        "config": config,
    }
    return MetricsWriter(opts.metrics_file if info.is_main else None, common)


def _log_step(
    metrics: MetricsWriter,
    line: dict[str, float],
    step: int,
    steps: int,
    info: dist.DistInfo,
    **extra: Any,
) -> None:
    """A logged step: a metrics line, and on the main rank one line on stdout (what `cortex
    logs -f` shows)."""
    if info.is_main:
        print(
            f"step {step}/{steps} loss {line['loss']:.4f} samples/s {line['samples_per_s']:.1f}",
            flush=True,
        )
    metrics.write(step=step, **line, **extra)


class CheckpointTimer:
    """Due once `interval_s` has passed since the last checkpoint (or the start)."""

    def __init__(self, interval_s: float | None) -> None:
        self.interval_s = interval_s
        self.reset()

    def reset(self) -> None:
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.interval_s is not None and time.monotonic() - self.last >= self.interval_s


def _attempt() -> int | None:
    raw = os.environ.get(jobproto.ENV_ATTEMPT, "")
    return int(raw) if raw.isdigit() else None


def _wrap(model: nn.Module, info: dist.DistInfo, cuda: bool) -> nn.Module:
    if not info.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[info.device.index] if cuda else None)


def _checkpoint_dir(opts: RunOptions, info: dist.DistInfo) -> Path | None:
    ckpt_dir = opts.checkpoint_dir
    if ckpt_dir is not None:
        # Every rank probes, so a bad directory fails all of them with the same one-line error
        # instead of leaving the others waiting at a barrier; only rank 0 removes torn writes.
        checkpoint.prepare_dir(ckpt_dir, clean=info.is_main)
        dist.barrier(info)
    return ckpt_dir


def _mem_peak_gb(device: torch.device) -> float:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def _seed(seed: int, cuda: bool, deterministic: bool | None) -> None:
    if (not cuda) if deterministic is None else deterministic:
        torch.use_deterministic_algorithms(True)
        if cuda:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Same seed on every rank, so that a run is reproducible for a given rank count (DDP also
    # broadcasts rank 0's initial parameters, so the model starts identical either way).
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _resume(
    wl: Workload,
    cfg: FsdConfig | OptimusConfig,
    ckpt_dir: Path | None,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    metrics: MetricsWriter,
) -> int:
    """Load the newest checkpoint into the model, optimizer, LR schedule and RNGs; the step to
    go on from (0 with none)."""
    state = checkpoint.load_latest(ckpt_dir) if ckpt_dir is not None else None
    if state is None:
        metrics.write(event="start", step=0)
        return 0
    if state.get("workload") != wl.name or state.get("config") != cfg.model.model_dump():
        raise checkpoint.CheckpointError(
            f"{ckpt_dir}: checkpoint step {state['step']} was written by a different "
            f"workload or model config (workload {state.get('workload')!r})"
        )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    checkpoint.set_rng_state(state["rng"])
    start = int(state["data"]["next_step"])
    metrics.write(event="resume", step=start, from_world_size=state["data"]["world_size"])
    return start


class _Window:
    """Losses and baseline scores summed over the steps since the last log line. The loss stays
    on the device, so reading it once per log line is the only sync point for CUDA timing."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.parts_sum: dict[str, float] = {}
        self.base_sum: dict[str, float] = {}
        self.n_acc = self.n_base = 0
        self.t_last = time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor], base: dict[str, float] | None) -> None:
        self.loss_sum += losses["loss"].detach()
        for k, part in losses.items():
            if k != "loss":
                self.parts_sum[k] = self.parts_sum.get(k, 0.0) + float(part.detach())
        for k, value in (base or {}).items():
            self.base_sum[k] = self.base_sum.get(k, 0.0) + value
        self.n_base += base is not None
        self.n_acc += 1

    def flush(self, global_batch: int) -> dict[str, float]:
        """The window's means and speed, in the log line's key order; then starts a new one."""
        n_acc, n_base = self.n_acc, self.n_base
        mean_loss = float(self.loss_sum) / n_acc  # the sync point for CUDA timing
        elapsed = time.perf_counter() - self.t_last
        out = {
            "loss": round(mean_loss, 6),
            **{f"baseline_{k}": round(v / n_base, 6) for k, v in self.base_sum.items()},
            **{k: round(v / n_acc, 6) for k, v in self.parts_sum.items()},
            "samples_per_s": round(global_batch * n_acc / elapsed, 3),
            "step_s": round(elapsed / n_acc, 5),
        }
        self.loss_sum.zero_()
        self.parts_sum.clear()
        self.base_sum.clear()
        self.n_acc, self.n_base, self.t_last = 0, 0, time.perf_counter()
        return out
