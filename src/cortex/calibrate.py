"""Calibrate the twin with real measurements: `python -m cortex.calibrate --out DIR`.

On a GPU it trains both workloads at the `large` preset (sized to fill one H100) through
`cortex.training.calibrate.measure`, then writes DIR/calibration.csv (the measured flavor plus
derived rows for every other flavor, see cortex.workload.calibration) and DIR/calibration.json
(raw figures). With `--update-data` it also merges the rows into the shipped
src/cortex/workload/data/calibration.csv. The whole run is budgeted to finish in under 5 minutes
(`--seconds` per workload of timing). MFU = counted FLOPs per step / step time / the flavor's
dense bf16 peak (fleet/data/accelerators.csv).

This module is a composition root, like `cli/`: it is the one place that joins the training
layer (torch) with the fleet catalog, the NVML name map and the workload calibration table, so
that `training/` imports only the job protocol.

`--smoke` runs the same code on CPU with the tiny presets in seconds; its rows are marked
`smoke` and can never be merged into the shipped file. `--merge CSV` measures nothing and folds
the measured rows of a fetched calibration.csv into the shipped table (torch is not needed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from cortex.errors import InputError
from cortex.fleet.catalog import load_catalog
from cortex.fleet.nvml_names import catalog_flavor
from cortex.workload.calibration import CalibrationRow, CalibrationTable, merge


class CalibrationError(Exception):
    """A bad flag or file: printed as `error: <message>`, exit 2."""


SHIPPED = Path(__file__).resolve().parent / "workload" / "data" / "calibration.csv"
SMOKE_FLAVOR = "H100-SXM5"  # smoke rows need a catalog flavor to derive from; marked `smoke`


def flavor_of(arg: str, device_name: str | None) -> str:
    """The catalog flavor to file the measurements under: `--flavor` if given, else the device's
    NVML name through the one map in `fleet.nvml_names` (None = CPU smoke run)."""
    if arg != "auto":
        if arg not in load_catalog():
            raise CalibrationError(f"--flavor: unknown flavor {arg!r}")
        return arg
    if device_name is None:
        return SMOKE_FLAVOR
    flavor = catalog_flavor(device_name)
    if flavor is None:
        raise CalibrationError(
            f"--flavor: cannot map device {device_name!r} to a flavor; pass --flavor"
        )
    return flavor


def merge_file(path: Path, shipped: Path = SHIPPED) -> int:
    """Fold the measured (M) rows of a fetched calibration.csv into the shipped table."""
    fetched = CalibrationTable.from_csv(path)
    rows = [r for r in fetched.rows if r.confidence == "M"]
    if not rows:
        raise CalibrationError(f"{path}: no measured (M) rows")
    shipped.write_text(merge(CalibrationTable.from_csv(shipped), rows).to_text())
    return len(rows)


def row_for(r: dict[str, Any], flavor: str, config: str, date: str, device: str, *, smoke: bool,
            warmup: int, peak_tflops: float) -> CalibrationRow:  # fmt: skip
    return CalibrationRow(
        kind=r["kind"], flavor=flavor, samples_per_s=r["samples_per_s"], step_s=r["step_s"],
        gpu_power_w=r["gpu_power_w"], peak_mem_gb=r["peak_mem_gb"], mfu=r["mfu"],
        flops_per_sample=r["flops_per_sample"], config=config, batch_size=r["batch_size"],
        date=date, device=device, confidence="smoke" if smoke else "M",
        source=(
            f"python -m cortex.calibrate: {r['steps_timed']} timed steps after {warmup} warm-up, "
            f"fixed batch, bf16 autocast={not smoke}; power = mean of {r['gpu_power_samples']} "
            f"NVML samples; FLOPs by FlopCounterMode (fwd+bwd); mfu vs {peak_tflops:g} TFLOPS "
            "bf16 dense"
        ),
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cortex.calibrate", description=__doc__)
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
    return p


def run(args: argparse.Namespace) -> int:
    # torch is the optional `train` extra: imported only when something is measured.
    import torch

    from cortex.training import calibrate as measure_mod

    if not args.smoke and not measure_mod.cuda_available():
        raise CalibrationError("no CUDA device; use --smoke to check the script on CPU")
    device = torch.device("cpu") if args.smoke else torch.device("cuda", 0)
    name = measure_mod.device_name(device)
    flavor = flavor_of(args.flavor, None if args.smoke else name)
    config = "tiny" if args.smoke else "large"
    seconds = min(args.seconds, 5.0) if args.smoke else args.seconds
    warmup, max_steps = (1, 5) if args.smoke else (10, 100_000)
    measure_mod.prepare(device)
    peak_tflops = load_catalog()[flavor].bf16_dense_tflops
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    raw, measured = [], []
    for workload in ("fsd", "optimus"):
        batch = args.fsd_batch if workload == "fsd" else args.optimus_batch
        r = measure_mod.measure(workload, config, batch, device, seconds, warmup, max_steps)
        r["mfu"] = r["flops_per_step"] / r["step_s"] / (peak_tflops * 1e12)
        raw.append(r)
        print(json.dumps(r), file=sys.stderr)
        measured.append(row_for(r, flavor, config, date, name, smoke=args.smoke, warmup=warmup,
                                peak_tflops=peak_tflops))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.csv").write_text(merge(CalibrationTable([]), measured).to_text())
    (args.out / "calibration.json").write_text(
        json.dumps({"date": date, "device": name, "flavor": flavor, "runs": raw}, indent=2)
    )
    if args.update_data:
        SHIPPED.write_text(merge(CalibrationTable.from_csv(SHIPPED), measured).to_text())
    print(f"wrote {args.out / 'calibration.csv'}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.merge is not None:
            n = merge_file(args.merge)
            print(f"merged {n} measured rows into {SHIPPED}", file=sys.stderr)
            return 0
        if args.out is None:
            raise CalibrationError("--out: required unless --merge is given")
        if args.smoke and args.update_data:
            raise CalibrationError("--update-data: smoke rows never go into the shipped table")
        return run(args)
    except (InputError, CalibrationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
