"""Self-contained HTML page for a plan: tables and inline PNG charts (as sim/html.py does):
capacity by SKU against the MW ramp, cash against budget, goodput-compute over scenarios as a
fan chart, the cost-versus-compute frontier and a tornado of one-at-a-time sensitivities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from cortex.planner.report import gpus_text, shortfall_text
from cortex.sim.html import _CSS, _esc, _img, _table


def _months(r: dict[str, Any]) -> list[int]:
    return [m["month"] for m in r["by_month"]]


def _plot_capacity(r: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(10, 4))
    x = _months(r)
    busy = {s["sku"]: s["busy_kw"] / 1000.0 for s in r["skus"]}
    stacks = [[m["blocks"][k] * kw for m in r["by_month"]] for k, kw in busy.items()]
    ax.stackplot(x, stacks, labels=[f"{k} (IT MW)" for k in busy], alpha=0.8)
    ax.plot(x, [m["facility_mw"] for m in r["by_month"]], "k-", lw=1.5, label="facility draw")
    ax.plot(
        x, [m["supply_mw"] for m in r["by_month"]], "r--", lw=1.5, label="supply (grid+turbines)"
    )
    ax.plot(x, [m["grid_mw"] for m in r["by_month"]], "r:", lw=1, label="grid tranches")
    ax.set_xlabel("month")
    ax.set_ylabel("MW")
    ax.set_title("installed capacity by SKU against the MW ramp")
    ax.legend(fontsize=7, loc="upper left")
    return _img(fig, "capacity by SKU against the MW ramp")


def _plot_cash(r: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(10, 3))
    x = _months(r)
    ax.plot(x, [m["cash_spent_musd"] / 1e3 for m in r["by_month"]], label="cash spent")
    ax.plot(x, [m["budget_musd"] / 1e3 for m in r["by_month"]], "--", label="budget")
    ax.set_xlabel("month")
    ax.set_ylabel("$B, cumulative")
    ax.set_title("cash against budget")
    ax.legend(fontsize=8)
    return _img(fig, "cash against budget")


def _plot_fan(r: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(10, 4))
    x = _months(r)
    base = [m["goodput_h100e"] / 1e3 for m in r["by_month"]]
    sc = (r.get("scenarios") or {}).get("runs", [])
    if sc:
        g = np.asarray([s["goodput_by_month"] for s in sc]) / 1e3
        w = np.asarray([s["probability"] for s in sc])
        order = np.argsort(g, axis=0)
        lo, hi, q25, q75 = [], [], [], []
        for t in range(g.shape[1]):
            vals, ws = g[order[:, t], t], w[order[:, t]]
            cum = np.cumsum(ws) / ws.sum()
            lo.append(vals[0])
            hi.append(vals[-1])
            q25.append(vals[np.searchsorted(cum, 0.25)])
            q75.append(vals[min(np.searchsorted(cum, 0.75), len(vals) - 1)])
        ax.fill_between(x, lo, hi, alpha=0.2, label="scenario range")
        ax.fill_between(x, q25, q75, alpha=0.4, label="25-75% (by probability)")
    ax.plot(x, base, "k-", lw=1.5, label="plan (expected inputs)")
    for t in r.get("compute_targets", []):
        ax.axhline(t["h100e"] / 1e3, color="r", ls="--", lw=1)
    ax.set_xlabel("month")
    ax.set_ylabel("goodput-compute, thousand H100e")
    ax.set_title("goodput-compute over scenarios (first-stage orders fixed)")
    ax.legend(fontsize=8, loc="upper left")
    return _img(fig, "goodput fan chart")


def _plot_frontier(r: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = r.get("frontier", [])
    if pts:
        cx = [p["charged_cost_musd"] / 1e3 for p in pts]
        cy = [p["discounted_goodput_h100e_months"] / 1e6 for p in pts]
        ax.plot(cx, cy, "o-")
        for p, a, b in zip(pts, cx, cy, strict=True):
            ax.annotate(f"λ={p['lambda']:g}", (a, b), fontsize=7)
    ax.set_xlabel("cost charged to the plan (depreciation in horizon, energy, penalties), $B")
    ax.set_ylabel("discounted goodput, million H100e-months")
    ax.set_title("cost versus compute (lambda sweep)")
    return _img(fig, "frontier")


def _plot_tornado(r: dict[str, Any]) -> str:
    rows = r.get("tornado", [])
    # min_cost meets its targets whatever the input, so goodput barely moves: its tornado is
    # the cost of meeting them.
    cost = r["mode"] == "min_cost"
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(len(rows), 1)))
    if rows:
        keys = ("cost_low_musd", "cost_high_musd", "base_cost_musd", 1e3)
        if not cost:
            keys = ("goodput_low", "goodput_high", "base", 1e6)
        base = rows[0][keys[2]] / keys[3]
        labels = [f"{t['input']} ({t['low']:g}x / {t['high']:g}x)" for t in rows][::-1]
        lo = [t[keys[0]] / keys[3] - base for t in rows][::-1]
        hi = [t[keys[1]] / keys[3] - base for t in rows][::-1]
        y = np.arange(len(rows))
        ax.barh(y, lo, color="#c44", label="low")
        ax.barh(y, hi, color="#48c", label="high")
        ax.set_yticks(y, labels, fontsize=8)
        ax.axvline(0, color="k", lw=0.8)
        ax.legend(fontsize=8)
    ax.set_xlabel(
        "change in charged cost, $B" if cost else "change in goodput-compute, million H100e-months"
    )
    ax.set_title("tornado: one input at a time")
    return _img(fig, "tornado")


def _quarters(r: dict[str, Any]) -> str:
    rows = []
    months = r["by_month"]
    # Each quarter's last month, the last one even when the horizon ends mid-quarter (as the
    # terminal table has it): [2::3] left a 7-month plan's month 6 out of the page.
    ends = [min(q + 2, len(months) - 1) for q in range(0, len(months), 3)]
    for m in (months[i] for i in ends):
        rows.append(
            (
                m["label"],
                round(sum(m["gpus"].values())),
                round(m["h100e"]),
                round(m["goodput_h100e"]),
                round(m["facility_mw"], 1),
                round(m["supply_mw"], 1),
                round(m["cash_spent_musd"]),
                round(m["budget_musd"]),
                f"{m['inhouse_share']:.0%}",
            )
        )
    cols = (
        "quarter end",
        "GPUs",
        "H100e",
        "goodput H100e",
        "MW draw",
        "MW supply",
        "cash $M",
        "budget $M",
        "in-house",
    )
    return _table(cols, rows)


def render_html(r: dict[str, Any]) -> str:
    checks = [(c["check"], c["value"], "ok" if c["ok"] else "NOT MET") for c in r["fact_check"]]
    findings = [("slack", v) for v in r["violations"]] + [("binding", b) for b in r["binding"]]
    for c in r["fact_check"]:
        findings += [("binding (fact check)", b) for b in c.get("binding", [])]
    orders = [
        (o["label"], o["sku"], o["site"], o["blocks"], o["gpus"], o["arrives"]) for o in r["orders"]
    ]
    sc = r.get("scenarios") or {}
    sc_rows = [
        (
            s["name"],
            s["probability"],
            shortfall_text(s["shortfall"]),
            round(s["goodput_h100e_months"]),
            round(s["cash_musd"]),
            # the table line says it; the page left it out (a report from before the count: -)
            s.get("retired_early_blocks", "-"),
        )
        for s in sc.get("runs", [])
    ]
    tw = r.get("twin")
    parts = [
        f"<h1>plan {_esc(r['plan'])}</h1>",
        f'<p class="sub">{r["months"]} months from {_esc(r["start"])} · {_esc(r["mode"])} · '
        f"solver {_esc(r['solver']['status'])} in {r['solver']['wall_s']:.2f} s "
        f"({r['solver']['variables']:,} variables, {r['solver']['rows']:,} rows)</p>",
        "<h2>Checks against the facts</h2>",
        _table(("check", "value", "result"), checks),
        "<h2>Findings</h2>",
        _table(("kind", "what"), findings),
        _plot_capacity(r),
        _plot_cash(r),
        _plot_fan(r),
        f"<p>expected shortfall: {_esc(shortfall_text(sc['expected_shortfall']))}</p>"
        if sc
        else "",
        _table(
            (
                "scenario",
                "p",
                "shortfall",
                "goodput H100e-months",
                "cash $M",
                "blocks out of service early (start fleet retired, first-stage parked)",
            ),
            sc_rows,
        ),
        _plot_frontier(r),
        _plot_tornado(r),
        "<h2>By quarter</h2>",
        _quarters(r),
        "<h2>Orders</h2>",
        _table(("month", "SKU", "site", "blocks", "GPUs", "arrives (month)"), orders),
    ]
    # GPUs as the text report prints them: a part of a block under half a GPU rounds to 0 and
    # read as a retirement of nothing beside its 0.001 blocks.
    retired = [
        (x["label"], x["sku"], x["site"], x["blocks"], gpus_text(x["gpus"]))
        for x in r.get("retirements", [])
    ]
    if retired:
        parts += [
            "<h2>Early retirements</h2>",
            _table(("month", "SKU", "site", "blocks", "GPUs"), retired),
        ]
    if tw:
        parts.append(
            f"<h2>Twin in the loop</h2><p>policy {_esc(tw['policy'])} {_esc(tw['policy_note'])}; "
            f"{tw['iterations']} iteration(s), converged {tw['converged']}, {tw['wall_s']} s; "
            f"{_esc(tw.get('fleet', 'mixed'))} fleet scaled 1/{tw['scale']}, "
            f"{tw['days']} days per run</p>"
        )
        parts.append(
            _table(
                ("SKU", "goodput factor (last month)"),
                [(k, round(v, 4)) for k, v in tw["final_factors"].items()],
            )
        )
        rows = [
            (c, f, b["gpus"], b["allocated_share"], b["goodput"], b["availability"], b["factor"])
            for c, flavors in (tw.get("by_flavor") or {}).items()
            for f, b in flavors.items()
        ]
        if rows:
            head = ("month", "flavor", "GPUs (scaled)", "allocated share", "goodput")
            parts.append(
                "<h3>Mixed runs by flavor (mean over seeds)</h3>"
                + _table((*head, "availability", "factor"), rows)
            )
    body = "\n".join(parts)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>plan {_esc(r['plan'])}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def write_html(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(render_html(report))
