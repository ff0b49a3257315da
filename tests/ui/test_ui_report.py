"""The twin's report on the dashboard's templates (control/ui/report.py): one file with the
dashboard's cards, the goodput page's GPU-time bar and uPlot charts, opened from `file://` in
Chromium with no console error; figures from the report dict, labels in words, no `None`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from uikit import CHROMIUM, CHROMIUM_ARGS, require_chromium

from cortex.control.ui.report import render_report, write_report


def _report() -> dict[str, Any]:
    """48 hourly bins; a cap event from hour 10 for 4 hours; GPU-hours 600 productive, 150
    rework after failures, 150 idle, 100 down (1,000 in all)."""
    n = 48
    return {
        "cortex_version": "0.1.0",
        "config": {"fleet": "tiny", "days": 2, "seed": 7, "policy": "fifo", "workload": ""},
        "fleet": {"name": "tiny", "gpus": 64, "nodes": 8},
        "jobs": {
            "submitted": 25,
            "completed": 20,
            "failed": 2,
            "rejected": 1,
            "jct_s": {"mean": 7200.0, "p50": 5400.0, "p99": 36000.0},
            "by_team": {
                "<b>vision</b>": {"completed": 20, "jct_s": {"p50": 3600.0}, "queue_delay_s": {}}
            },
        },
        "utilization": {"allocated": 0.75, "productive": 0.6},
        "goodput": 0.8,
        "gpu_hours": {
            "allocated": 750.0,
            "productive": 600.0,
            "rework_after_failures": 150.0,
            "idle": 150.0,
            "down": 100.0,
            "in_progress_at_end": 10.0,
        },
        "interruptions": {"unexpected": 3},
        "preemptions": 2,
        "blockers": {"InsufficientCapacity": 12},
        "large_jobs": [],
        "energy_mwh": 42.5,
        "peak_facility_mw": 1.25,
        "series": {
            "t_h": [i + 0.5 for i in range(n)],
            "allocated_frac": [0.75] * n,
            "queue_len": [float(i % 5) for i in range(n)],
            "facility_mw": [0.9] * n,
        },
        "power": {
            "policy": "cap",
            "cap_mw": 1.3,
            "peak_facility_mw": 1.25,
            "minutes_over_cap": None,
            "cap_events_h": [[10.0, 4.0, 1.0]],
            "heat_waves_h": [],
            "series": {
                "bin_s": 3600.0,
                "facility_mw": [0.9] * n,
                "cap_mw": [1.3] * 10 + [1.0] * 4 + [1.3] * (n - 14),
            },
        },
    }


def test_the_report_shows_the_books_in_words_with_the_pages_bar(tmp_path: Path) -> None:
    text = render_report(_report())
    assert "None" not in text and "<b>vision</b>" not in text and "&lt;b&gt;vision" in text
    assert "2 failed for good, 1 rejected" in text
    # Figures from the dict: goodput 0.8 -> 80.0%, JCT p50 5,400 s -> 1.50 h.
    assert re.search(r'id="goodput">80.0%<', text) and re.search(r'id="jct-p50">1.50 h<', text)
    table = re.search(r'id="gpu-hours">(.*?)</table>', text, re.S).group(1)  # type: ignore[union-attr]
    shown = re.sub(r"<[^>]+>", " ", table)  # the text a reader sees, not the attributes
    assert "rework after failures" in shown and "_" not in shown
    # The bar: of 1,000 GPU-hours (allocated is their total, in progress a memo: neither
    # drawn), productive 600 -> 360 of 600 px, rework 150 -> 90, idle 150 -> 90, down 60.
    rects = dict(re.findall(r'<rect data-k="(\w+)" x="[^"]+" y="0" width="([^"]+)"', text))
    assert {k: float(v) for k, v in rects.items()} == {
        "productive": 360.0,
        "rework_after_failures": 90.0,
        "idle": 90.0,
        "down": 60.0,
    }
    # A missing figure is left out of the power table, not shown as None.
    figures = re.search(r'id="power-figures">(.*?)</table>', text, re.S).group(1)  # type: ignore[union-attr]
    assert "site cap (MW)" in figures and "time over the cap" not in figures
    assert "steepest grid ramp" not in figures  # absent from the dict altogether
    assert "cap events" in re.search(r'id="spans-legend">(.*?)</p>', text).group(1)  # type: ignore[union-attr]
    # Nothing is fetched: every script and style is inline.
    assert not re.search(r"<(script|link)[^>]+(src|href)=", text)


def test_sim_writes_the_dashboard_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cortex.cli.main import app

    out = tmp_path / "dash.html"
    args = ["sim", "--fleet", "tiny", "--days", "1", "--quiet", "--html", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert 'id="gpu-hours"' in text and 'id="report-data"' in text and "None" not in text


@pytest.fixture
def chromium() -> Any:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_the_report_opens_from_a_file_url_and_shades_the_cap_event(
    tmp_path: Path, chromium: Any
) -> None:
    path = tmp_path / "report.html"
    write_report(_report(), path)
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(60_000)  # generous: see uikit.Page
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else 0)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-charts='3']")  # utilization, queue, power
    assert page.evaluate("() => window.cortexReport.charts['chart-power'].series.length") == 3

    # Inside the cap event (hour 12) the plot is tinted red; at hour 30 it is not.
    def tint(hour: float) -> list[int]:
        return page.evaluate(
            """(h) => { const u = window.cortexReport.charts['chart-power'];
                       const x = Math.round(u.valToPos(h, 'x', true));
                       const y = Math.round(u.bbox.top + u.bbox.height * 0.03);
                       return Array.from(u.ctx.getImageData(x, y, 1, 1).data); }""",
            hour,
        )

    inside, outside = tint(12.0), tint(30.0)
    assert inside[0] > 200 and inside[1] < 100 and inside[3] > 0  # rgba(229, 57, 53, 0.18)
    assert not (outside[0] > 200 and outside[1] < 100 and outside[3] > 0)
    Path(__file__).resolve().parents[2].joinpath("tmp", "artifacts", "ui").mkdir(
        parents=True, exist_ok=True
    )
    page.screenshot(
        path=str(Path(__file__).resolve().parents[2] / "tmp/artifacts/ui/report.png"),
        full_page=True,
    )
    ctx.close()
    assert errors == []
