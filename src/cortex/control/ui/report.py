"""The twin's report (`cortex sim --dashboard-html`) on the dashboard's templates and charts, as
one self-contained file: the dashboard's stylesheet, uPlot and the chart script inlined, the
series as a JSON block, so a what-if opens from `file://` (no server, no network) and looks like
the live cluster: the same cards, tables, the GPU-time bar of the goodput page
(templates/_split.html) and uPlot time series, with the cap events and heat waves shaded.

The report is the twin's `build_report` dict; missing keys show as empty, never as `None`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from cortex.control.ui import render
from cortex.control.ui.goodput_view import Split
from cortex.drive import goodput as gp

HERE = Path(__file__).parent
# The twin's GPU-hour categories (drive/goodput.CATEGORIES) and how the pages name them.
COLORS = {
    "productive": "#2e7d32",
    "rework_after_failures": "#e53935",
    "rework_after_preemptions": "#ab47bc",
    "restart_overhead": "#f9a825",
    "checkpoint_writes": "#5b9bd5",
    "lost_to_power_caps": "#ff7043",
    "lost_to_heat": "#ffb74d",
    "gang_rounding": "#8e99a8",
    "idle": "#37474f",
    "down": "#b71c1c",
}
LABELS = {k: k.replace("_", " ") for k in gp.CATEGORIES}


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html"]),
    )
    env.filters.update(render.TEMPLATES.env.filters)
    return env


class _TwinSplit(Split):
    """The twin's books as a Split over its own categories (not the live attempt's)."""

    def share(self, key: str) -> float:
        return self.gpu_h.get(key, 0.0) / self.allocated_gpu_h if self.allocated_gpu_h else 0.0


def _split(gpu_hours: dict[str, Any]) -> _TwinSplit:
    got = {k: float(gpu_hours.get(k) or 0.0) for k in gp.CATEGORIES}
    held = sum(got.values())
    lost = sum(got[k] for k in gp.CATEGORIES if k not in ("productive", "idle", "down"))
    return _TwinSplit(
        gpu_h=got,
        allocated_gpu_h=held,
        lost_gpu_h=lost,
        goodput=got["productive"] / held if held else 0.0,
        queueing_h=0.0,
        attempts=0,
        jobs=0,
    )


def _chart_data(report: dict[str, Any]) -> dict[str, Any]:
    """What static/report.js draws: time in Unix-free hours, series by name, and spans."""
    series = report.get("series") or {}
    power = report.get("power") or {}
    ps = power.get("series") or {}
    bin_h = float(ps.get("bin_s", 3600.0)) / 3600.0
    load = [float(v) for v in ps.get("facility_mw") or []]
    return {
        "t_h": [float(x) for x in series.get("t_h") or []],
        "allocated_pct": [float(v) * 100 for v in series.get("allocated_frac") or []],
        "queue_len": [float(v) for v in series.get("queue_len") or []],
        "interruptions": [float(v) for v in series.get("interruptions") or []],
        "facility_mw": [float(v) for v in series.get("facility_mw") or []],
        "power_t_h": [i * bin_h for i in range(len(load))],
        "power_mw": load,
        "cap_mw": [float(v) for v in ps.get("cap_mw") or []][: len(load)],
        "soc_mwh": [float(v) for v in ps.get("soc_mwh") or []][: len(load)],
        "spans": [
            {"what": what, "from_h": float(a), "to_h": float(a) + float(h)}
            for key, what in (("cap_events_h", "cap event"), ("heat_waves_h", "heat wave"))
            for a, h, _ in power.get(key) or []
        ],
    }


def render_report(report: dict[str, Any]) -> str:
    cfg = report.get("config") or {}
    static = HERE / "static"
    vendor = static / "vendor"
    ctx = {
        "r": report,
        "cfg": cfg,
        "fleet": cfg.get("fleet") or (report.get("fleet") or {}).get("name", ""),
        "split": _split(report.get("gpu_hours") or {}),
        "categories": gp.CATEGORIES,
        "colors": COLORS,
        "labels": LABELS,
        "css": (static / "app.css").read_text() + (vendor / "uPlot.min.css").read_text(),
        "uplot": (vendor / "uPlot.iife.min.js").read_text(),
        "script": (static / "report.js").read_text(),
        # Inside <script type="application/json">: "</" must not end the element early.
        "data": json.dumps(_chart_data(report)).replace("</", "<\\/"),
        "power_keys": POWER_KEYS,
    }
    return _env().get_template("report.html").render(ctx)


POWER_KEYS = (
    ("policy", "power policy"),
    ("cap_mw", "site cap (MW)"),
    ("peak_facility_mw", "peak facility (MW)"),
    ("minutes_over_cap", "time over the cap (min)"),
    ("max_over_cap_mw", "most over the cap (MW)"),
    ("max_ramp_mw_per_min", "steepest grid ramp (MW/min)"),
    ("ramp_limit_mw_per_min", "ramp limit (MW/min)"),
    ("energy_mwh", "energy (MWh)"),
    ("throughput_lost_to_caps_gpu_h", "throughput lost to caps (GPU-h)"),
    ("throughput_lost_to_heat_gpu_h", "throughput lost to heat (GPU-h)"),
    ("paused_for_power", "jobs paused for power"),
    ("electricity_cost_usd", "electricity cost (USD)"),
)


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(render_report(report), encoding="utf-8")
