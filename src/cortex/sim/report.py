"""The twin's report: one JSON-ready dict. Everything but `wall_s` and `timing` depends only
on the inputs and the seed, so two runs with one seed give byte-identical JSON apart from those."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cortex import __version__
from cortex.drive.goodput import effective_training_time
from cortex.sim.books import books_gpu_s, books_gpu_s_by_flavor, categories
from cortex.sim.power_report import power_section
from cortex.sim.twin import Twin
from cortex.workload.states import JobState

QUANTILES = np.linspace(0, 100, 101)


def _r(x: float, nd: int = 6) -> float:
    return float(f"{x:.{nd}g}")


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0}
    arr = np.asarray(values)
    return {
        "mean": _r(float(arr.mean())),
        "p50": _r(float(np.percentile(arr, 50))),
        "p99": _r(float(np.percentile(arr, 99))),
    }


def build_report(tw: Twin, workload: str = "") -> dict[str, Any]:
    """Summarize a finished twin run."""
    m = tw.metrics
    topo = tw.topo
    horizon = tw.cfg.horizon_s
    total_gpus = topo.total_gpus
    up_gpu_s = float(m.up_bins.sum())
    return {
        "cortex_version": __version__,
        "config": _config(tw, workload),
        "fleet": {
            "name": topo.name,
            "gpus": total_gpus,
            "nodes": topo.n_nodes,
            "pods": topo.n_pods,
            "racks": topo.n_racks,
            "halls": len(topo.hall_names),
            "gpus_by_flavor": dict(zip(topo.flavors, topo.flavor_gpus(), strict=True)),
        },
        "jobs": _jobs(tw),
        "utilization": {
            "allocated": _r(m.alloc_gpu_s / up_gpu_s) if up_gpu_s else 0.0,
            "productive": _r(m.productive_gpu_s / up_gpu_s) if up_gpu_s else 0.0,
            "allocated_of_installed": _r(m.alloc_gpu_s / (total_gpus * horizon)),
        },
        "goodput": _r(m.productive_gpu_s / m.alloc_gpu_s) if m.alloc_gpu_s else 0.0,
        "gpu_hours": _gpu_hours(tw),
        "gpu_hours_by_flavor": _gpu_hours_by_flavor(tw),
        "interruptions": {
            "unexpected": int(sum(m.interrupts_by_cause)),
            "node_failures": m.failures_total,
            "by_cause": {
                c.name: n for c, n in zip(tw.causes, m.interrupts_by_cause, strict=True) if n
            },
        },
        "preemptions": m.preemptions,
        "blockers": dict(sorted(m.blocked.items())),
        "large_jobs": _large_jobs(tw),
        **({"quarantine": tw.quarantine.report()} if tw.quarantine is not None else {}),
        "gang_recovery": _gang_recovery(tw),
        **({"hot_spares": tw.spares.report()} if tw.spares is not None else {}),
        "energy_mwh": _r(m.energy_j / 3.6e9),
        "peak_facility_mw": _r(m.peak_facility_w / 1e6),
        "mean_facility_mw": _r(m.energy_j / horizon / 1e6) if horizon else 0.0,
        "series": _series(tw),
        "power": power_section(tw, m.n_bins),
        "events": tw.events,
        "scheduler_cycles": m.cycles,
        "wall_s": round(tw.wall_s, 3),
        "timing": _timing(tw),
    }


def _config(tw: Twin, workload: str) -> dict[str, Any]:
    """Every option of `cortex sim` that shapes the run, keyed by its name (`--hot-spares` is
    `hot_spares`); None where the option was not given and its default is a rule rather than a
    number (checkpoint_interval_s: Young/Daly per job; site_cap_mw: the fleet file's). A report
    that left out --checkpoint-write-s, --failure-data and the power options could not say
    how it was run. `cortex sim` adds load and load_basis for the synthetic workload."""
    cfg = tw.cfg
    return {
        "fleet": tw.topo.name,
        "days": cfg.days,
        "seed": cfg.seed,
        "policy": cfg.policy,
        "backfill": cfg.backfill,
        "failures": cfg.failures,
        "failure_scale": cfg.failure_scale,
        "workload": workload,
        "checkpoint_interval_s": cfg.checkpoint_interval_s,
        "max_retries": cfg.max_retries,
        "warm_start": any(j.warm for j in tw.jobs),
        "failure_data": cfg.failure_data,
        "quarantine": cfg.quarantine,
        "hot_spares": cfg.hot_spares_per_pod,
        "checkpoint_write_s": cfg.default_checkpoint_write_s,
        "backfill_interval_s": tw.backfill_interval_s,  # the default resolved (defaults.csv)
        **_power_options(tw),
    }


def _power_options(tw: Twin) -> dict[str, Any]:
    """The power options as `cortex sim` takes them (events as [start_h, duration_h, value])."""
    pc = tw.cfg.power
    battery = pc.battery if pc is not None else None
    return {
        "power_policy": pc.policy if pc is not None else "off",
        "site_cap_mw": pc.site_cap_mw if pc else None,
        "static_cap": pc.static_cap_frac if pc else None,
        "rack_cap_kw": pc.rack_cap_kw if pc else None,
        "ramp_limit": pc.ramp_limit_mw_per_min if pc else None,
        "battery_mwh": battery.energy_mwh if battery else None,
        "battery_mw": battery.power_mw if battery else None,
        "battery_efficiency": battery.efficiency if battery else None,
        "cap_event": [[e.start_s / 3600, e.duration_s / 3600, e.cap_mw] for e in pc.cap_events]
        if pc
        else [],
        "heat_wave": [[a / 3600, d / 3600, c] for a, d, c in pc.heat_waves] if pc else [],
        "start_day": pc.start_day_of_year if pc else None,
        "temperature_c": pc.temperature_c if pc else None,
        "cap_curve": pc.curve_path if pc else None,
    }


def _jobs(tw: Twin) -> dict[str, Any]:
    horizon = tw.cfg.horizon_s
    jct: dict[str, list[float]] = {}
    wait: dict[str, list[float]] = {}
    # Jobs under way at a warm start have no submission in the run: they count in the books,
    # not in JCT or queue delay.
    for j in tw.completed:
        if not j.warm:
            jct.setdefault(j.team, []).append(j.end_s - j.submit_s)
    # Queue delay counts every job that started, finished or not, overall and per team alike.
    for j in tw.jobs:
        if j.first_start_s >= 0 and not j.warm:
            wait.setdefault(j.team, []).append(j.first_start_s - j.submit_s)
    all_jct = [x for v in jct.values() for x in v]
    all_wait = [x for v in wait.values() for x in v]
    rejected: dict[str, int] = {}
    for _, reason in tw.rejected:
        rejected[reason.code.value] = rejected.get(reason.code.value, 0) + 1
    by_team = {
        team: {
            "completed": len(jct.get(team, [])),
            "jct_s": _stats(jct.get(team, [])),
            "queue_delay_s": _stats(wait.get(team, [])),
            "jct_cdf_s": [_r(float(x)) for x in np.percentile(jct[team], QUANTILES)]
            if team in jct
            else [],
        }
        for team in sorted(set(jct) | set(wait))
    }
    return {
        **_completion(tw),
        "submitted": sum(1 for j in tw.jobs if j.submit_s < horizon),
        "warm_start": sum(1 for j in tw.jobs if j.warm),
        "rejected": len(tw.rejected),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "completed": len(tw.completed),
        # Failed for good: their own failures spent every retry (drive/runs.py judge_exit).
        "failed": len(tw.failed),
        "running_at_end": len(tw.state.running),
        "pending_at_end": len(tw.pending) + len(tw.waiting),  # with those waiting out a retry
        "jct_s": _stats(all_jct),
        "queue_delay_s": _stats(all_wait),
        "by_team": by_team,
    }


def _large_jobs(tw: Twin) -> list[dict[str, Any]]:
    horizon = tw.cfg.horizon_s
    large = []
    for j in tw.jobs:
        if j.gpus >= tw.large_job_gpus and j.first_start_s >= 0:
            end = j.end_s if j.end_s >= 0 else horizon
            prod = tw.large_productive_s.get(j.id, 0.0)
            large.append(
                {
                    "id": j.id,
                    "name": j.name,
                    "team": j.team,
                    "gpus": j.gpus,
                    "completed": j.state is JobState.COMPLETED,
                    "interruptions": j.interruptions,
                    "preemptions": j.preemptions,
                    "effective_training_time": _r(
                        effective_training_time(prod, j.first_start_s, end)
                    ),
                }
            )
    return large


def _series(tw: Twin) -> dict[str, Any]:
    m = tw.metrics
    with np.errstate(invalid="ignore", divide="ignore"):
        alloc_frac = np.where(m.up_bins > 0, m.alloc_bins / np.maximum(m.up_bins, 1e-9), 0.0)
    return {
        "bin_s": _r(m.bin_s),
        "t_h": [_r((i + 0.5) * m.bin_s / 3600.0) for i in range(m.n_bins)],
        "allocated_frac": [_r(float(x), 4) for x in alloc_frac],
        "queue_len": [_r(float(x), 4) for x in m.queue_bins / m.bin_s],
        "interruptions": [int(x) for x in m.interrupt_bins],
        "facility_mw": [_r(float(x), 5) for x in m.energy_bins / m.bin_s / 1e6],
    }


def _timing(tw: Twin) -> dict[str, Any]:
    m = tw.metrics
    cycle = np.asarray(m.cycle_s) * 1e3 if m.cycle_s else np.zeros(1)
    return {
        "events_per_s": round(tw.events / tw.wall_s) if tw.wall_s else 0,
        "superseded_finishes": tw.superseded,
        "cycle_ms": {
            "p50": round(float(np.percentile(cycle, 50)), 4),
            "p99": round(float(np.percentile(cycle, 99)), 4),
            "max": round(float(cycle.max()), 4),
        },
    }


def _gang_recovery(tw: Twin) -> dict[str, Any]:
    """Multi-node gangs hit by a node failure and running again: how long each took, from the
    failure to its restart's overhead paid (queue wait included)."""
    rec = sorted(tw.gang_recover_s)
    return {
        "recovered": len(rec),
        "mean_s": _r(sum(rec) / len(rec)) if rec else 0.0,
        "p50_s": _r(rec[len(rec) // 2]) if rec else 0.0,
    }


def _gpu_hours(tw: Twin) -> dict[str, float]:
    """The books (sim/books.py): installed = the sum of the categories; `allocated` and
    `in_progress_at_end` (productive work not yet checkpointed) are memo lines."""
    b = books_gpu_s(tw)
    gh = 1.0 / 3600.0
    out = {"installed": _r(b["installed"] * gh)}
    out.update({c: _r(b[c] * gh) for c in categories(tw)})
    out["allocated"] = _r(tw.metrics.alloc_gpu_s * gh)
    out["in_progress_at_end"] = _r(tw.metrics.in_progress_gpu_s * gh)
    return out


def _gpu_hours_by_flavor(tw: Twin) -> dict[str, dict[str, float]]:
    """The books per flavor (sim/books.py), in the order of `gpu_hours`: each flavor's
    categories sum to its `installed`; summed over the flavors, each line is the fleet's."""
    gh = 1.0 / 3600.0
    out = {}
    for name, b in books_gpu_s_by_flavor(tw).items():
        keys = ("installed", *categories(tw), "allocated", "in_progress_at_end")
        out[name] = {k: _r(b[k] * gh) for k in keys}
    return out


def _completion(tw: Twin) -> dict[str, float | None]:
    """`last_completion_s`: when the last job completed (None: none did). `makespan_s`: from
    the first submission to the last completion, when every submitted job completed, failed
    for good or was rejected by the horizon (None otherwise: the run ended with work left)."""
    horizon = tw.cfg.horizon_s
    submits = [j.submit_s for j in tw.jobs if j.submit_s < horizon]
    last = max((j.end_s for j in tw.completed), default=None)
    done = len(tw.completed) + len(tw.failed) + len(tw.rejected) == len(submits)
    makespan = None
    if done and last is not None and submits:
        makespan = _r(last - min(submits))
    return {
        "last_completion_s": None if last is None else _r(last),
        "makespan_s": makespan,
    }


def write_json(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=1, sort_keys=False) + "\n")
