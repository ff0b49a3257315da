"""`cortex fleet show|list`."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from cortex.fleet.power import PowerModel
from cortex.fleet.spec import PRESETS, load_fleet_spec
from cortex.fleet.topology import build
from cortex.power.cooling import CoolingModel

app = typer.Typer(help="Fleets: presets and files.", no_args_is_help=True)


def fleet_summary(preset_or_file: str) -> dict:
    """GPUs by flavor, nodes, pods, racks, halls and power figures of a fleet."""
    topo = build(load_fleet_spec(preset_or_file))
    pm = PowerModel.for_topology(topo)
    fg = topo.flavor_gpus()
    site = topo.spec.site
    cool = CoolingModel.for_pue(site.pue)
    nameplate = pm.peak_it_w(fg)

    def facility_mw(it_w: float) -> float:  # at the design temperature
        return cool.facility_w(it_w, nameplate, cool.design_temp_c) / 1e6

    return {
        "name": topo.name,
        "description": topo.spec.description,
        "gpus": topo.total_gpus,
        "gpus_by_flavor": dict(zip(topo.flavors, fg, strict=True)),
        "nodes": topo.n_nodes,
        "pods": topo.n_pods,
        "racks": topo.n_racks,
        "halls": list(topo.hall_names),
        "pue": site.pue,
        "site_power_cap_mw": site.power_cap_mw,
        "peak_facility_mw": round(facility_mw(nameplate), 2),
        "busy_facility_mw": round(facility_mw(pm.busy_it_w(fg)), 2),
    }


@app.command("show")
def show(
    preset_or_file: str = typer.Argument(..., help="a preset name or a fleet YAML file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Print GPUs by flavor, nodes, pods, halls and peak facility power."""
    s = fleet_summary(preset_or_file)
    if as_json:
        typer.echo(json.dumps(s, indent=1))
        return
    t = Table(title=f"{s['name']}: {s['description']}")
    t.add_column("field")
    t.add_column("value", justify="right")
    for flavor, n in s["gpus_by_flavor"].items():
        t.add_row(f"GPUs {flavor}", f"{n:,}")
    t.add_row("GPUs total", f"{s['gpus']:,}")
    t.add_row("nodes", f"{s['nodes']:,}")
    t.add_row("pods", f"{s['pods']:,}")
    t.add_row("racks", f"{s['racks']:,}")
    t.add_row("halls", ", ".join(s["halls"]))
    t.add_row("PUE", f"{s['pue']:.2f}")
    cap = s["site_power_cap_mw"]
    t.add_row("site power cap MW", "-" if cap is None else f"{cap:,.1f}")
    t.add_row("peak facility MW (all at TDP)", f"{s['peak_facility_mw']:,.1f}")
    t.add_row("busy facility MW (training draw)", f"{s['busy_facility_mw']:,.1f}")
    Console().print(t)


@app.command("list")
def list_presets() -> None:
    """List the preset fleets."""
    for p in PRESETS:
        typer.echo(p)
