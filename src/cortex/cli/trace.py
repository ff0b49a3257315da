"""`cortex trace convert-alibaba`: public traces into Cortex's CSV trace format."""

from __future__ import annotations

from pathlib import Path

import typer

from cortex.workload.trace import convert_alibaba

app = typer.Typer(help="Cluster traces.", no_args_is_help=True)


@app.command("convert-alibaba")
def convert(
    pod_csv: Path = typer.Argument(..., help="openb_pod_list_*.csv from alibaba/clusterdata"),
    out_csv: Path = typer.Argument(..., help="where to write the Cortex trace"),
) -> None:
    """Convert Alibaba's 2023 GPU pod list into a Cortex trace."""
    n = convert_alibaba(pod_csv, out_csv)
    typer.echo(f"wrote {n} jobs to {out_csv}")
