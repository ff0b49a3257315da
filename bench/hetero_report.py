"""bench/hetero.py's report: its figures as a bench/RESULTS.md section (split from hetero.py,
which was over 600 lines)."""

from __future__ import annotations

import argparse
import time


def markdown(res: dict, args: argparse.Namespace) -> str:
    lines = [f"\n## Hetero: throughput-aware placement vs flavor order ({time.strftime('%F')})\n"]
    lines.append(
        f"Command: `python bench/hetero.py --days {args.days:g} --seed {args.seed} "
        f"--fleet {args.fleet} --fleet-scale {args.fleet_scale:g}`.\n"
    )
    if "solve" in res:
        s = res["solve"]
        lines.append(
            f"Allocation solve at {s['gpus']:,} GPUs, {s['jobs']:,} jobs ({s['running']:,} "
            f"running, {s['pending']:,} pending, {s['classes']} classes), {s['repeats']} "
            f"repeats: p50 {s['p50_s']:.3f} s, p99 {s['p99_s']:.3f} s, max {s['max_s']:.3f} s "
            "(target: p99 <= 1 s).\n"
        )
    if "twin" in res:
        t = res["twin"]
        b, h = t["runs"]["priority"], t["runs"]["hetero"]
        lines.append(
            f"{args.fleet} (node groups x {args.fleet_scale:g}), {args.days:g} days, synthetic "
            f"mix at the default load, seed {args.seed}:\n"
        )
        lines.append("| | priority (flavor order) | hetero |")
        lines.append("|---|---|---|")
        lines.append(
            f"| work done, H100-eq GPU-h | {b['work_eq_gpu_h']:,.0f} | {h['work_eq_gpu_h']:,.0f} |"
        )
        for team in b["work_eq_gpu_h_by_team"]:
            lines.append(
                f"| work done, {team} | {b['work_eq_gpu_h_by_team'][team]:,.0f} | "
                f"{h['work_eq_gpu_h_by_team'].get(team, 0):,.0f} |"
            )
        ma = t["mean_alloc_eq"]
        lines.append(f"| mean H100-eq allocated | {ma['priority']:,.0f} | {ma['hetero']:,.0f} |")
        for team, sh in t["normalized_share"].items():
            lines.append(
                f"| {team}: H100-eq allocated / entitlement | {sh['priority']:.2f} | "
                f"{sh['hetero']:.2f} |"
            )
        lines.append(
            f"| completed / pending at end | {b['completed']:,} / {b['pending_at_end']:,} | "
            f"{h['completed']:,} / {h['pending_at_end']:,} |"
        )
        lines.append(
            f"| work done in the window (day {b['warmup_days']:g} on), H100-eq GPU-h | "
            f"{b['window_work_eq_gpu_h']:,.0f} | {h['window_work_eq_gpu_h']:,.0f} |"
        )
        lines.append(
            f"| H100-eq rate in the window | {b['window_rate_eq']:,.0f} | "
            f"{h['window_rate_eq']:,.0f} |"
        )
        lines.append(f"| twin wall (s) | {b['wall_s']:.0f} | {h['wall_s']:.0f} |")
        lines.append(
            f"\nRatio of work done, hetero / priority: **{t['ratio_work']:.3f}** over the run, "
            f"**{t['ratio_window']:.3f}** in the window (target 1.3). Fluid bound (best "
            f"sustained H100-eq any placement could reach for this offered mix): "
            f"{t['fluid_bound_eq']:,.0f} = {t['bound_over_base']:.3f}x the baseline's window "
            f"rate; {t['bound_over_worst_busy']:.3f}x the worst work-conserving placement "
            f"({b['fluid_worst_busy_eq']:,.0f}).\n"
        )
    return "\n".join(lines)
