"""Calibrate the twin with real measurements: `python -m cortex.training.calibrate --out DIR`.

On a GPU it trains both workloads at the `large` preset (sized to fill one H100), and measures
samples/s, step time, NVML board power (mean over the timed window), peak allocated memory and
MFU, then writes DIR/calibration.csv (the measured flavor plus derived rows for every other
flavor, see cortex.workload.calibration) and DIR/calibration.json (raw figures). With
`--update-data` it also merges the rows into the shipped src/cortex/workload/data/calibration.csv.
The whole run is budgeted to finish in under 5 minutes (`--seconds` per workload of timing).

FLOP count (stated for MFU): `torch.utils.flop_counter.FlopCounterMode` over one full training
step (forward and backward) of the real model and batch: 2 FLOPs per multiply-accumulate of every
matmul, convolution and attention product; elementwise ops, norms and the optimizer are not
counted (they are a few percent and not tensor-core work). MFU = counted FLOPs per step / step
time / the flavor's dense bf16 peak (fleet/data/accelerators.csv).

Timing uses one fixed batch generated up front, so that it measures the GPU, not the procedural
data generator (whose CPU cost a real job hides behind DataLoader workers).

`--smoke` runs the same code on CPU with the tiny presets in seconds; its rows are marked
`smoke` and can never be merged into the shipped file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from cortex.errors import InputError
from cortex.fleet.catalog import load_catalog
from cortex.training.config import build_config
from cortex.training.metrics import GpuPower
from cortex.training.workloads import WORKLOADS, Workload
from cortex.workload.calibration import CalibrationRow, CalibrationTable, merge

_FLAVOR_BY_NAME = (("H100", "H100-SXM5"), ("H200", "H200-SXM"), ("B200", "B200-HGX"))
SHIPPED = Path(__file__).resolve().parents[1] / "workload" / "data" / "calibration.csv"


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


def _flavor(arg: str, device: torch.device) -> str:
    if arg != "auto":
        if arg not in load_catalog():
            raise SystemExit(f"error: --flavor: unknown flavor {arg!r}")
        return arg
    if device.type != "cuda":
        return "H100-SXM5"  # smoke rows need a catalog flavor to derive from; marked `smoke`
    name = torch.cuda.get_device_name(device)
    for key, flavor in _FLAVOR_BY_NAME:
        if key in name:
            return flavor
    raise SystemExit(f"error: --flavor: cannot map device {name!r} to a flavor; pass --flavor")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cortex.training.calibrate", description=__doc__)
    p.add_argument("--out", type=Path, help="directory for calibration.csv/json")
    p.add_argument("--smoke", action="store_true", help="CPU, tiny presets, a few steps")
    p.add_argument("--seconds", type=float, default=45.0, help="timed seconds per workload")
    p.add_argument("--flavor", default="auto", help="catalog flavor of this device")
    p.add_argument("--fsd-batch", type=int, help="per-GPU batch for fsd (default: the preset)")
    p.add_argument("--optimus-batch", type=int, help="per-GPU batch for optimus (default: preset)")
    p.add_argument("--merge", type=Path, metavar="CSV",
                   help="measure nothing: merge the measured (M) rows of a calibration.csv that "
                        "a GPU run wrote into the shipped table (for results fetched from a "
                        "device machine)")  # fmt: skip
    p.add_argument("--update-data", action="store_true",
                   help="merge the rows into the shipped data/calibration.csv")  # fmt: skip
    args = p.parse_args(argv)
    if args.merge is not None:
        try:
            fetched = CalibrationTable.from_csv(args.merge)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        rows = [r for r in fetched.rows if r.confidence == "M"]
        if not rows:
            print(f"error: {args.merge}: no measured (M) rows", file=sys.stderr)
            return 2
        SHIPPED.write_text(merge(CalibrationTable.from_csv(SHIPPED), rows).to_text())
        print(f"merged {len(rows)} measured rows into {SHIPPED}", file=sys.stderr)
        return 0
    if args.out is None:
        print("error: --out: required unless --merge is given", file=sys.stderr)
        return 2
    if args.smoke and args.update_data:
        print("error: --update-data: smoke rows never go into the shipped table", file=sys.stderr)
        return 2
    if not args.smoke and not torch.cuda.is_available():
        print("error: no CUDA device; use --smoke to check the script on CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu") if args.smoke else torch.device("cuda", 0)
    flavor = _flavor(args.flavor, device)
    config = "tiny" if args.smoke else "large"
    seconds = min(args.seconds, 5.0) if args.smoke else args.seconds
    warmup, max_steps = (1, 5) if args.smoke else (10, 100_000)
    if not args.smoke:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    peak_tflops = load_catalog()[flavor].bf16_dense_tflops
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (smoke)"
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")

    raw = []
    measured = []
    for name in ("fsd", "optimus"):
        batch = args.fsd_batch if name == "fsd" else args.optimus_batch
        r = measure(name, config, batch, device, seconds, warmup, max_steps)
        r["mfu"] = r["flops_per_step"] / r["step_s"] / (peak_tflops * 1e12)
        raw.append(r)
        print(json.dumps(r), file=sys.stderr)
        measured.append(
            CalibrationRow(
                kind=r["kind"], flavor=flavor, samples_per_s=r["samples_per_s"],
                step_s=r["step_s"], gpu_power_w=r["gpu_power_w"], peak_mem_gb=r["peak_mem_gb"],
                mfu=r["mfu"], flops_per_sample=r["flops_per_sample"], config=config,
                batch_size=r["batch_size"], date=date, device=device_name,
                confidence="smoke" if args.smoke else "M",
                source=(
                    f"python -m cortex.training.calibrate: {r['steps_timed']} timed steps after "
                    f"{warmup} warm-up, fixed batch, bf16 autocast={device.type == 'cuda'}; power "
                    f"= mean of {r['gpu_power_samples']} NVML samples; FLOPs by FlopCounterMode "
                    f"(fwd+bwd); mfu vs {peak_tflops:g} TFLOPS bf16 dense"
                ),
            )
        )  # fmt: skip
    table = merge(CalibrationTable([]), measured)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.csv").write_text(table.to_text())
    (args.out / "calibration.json").write_text(
        json.dumps({"date": date, "device": device_name, "flavor": flavor, "runs": raw}, indent=2)
    )
    if args.update_data:
        shipped = merge(CalibrationTable.from_csv(SHIPPED), measured)
        SHIPPED.write_text(shipped.to_text())
    print(f"wrote {args.out / 'calibration.csv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
