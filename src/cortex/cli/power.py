"""`cortex power swing`: the power swing of one large synchronous job and what each remedy does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from cortex.errors import InputError, check_outputs
from cortex.fleet.spec import load_fleet_spec
from cortex.power import swing as sw

app = typer.Typer(help="Power: the swing of one large job and its remedies.", no_args_is_help=True)

_DEFAULT_FLEET = "cortex-2024"
_DEFAULT_TARGET_FRAC = 0.1  # battery sized to cut the swing to a tenth, when no size is given


def _option(err: InputError) -> InputError:
    """Name the command-line option for an error raised by the swing module."""
    if err.source != sw.SOURCE:
        return err
    return InputError("cortex power swing", "--" + err.field.replace("_", "-"), err.reason)


@app.command("swing")
def swing(
    gpus: int = typer.Option(..., help="GPUs in the job"),
    flavor: str = typer.Option(..., help="accelerator flavor, e.g. H100-SXM5"),
    iteration_s: float = typer.Option(..., help="seconds per training iteration"),
    comm_fraction: float = typer.Option(
        ..., help="fraction of each iteration spent communicating, in [0, 1)"
    ),
    pue: float | None = typer.Option(None, help=f"PUE (default: the {_DEFAULT_FLEET} preset's)"),
    seconds: int = typer.Option(120, help="seconds to simulate"),
    sample_hz: int = typer.Option(10, help="samples per second (the grid view averages to 1 s)"),
    checkpoint_every_s: float | None = typer.Option(
        None, help="seconds of training between blocking checkpoints"
    ),
    checkpoint_stall_s: float = typer.Option(0.0, help="seconds each checkpoint stalls the job"),
    filler_fraction: float = typer.Option(
        0.5, help="share of each GPU that filler work takes in the communication phase (0: off)"
    ),
    floor_w: float | None = typer.Option(
        None, help="per-GPU power floor in W (default: the flavor's mean training draw)"
    ),
    battery_mw: float | None = typer.Option(
        None, help="battery power; with --battery-mwh (default: the smallest for the target)"
    ),
    battery_mwh: float | None = typer.Option(None, help="battery energy"),
    battery_efficiency: float | None = typer.Option(
        None, help="battery round-trip efficiency in (0, 1] (default: the Megapack row's)"
    ),
    target_amplitude_mw: float | None = typer.Option(
        None, help="grid amplitude the smallest battery must reach (default: 10% of baseline)"
    ),
    json_path: Path | None = typer.Option(None, "--json", help="write the JSON report here"),
    plot_path: Path | None = typer.Option(None, "--plot", help="write a PNG plot here"),
) -> None:
    """Compute the site power swing of one synchronous job, then filler work, a GPU power floor
    and a battery, each with its amplitude, mean, energy and throughput effect."""
    # before the work: a bad --plot once came after --json was written; one path for both
    # wrote the JSON, then the PNG over it
    check_outputs({"--json": json_path, "--plot": plot_path})
    try:
        report, results = run_swing(
            gpus=gpus,
            flavor=flavor,
            iteration_s=iteration_s,
            comm_fraction=comm_fraction,
            pue=pue,
            seconds=seconds,
            sample_hz=sample_hz,
            checkpoint_every_s=checkpoint_every_s,
            checkpoint_stall_s=checkpoint_stall_s,
            filler_fraction=filler_fraction,
            floor_w=floor_w,
            battery_mw=battery_mw,
            battery_mwh=battery_mwh,
            battery_efficiency=battery_efficiency,
            target_amplitude_mw=target_amplitude_mw,
        )
    except InputError as err:
        raise _option(err) from None
    _print_table(report)
    if json_path is not None:
        _write(json_path, "--json", lambda p: p.write_text(json.dumps(report, indent=1) + "\n"))
    if plot_path is not None:
        from cortex.power.swing_plot import write_plot

        _write(plot_path, "--plot", lambda p: write_plot(results, report, p))


def run_swing(
    *,
    gpus: int,
    flavor: str,
    iteration_s: float,
    comm_fraction: float,
    pue: float | None = None,
    seconds: int = 120,
    sample_hz: int = 10,
    checkpoint_every_s: float | None = None,
    checkpoint_stall_s: float = 0.0,
    filler_fraction: float = 0.5,
    floor_w: float | None = None,
    battery_mw: float | None = None,
    battery_mwh: float | None = None,
    battery_efficiency: float | None = None,
    target_amplitude_mw: float | None = None,
) -> tuple[dict[str, Any], list[sw.RemedyResult]]:
    """Everything the command prints and writes: the JSON report and the remedy series."""
    if pue is None:
        pue = load_fleet_spec(_DEFAULT_FLEET).site.pue
    if (battery_mw is None) != (battery_mwh is None):
        raise InputError(sw.SOURCE, "battery_mwh", "give --battery-mw and --battery-mwh together")
    job = sw.SwingJob(
        gpus=gpus,
        flavor=flavor,
        iteration_s=iteration_s,
        comm_fraction=comm_fraction,
        pue=pue,
        checkpoint_every_s=checkpoint_every_s,
        checkpoint_stall_s=checkpoint_stall_s,
    )
    prof = sw.job_profile(job, seconds=seconds, sample_hz=sample_hz)
    draw = prof.draw
    eff = (
        battery_efficiency
        if battery_efficiency is not None
        else sw.megapack().round_trip_efficiency
    )
    base = sw.baseline(prof)
    target = (
        target_amplitude_mw
        if target_amplitude_mw is not None
        else _DEFAULT_TARGET_FRAC * base.amplitude_mw
    )
    smallest = sw.smallest_battery(prof, target, eff)
    bat = (
        sw.Battery(battery_mw, battery_mwh, eff)
        if battery_mw is not None and battery_mwh is not None
        else smallest
    )
    results = [
        base,
        sw.with_filler(prof, filler_fraction),
        sw.with_floor(prof, floor_w if floor_w is not None else draw.busy_w),
        sw.with_battery(prof, bat, base),
    ]
    unit = sw.megapack()
    report: dict[str, Any] = {
        "job": {
            "gpus": gpus,
            "flavor": flavor,
            "iteration_s": iteration_s,
            "comm_fraction": comm_fraction,
            "pue": pue,
            "nodes": prof.nodes,
            "checkpoint_every_s": checkpoint_every_s,
            "checkpoint_stall_s": checkpoint_stall_s,
        },
        "sampling": {"seconds": seconds, "sample_hz": sample_hz},
        "draw_w": {
            "compute": draw.compute_w,
            "comm": draw.comm_w,
            "stall": draw.stall_w,
            "node_overhead": draw.node_overhead_w,
            "tdp": draw.tdp_w,
            "source": draw.source,
        },
        "remedies": [r.summary() for r in results],
        "smallest_battery": {
            "target_amplitude_mw": round(target, 4),
            "battery_mw": round(smallest.power_mw, 4),
            "battery_mwh": round(smallest.energy_mwh, 6),
            "battery_efficiency": eff,
            "units": sw.units_needed(smallest.power_mw, smallest.energy_mwh, unit),
            "unit": unit.name,
            "unit_power_mw": unit.power_mw,
            "unit_energy_mwh": unit.energy_mwh,
        },
        "series_1s": {
            "t_s": list(range(seconds)),
            **{r.name + "_mw": [round(float(v), 4) for v in r.grid_1s_mw] for r in results},
        },
    }
    return report, results


def _print_table(r: dict[str, Any]) -> None:
    j = r["job"]
    t = Table(
        title=f"{j['gpus']:,} x {j['flavor']} · iteration {j['iteration_s']:g} s · "
        f"comm {j['comm_fraction']:.0%} · PUE {j['pue']:g}"
    )
    for col in (
        "remedy",
        "amplitude MW",
        "1-s amplitude MW",
        "mean MW",
        "energy MWh",
        "main throughput",
        "notes",
    ):
        t.add_column(col, justify="left" if col in ("remedy", "notes") else "right")
    for x in r["remedies"]:
        notes = _notes(x)
        t.add_row(
            x["name"],
            f"{x['amplitude_mw']:,.2f}",
            f"{x['amplitude_1s_mw']:,.2f}",
            f"{x['mean_mw']:,.2f}",
            f"{x['energy_mwh']:,.3f}",
            f"{x['main_throughput_rel']:.3f}",
            notes,
        )
    Console().print(t)
    s = r["smallest_battery"]
    Console().print(
        f"smallest battery for a {s['target_amplitude_mw']:.2f} MW grid amplitude: "
        f"{s['battery_mw']:.2f} MW, {s['battery_mwh'] * 1000:,.1f} kWh "
        f"({s['units']} x {s['unit']})"
    )


def _notes(x: dict[str, Any]) -> str:
    """The remedy's own figures, in one cell."""
    name = x["name"]
    if name == "baseline":
        return f"stalled {x['stall_fraction']:.1%}"
    if name == "filler":
        return f"f={x['filler_fraction']:g}, +{x['filler_gpu_h']:,.1f} filler GPU-h"
    if name == "floor":
        return f"{x['floor_w']:g} W floor, {x['wasted_energy_mwh'] * 1000:,.1f} kWh wasted"
    return (
        f"{x['battery_mw']:.2f} MW / {x['battery_mwh'] * 1000:,.1f} kWh, "
        f"SoC {x['soc_min_mwh'] * 1000:,.1f}-{x['soc_max_mwh'] * 1000:,.1f} kWh, "
        f"losses {x['losses_mwh'] * 1000:,.1f} kWh"
    )


def _write(path: Path, option: str, writer: Any) -> None:
    """Write an output file, creating its folder; an unwritable path is an input error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)
    except OSError as err:
        raise InputError(str(path), option, err.strerror or str(err)) from None
