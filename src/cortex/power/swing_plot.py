"""PNG plot for `cortex power swing`: site power over time for the baseline and each remedy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cortex.power.swing import RemedyResult

_COLORS = {"baseline": "#444444", "filler": "#2a9d8f", "floor": "#e76f51", "battery": "#1d4ed8"}


def write_plot(results: list[RemedyResult], report: dict[str, Any], path: Path) -> None:
    """Top: sub-second grid power of each remedy over the first iterations, with the baseline's
    one-second average. Bottom: one-second grid power over the whole horizon."""
    job = report["job"]
    hz = results[0].sample_hz
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(10, 7), constrained_layout=True)
    try:
        # Three repeat periods (at most 60 s) show the shape without crowding it.
        zoom_s = min(len(results[0].grid_mw) / hz, max(3 * float(job["iteration_s"]), 10.0), 60.0)
        n = round(zoom_s * hz)
        t = np.arange(n) / hz
        for r in results:
            ax0.step(
                t,
                r.grid_mw[:n],
                where="post",
                color=_COLORS.get(r.name),
                lw=1.2,
                label=f"{r.name} ({r.amplitude_mw:.2f} MW p-p)",
            )
        base_1s = results[0].grid_1s_mw
        k = int(np.ceil(zoom_s))
        ax0.step(
            np.arange(k),
            base_1s[:k],
            where="post",
            color="#444444",
            ls=":",
            lw=1,
            label="baseline, 1-s average",
        )
        ax0.set_xlabel("time (s)")
        ax0.set_ylabel("site power (MW)")
        ax0.set_title(
            f"{job['gpus']:,} x {job['flavor']}, iteration {job['iteration_s']:g} s, "
            f"comm {job['comm_fraction']:.0%}, PUE {job['pue']:g}: sub-second samples"
        )
        ax0.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        for r in results:
            s = r.grid_1s_mw
            ax1.step(
                np.arange(s.size), s, where="post", color=_COLORS.get(r.name), lw=1, label=r.name
            )
        ax1.set_xlabel("time (s)")
        ax1.set_ylabel("grid power, 1-s average (MW)")
        ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.savefig(path, format="png", dpi=90, metadata={"Software": None})
    finally:
        plt.close(fig)
