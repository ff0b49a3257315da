"""HTML report: self-contained, escaped, four plots, survives empty series."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from cortex.sim.html import render_html, write_html

SECTIONS = (
    "summary",
    "utilization",
    "interruptions",
    "jct",
    "power",
    "gpu-hours",
    "blockers",
    "large-jobs",
)


def _cdf(scale_s: float) -> list[float]:
    return [scale_s * (1 + q / 10) for q in range(101)]


_CONFIG = {
    "fleet": "tiny-fleet",
    "days": 2,
    "seed": 7,
    "policy": "fifo",
    "backfill": True,
    "failures": True,
    "failure_scale": 1.0,
    "workload": "",
    "checkpoint_interval_s": 1800,
}
_FLEET = {"name": "tiny-fleet", "gpus": 1024, "nodes": 128, "pods": 2, "racks": 16, "halls": 1}


def fake_report(
    teams: dict[str, float] | None = None,
    n_bins: int = 48,
    by_cause: dict[str, int] | None = None,
    blockers: dict[str, int] | None = None,
    large: bool = True,
) -> dict[str, Any]:
    """A report dict shaped like `build_report`'s; `teams` maps name -> JCT scale in seconds."""
    teams = {"vision": 3600.0, "llm": 36000.0} if teams is None else teams
    by_cause = {"XID_79": 3, "NVLINK": 1} if by_cause is None else by_cause
    blockers = {"NO_CAPACITY": 12, "QUOTA": 2} if blockers is None else blockers
    by_team = {
        t: {
            "completed": 10,
            "jct_s": {"mean": 2 * s, "p50": 1.5 * s, "p99": 10 * s},
            "queue_delay_s": {"mean": 60.0, "p50": 30.0, "p99": 600.0},
            "jct_cdf_s": _cdf(s),
        }
        for t, s in teams.items()
    }
    interrupts = [0] * n_bins
    for i, n in enumerate(by_cause.values()):
        interrupts[(7 * i) % max(n_bins, 1)] += n if n_bins else 0
    return {
        "cortex_version": "0.1.0",
        "config": dict(_CONFIG),
        "fleet": {**_FLEET, "gpus_by_flavor": {"H100": 1024}},
        "jobs": {
            "submitted": 25,
            "rejected": 1,
            "rejected_by_reason": {"TOO_BIG": 1},
            "completed": 10 * len(teams),
            "failed": 4,
            "running_at_end": 3,
            "pending_at_end": 1,
            "jct_s": {"mean": 7200.0, "p50": 5400.0, "p99": 36000.0},
            "queue_delay_s": {"mean": 60.0, "p50": 30.0, "p99": 600.0},
            "by_team": by_team,
        },
        "utilization": {"allocated": 0.8125, "productive": 0.75, "allocated_of_installed": 0.8},
        "goodput": 0.923,
        "gpu_hours": {
            "allocated": 39000.0,
            "productive": 36000.0,
            "rework_after_failures": 900.0,
            "rework_after_preemptions": 0.0,
            "restart_overhead": 50.0,
            "checkpoint_writes": 20.0,
            "gang_rounding": 5.0,
            "in_progress_at_end": 100.0,
        },
        "interruptions": {
            "unexpected": sum(by_cause.values()),
            "node_failures": 4,
            "by_cause": by_cause,
        },
        "preemptions": 2,
        "blockers": blockers,
        "large_jobs": [
            {
                "id": 3,
                "name": "big-run",
                "team": next(iter(teams), "x"),
                "gpus": 512,
                "completed": False,
                "interruptions": 2,
                "preemptions": 0,
                "effective_training_time": 0.875,
            }
        ]
        if large
        else [],
        "energy_mwh": 42.5,
        "peak_facility_mw": 1.25,
        "mean_facility_mw": 0.9,
        "series": {
            "bin_s": 3600.0,
            "t_h": [i + 0.5 for i in range(n_bins)],
            "allocated_frac": [0.8] * n_bins,
            "queue_len": [float(i % 5) for i in range(n_bins)],
            "interruptions": interrupts,
            "facility_mw": [0.9] * n_bins,
        },
        "events": 12345,
        "scheduler_cycles": 400,
        "wall_s": 1.234,
        "timing": {"events_per_s": 10000, "cycle_ms": {"p50": 0.1, "p99": 0.5, "max": 1.0}},
    }


def _imgs(page: str) -> list[str]:
    return re.findall(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)


def test_page_has_sections_four_inline_plots_and_no_external_refs() -> None:
    page = render_html(fake_report())
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<img") == 4
    assert len(_imgs(page)) == 4
    for section in SECTIONS:
        assert f'id="{section}"' in page
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "<svg" not in page
    assert plt.get_fignums() == []


def test_header_and_summary_numbers() -> None:
    page = render_html(fake_report())
    assert "tiny-fleet" in page and "policy fifo" in page and "seed 7" in page
    assert "1,024" in page and "12,345" in page
    assert "81.2%" in page and "92.3%" in page
    assert "2.00 / 1.50 / 10.00" in page  # JCT mean / p50 / p99 in hours
    assert "39,000" in page  # GPU-hours as plain thousands, not 3.9e+04
    assert "<td>rework after failures</td>" in page and "NO_CAPACITY" in page
    assert "big-run" in page and "87.5%" in page
    assert '<td>jobs failed for good</td><td class="n">4</td>' in page


def test_team_names_present_and_escaped() -> None:
    page = render_html(fake_report(teams={"vision": 3600.0, "<b>evil</b> & co": 600.0}))
    assert "vision" in page
    assert "&lt;b&gt;evil&lt;/b&gt; &amp; co" in page
    assert "<b>evil</b>" not in page


def test_empty_series_and_no_completed_jobs() -> None:
    report = fake_report(teams={}, n_bins=0, by_cause={}, blockers={}, large=False)
    report["jobs"]["by_team"]["idle-team"] = {
        "completed": 0,
        "jct_s": {"mean": 0.0, "p50": 0.0, "p99": 0.0},
        "queue_delay_s": {"mean": 0.0, "p50": 0.0, "p99": 0.0},
        "jct_cdf_s": [],
    }
    page = render_html(report)
    assert len(_imgs(page)) == 4
    assert "idle-team" in page
    assert page.count("(none)") == 2  # blockers and large jobs
    assert plt.get_fignums() == []


def test_zero_interruptions_and_zero_jct_do_not_warn() -> None:
    report = fake_report(by_cause={})
    report["jobs"]["by_team"]["vision"]["jct_cdf_s"] = [0.0] * 101
    assert sum(report["series"]["interruptions"]) == 0
    assert len(_imgs(render_html(report))) == 4


def test_write_html_round_trips(tmp_path: Path) -> None:
    report = fake_report()
    path = tmp_path / "report.html"
    write_html(report, path)
    assert path.read_text(encoding="utf-8") == render_html(report)


def test_power_section_plots_cap_ramps_and_battery_from_a_real_run() -> None:
    from cortex.power.battery import BatterySpec
    from cortex.sim.power import CapEvent, PowerConfig
    from cortex.sim.report import build_report
    from cortex.sim.twin import SimConfig, Twin
    from cortex.workload.job import Job
    from testkit import TINY

    jobs = [Job(i, f"j{i}", "a", 8, 3 * 3600.0, kind="llm", submit_s=600.0 * i) for i in range(6)]
    pc = PowerConfig(
        "full",
        site_cap_mw=0.07,
        temperature_c=20.0,
        ramp_limit_mw_per_min=0.004,
        battery=BatterySpec(0.01, 0.03, 0.9),
        cap_events=(CapEvent(3600.0, 3600.0, 0.06),),
        heat_waves=((7200.0, 1800.0, 5.0),),
    )
    report = build_report(Twin(TINY, jobs, SimConfig(days=0.5, failures=False, power=pc)).run())
    power = report["power"]
    assert power["minutes_over_cap"] == 0.0
    assert power["battery"]["soc_max_mwh"] <= 0.01 + 1e-9
    assert min(power["series"]["cap_mw"]) == 0.06  # the drop shows in the cap series
    page = render_html(report)
    assert page.count("<img") == 4  # the power plot replaces the plain facility plot
    assert "Battery state of charge" not in page  # titles are drawn into the PNG, not the HTML
    # Tables name figures as a reader would, with units; no report key, no Python None.
    for label in (
        "time over the cap (min)",
        "battery lowest charge (MWh)",
        "electricity per useful GPU-h (USD)",
        "rework after failures",
    ):
        assert f"<td>{label}</td>" in page
    text = re.sub(r'src="data:[^"]*"', "", page)
    assert not re.search(r"<td>[a-z]+(_[a-z]+)+</td>", text), "a snake_case key in a table"
    assert "None" not in text
    # The run's cap event and heat wave are listed (and shaded on the plots): 1 h for 1 h at
    # 0.06 MW; 2 h for 0.5 h at +5 C.
    assert power["cap_events_h"] == [[1.0, 1.0, 0.06]]
    assert power["heat_waves_h"] == [[2.0, 0.5, 5.0]]
    assert '<td>cap event at 1 h for 1 h (MW)</td><td class="n">0.06</td>' in page
    assert '<td>heat wave at 2 h for 0.5 h (+C)</td><td class="n">5</td>' in page
    assert plt.get_fignums() == []
