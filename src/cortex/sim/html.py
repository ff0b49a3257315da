"""Self-contained HTML page for a twin report: summary tables and inline PNG plots.

The page references nothing outside itself (no URLs, no scripts): plots are matplotlib figures
rendered with the non-interactive Agg backend and embedded as base64 PNG data URIs.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.5em 0 1.5em} td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:.5em 0 1.5em}
"""
_TEAM_COLS = ("team", "completed", "JCT mean (h)", "p50 (h)", "p99 (h)", "queue delay p50 (h)")
_LARGE_COLS = ("id", "name", "team", "GPUs", "done", "interrupts", "preempts", "eff. training time")


def _esc(value: object) -> str:
    """HTML-escape any value's string form."""
    return html.escape(str(value))


# Report keys as a reader names them (units in parentheses); a key missing here is shown with
# its underscores as spaces.
_LABELS = {
    "policy": "power policy",
    "cap_mw": "site cap (MW)",
    "peak_facility_mw": "peak facility (MW)",
    "minutes_over_cap": "time over the cap (min)",
    "max_over_cap_mw": "most over the cap (MW)",
    "max_ramp_mw_per_min": "steepest grid ramp (MW/min)",
    "ramp_limit_mw_per_min": "ramp limit (MW/min)",
    "energy_mwh": "energy (MWh)",
    "throughput_lost_to_caps_gpu_h": "throughput lost to caps (GPU-h)",
    "throughput_lost_to_heat_gpu_h": "throughput lost to heat (GPU-h)",
    "paused_for_power": "jobs paused for power",
    "electricity_cost_usd": "electricity cost (USD)",
    "cost_per_useful_gpu_h_usd": "electricity per useful GPU-h (USD)",
    "power_mw": "power (MW)",
    "smallest_megapack_units": "smallest Megapack count",
    "soc_min_mwh": "lowest charge (MWh)",
    "soc_max_mwh": "highest charge (MWh)",
    "charged_mwh": "charged (MWh)",
    "discharged_mwh": "discharged (MWh)",
    "losses_mwh": "round-trip losses (MWh)",
    "ramp_violations": "ramp-limit violations",
    "rework_after_failures": "rework after failures",
    "rework_after_preemptions": "rework after preemptions",
    "restart_overhead": "restart overhead",
    "checkpoint_writes": "checkpoint writes",
    "lost_to_power_caps": "lost to power caps",
    "lost_to_heat": "lost to heat",
    "gang_rounding": "gang rounding (held, unused)",
    "in_progress_at_end": "in progress at the end",
}


def _label(key: object) -> str:
    return _LABELS.get(str(key), str(key).replace("_", " "))


def _num(value: object, nd: int = 4) -> str:
    """Format a number compactly; None is a dash (not applicable); others through `str`."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{nd}g}" if abs(value) < 1000 else f"{value:,.0f}"


def _pct(value: object) -> str:
    """Format a fraction as a percentage."""
    return f"{float(value) * 100:.1f}%" if isinstance(value, int | float) else str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An HTML table; numeric cells are right-aligned, every cell is escaped."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{_esc(_num(c))}</td>'
            if isinstance(c, int | float) and not isinstance(c, bool)
            else f"<td>{_esc(_num(c))}</td>"
            for c in row
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}">(none)</td></tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(fig: Figure, alt: str) -> str:
    """Render `fig` to an inline PNG `<img>` tag and close it."""
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _empty(ax: Axes, text: str) -> None:
    """Mark an axis as having nothing to show."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888")


def _line(ax: Axes, x: list[float], y: list[float], color: str) -> None:
    """Plot a line, or a placeholder when there is no data."""
    if x:
        ax.plot(x, y, color=color, lw=1)
    else:
        _empty(ax, "no data")


def _time(series: dict[str, Any], key: str) -> tuple[list[float], list[float], str]:
    """(x, y, unit) for one series, x in hours or (for spans over three days) days."""
    t = [float(x) for x in series.get("t_h", [])]
    y = [float(v) for v in series.get(key, [])]
    n = min(len(t), len(y))
    t, y = t[:n], y[:n]
    if t and t[-1] > 72:
        return [x / 24 for x in t], y, "days"
    return t, y, "hours"


def _marks(ax: Axes, power: dict[str, Any] | None, unit: str) -> None:
    """Shade the cap events and heat waves the run was given, so a dip reads as their effect."""
    if not power:
        return
    per = 24.0 if unit == "days" else 1.0
    for key, color, what in (
        ("cap_events_h", "tab:red", "cap event"),
        ("heat_waves_h", "tab:orange", "heat wave"),
    ):
        for i, (start_h, hours, _) in enumerate(power.get(key) or []):
            a, b = float(start_h) / per, (float(start_h) + float(hours)) / per
            ax.axvspan(a, b, color=color, alpha=0.12, lw=0, label=what if i == 0 else None)


def _plot_util(series: dict[str, Any], power: dict[str, Any] | None = None) -> str:
    """Allocated fraction and queue length over time, two stacked panels."""
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, layout="constrained")
    x, y, unit = _time(series, "allocated_frac")
    _line(a1, x, [v * 100 for v in y], "tab:blue")
    a1.set_ylabel("allocated %")
    a1.set_ylim(0, 105)
    x, y, unit = _time(series, "queue_len")
    _line(a2, x, y, "tab:orange")
    a2.set_ylabel("queued jobs")
    a2.set_xlabel(f"time ({unit})")
    a1.set_title("Utilization and queue length")
    _marks(a1, power, unit)
    _marks(a2, power, unit)
    if a1.get_legend_handles_labels()[0]:
        a1.legend(loc="lower right", fontsize=8)
    return _img(fig, "utilization and queue length over time")


def _plot_interruptions(series: dict[str, Any], by_cause: dict[str, int]) -> str:
    """Interruptions per bin over time, and a horizontal bar chart by cause."""
    # Cause names are long: the bar chart gets the wider half and constrained layout makes room
    # for its labels instead of letting them run into the chart beside it.
    fig, (a1, a2) = plt.subplots(
        1,
        2,
        figsize=(11, max(3.5, 0.3 * len(by_cause) + 1.5)),
        layout="constrained",
        width_ratios=(1.0, 1.2),
    )
    x, y, unit = _time(series, "interruptions")
    if x and any(y):
        a1.plot(x, y, color="tab:red", lw=1, drawstyle="steps-mid")
    else:
        _empty(a1, "no interruptions")
    a1.set_xlabel(f"time ({unit})")
    a1.set_ylabel("interruptions per bin")
    a1.set_title("Unexpected interruptions over time")
    if by_cause:
        items = sorted(by_cause.items(), key=lambda kv: kv[1])
        a2.barh(range(len(items)), [v for _, v in items], color="tab:red")
        a2.set_yticks(range(len(items)), [_short(str(k)) for k, _ in items])
    else:
        _empty(a2, "no interruptions")
    a2.set_xlabel("interruptions")
    a2.set_title("By cause")
    return _img(fig, "interruptions over time and by cause")


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _plot_jct(by_team: dict[str, Any]) -> str:
    """Per-team CDF of job completion time, log-x in hours."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    drawn = 0
    for team, stats in by_team.items():
        cdf = stats.get("jct_cdf_s", [])
        qs = [i / (len(cdf) - 1) if len(cdf) > 1 else 1.0 for i in range(len(cdf))]
        pts = [(float(s) / 3600, q) for s, q in zip(cdf, qs, strict=True) if float(s) > 0]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2, label=str(team))
            drawn += 1
    if drawn:
        ax.set_xscale("log")
        ax.legend(fontsize="small", ncol=max(1, drawn // 12))
    else:
        _empty(ax, "no completed jobs")
    ax.set_xlabel("job completion time (hours, log)")
    ax.set_ylabel("fraction of completed jobs")
    ax.set_ylim(0, 1.02)
    ax.set_title("Job completion time CDF by team")
    return _img(fig, "job completion time CDF by team")


def _plot_facility(series: dict[str, Any]) -> str:
    """Facility power draw over time."""
    fig, ax = plt.subplots(figsize=(10, 3))
    x, y, unit = _time(series, "facility_mw")
    _line(ax, x, y, "tab:green")
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("MW")
    ax.set_title("Facility power")
    return _img(fig, "facility power over time")


def _plot_power(power: dict[str, Any]) -> str:
    """MW against the cap (and the grid's draw with a battery), the ramp histogram, and the
    battery's state of charge."""
    ps = power.get("series", {})
    bin_h = float(ps.get("bin_s", 3600.0)) / 3600.0
    load = [float(v) for v in ps.get("facility_mw", [])]
    x = [i * bin_h for i in range(len(load))]
    unit = "hours"
    if x and x[-1] > 72:
        x, unit = [v / 24 for v in x], "days"
    soc = [float(v) for v in ps.get("soc_mwh", [])]
    fig, axes = plt.subplots(
        1 + bool(soc), 2, figsize=(11, 3.4 * (1 + bool(soc))), squeeze=False, layout="constrained"
    )
    a1, a2 = axes[0]
    if x:
        a1.plot(x, load, color="tab:green", lw=1, label="facility")
    else:
        _empty(a1, "no data")
    cap = [float(v) for v in ps.get("cap_mw", [])][: len(x)]
    if cap:
        a1.plot(x[: len(cap)], cap, color="tab:red", lw=1, ls="--", label="cap")
    grid = [float(v) for v in ps.get("grid_mw", [])][: len(x)]
    if soc and grid:
        a1.plot(x[: len(grid)], grid, color="tab:blue", lw=0.8, alpha=0.7, label="grid")
    a1.set_xlabel(f"time ({unit})")
    a1.set_ylabel("MW")
    a1.set_title("Facility power against the site cap")
    _marks(a1, power, unit)
    if x:
        a1.legend(loc="lower right", fontsize=8)
    hist = ps.get("ramp_hist_mw_per_min", {})
    edges = [float(e) for e in hist.get("edges", [])]
    counts = [int(c) for c in hist.get("counts", [])]
    if counts and sum(counts):
        a2.bar(
            edges[:-1],
            counts,
            width=[b - a for a, b in itertools.pairwise(edges)],
            align="edge",
            color="tab:purple",
        )
        a2.set_yscale("log")
        limit = power.get("ramp_limit_mw_per_min")
        if limit:
            a2.axvline(float(limit), color="tab:red", ls="--", lw=1)
    else:
        _empty(a2, "no ramps")
    a2.set_xlabel("|ramp| over one minute (MW/min)")
    a2.set_ylabel("10-s samples")
    a2.set_title("Grid ramp histogram")
    if soc:
        b1, b2 = axes[1]
        _line(b1, x[: len(soc)], soc, "tab:orange")
        b1.set_xlabel(f"time ({unit})")
        b1.set_ylabel("MWh")
        b1.set_title("Battery state of charge")
        b2.axis("off")
    return _img(fig, "facility power against the cap, ramp histogram and battery state of charge")


def _power_rows(power: dict[str, Any]) -> list[tuple[str, object]]:
    keys = (
        "policy",
        "cap_mw",
        "peak_facility_mw",
        "minutes_over_cap",
        "max_over_cap_mw",
        "max_ramp_mw_per_min",
        "ramp_limit_mw_per_min",
        "energy_mwh",
        "throughput_lost_to_caps_gpu_h",
        "throughput_lost_to_heat_gpu_h",
        "paused_for_power",
        "electricity_cost_usd",
        "cost_per_useful_gpu_h_usd",
    )
    rows: list[tuple[str, object]] = [(_label(k), power.get(k)) for k in keys]
    battery = power.get("battery") or {}
    rows += [("battery " + _label(k), v) for k, v in battery.items()]
    for start_h, hours, cap_mw in power.get("cap_events_h") or []:
        rows.append((f"cap event at {_num(start_h)} h for {_num(hours)} h (MW)", cap_mw))
    for start_h, hours, delta_c in power.get("heat_waves_h") or []:
        rows.append((f"heat wave at {_num(start_h)} h for {_num(hours)} h (+C)", delta_c))
    return rows


def _summary(r: dict[str, Any]) -> str:
    """The headline numbers as a two-column table."""
    fleet, jobs = r.get("fleet", {}), r.get("jobs", {})
    jct = {k: float(v) / 3600 for k, v in jobs.get("jct_s", {}).items()}
    util = r.get("utilization", {})
    rows: list[tuple[str, object]] = [
        ("GPUs", fleet.get("gpus", "")),
        ("nodes", fleet.get("nodes", "")),
        ("jobs submitted", jobs.get("submitted", "")),
        ("jobs completed", jobs.get("completed", "")),
        ("jobs failed for good", jobs.get("failed", 0)),  # reports before issue 11 have none
        ("jobs rejected", jobs.get("rejected", "")),
        (
            "JCT mean / p50 / p99 (h)",
            " / ".join(f"{jct.get(k, 0.0):.2f}" for k in ("mean", "p50", "p99")),
        ),
        ("allocated utilization", _pct(util.get("allocated", ""))),
        ("productive utilization", _pct(util.get("productive", ""))),
        ("goodput", _pct(r.get("goodput", ""))),
        ("unexpected interruptions", r.get("interruptions", {}).get("unexpected", "")),
        ("preemptions", r.get("preemptions", "")),
        ("energy (MWh)", r.get("energy_mwh", "")),
        ("peak facility (MW)", r.get("peak_facility_mw", "")),
        ("wall time (s)", r.get("wall_s", "")),
        ("events", r.get("events", "")),
    ]
    return _table(["metric", "value"], rows)


def render_html(report: dict[str, Any]) -> str:
    """Render a `build_report` dict as one self-contained HTML page."""
    cfg = report.get("config", {})
    series = report.get("series", {})
    fleet = cfg.get("fleet", report.get("fleet", {}).get("name", ""))
    title = f"Cortex twin: {fleet}"
    sub = (
        f"{_esc(cfg.get('days', '?'))} days &middot; policy {_esc(cfg.get('policy', '?'))} "
        f"&middot; seed {_esc(cfg.get('seed', '?'))}"
    )
    if cfg.get("workload"):
        sub += f" &middot; workload {_esc(cfg['workload'])}"
    by_team = report.get("jobs", {}).get("by_team", {})
    by_cause = report.get("interruptions", {}).get("by_cause", {})
    team_rows = [
        (
            team,
            t.get("completed", 0),
            *(float(t.get("jct_s", {}).get(k, 0.0)) / 3600 for k in ("mean", "p50", "p99")),
            float(t.get("queue_delay_s", {}).get("p50", 0.0)) / 3600,
        )
        for team, t in by_team.items()
    ]
    large_rows = [
        (j.get("id", ""), j.get("name", ""), j.get("team", ""), j.get("gpus", ""),
         "yes" if j.get("completed") else "no", j.get("interruptions", 0),
         j.get("preemptions", 0), _pct(j.get("effective_training_time", 0.0)))
        for j in report.get("large_jobs", [])
    ]  # fmt: skip
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="sub">{sub}</p>',
        '<h2 id="summary">Summary</h2>',
        _summary(report),
        '<h2 id="utilization">Utilization and queue</h2>',
        _plot_util(series, report.get("power")),
        '<h2 id="interruptions">Interruptions</h2>',
        _plot_interruptions(series, by_cause),
        '<h2 id="jct">Job completion time</h2>',
        _plot_jct(by_team),
        _table(_TEAM_COLS, team_rows),
        '<h2 id="power">Facility power</h2>',
        *(
            [
                _plot_power(report["power"]),
                _table(["figure", "value"], _power_rows(report["power"])),
            ]
            if report.get("power")
            else [_plot_facility(series)]
        ),
        '<h2 id="gpu-hours">GPU-hours by category</h2>',
        _table(
            ["category", "GPU-hours"],
            [(_label(k), v) for k, v in report.get("gpu_hours", {}).items()],
        ),
        '<h2 id="blockers">Scheduling blockers</h2>',
        _table(["code", "count"], report.get("blockers", {}).items()),
        '<h2 id="large-jobs">Large jobs</h2>',
        _table(_LARGE_COLS, large_rows),
        f'<p class="sub">cortex {_esc(report.get("cortex_version", ""))}</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_html(report: dict[str, Any], path: str | Path) -> None:
    """Write `render_html(report)` to `path` as UTF-8."""
    Path(path).write_text(render_html(report), encoding="utf-8")
