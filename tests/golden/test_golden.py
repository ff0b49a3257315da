"""Golden run: a small seeded simulation whose headline figures are checked in.

Any change to the workload generator, the failure model, the scheduler or the accounting moves
at least one of these figures. When the change is intended, regenerate the file and review the
diff:

    CORTEX_UPDATE_GOLDEN=1 pytest tests/golden/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.sources import load_workload

GOLDEN = Path(__file__).with_name("tiny_seed7.json")
UPDATE = os.environ.get("CORTEX_UPDATE_GOLDEN") == "1"
# tiny (64 GPUs) at offered load 3 so that jobs queue and get preempted; failures 50x the
# Llama 3 rates so that a few interruptions land in three days.
CONFIG: dict[str, Any] = {
    "fleet": "tiny",
    "workload": "synthetic",
    "days": 3.0,
    "seed": 7,
    "load": 3.0,
    "failure_scale": 50.0,
}
# The report rounds floats to 6 significant digits; allow one step in the last digit.
REL = 1e-5


def summarize() -> dict[str, Any]:
    """Run the golden configuration and keep the stable headline figures."""
    topo = build(load_fleet_spec(CONFIG["fleet"]))
    jobs = load_workload(
        CONFIG["workload"], topo, days=CONFIG["days"], seed=CONFIG["seed"], load=CONFIG["load"]
    )
    cfg = SimConfig(
        days=CONFIG["days"], seed=CONFIG["seed"], failure_scale=CONFIG["failure_scale"], debug=True
    )
    r = build_report(Twin(topo, jobs, cfg).run(), CONFIG["workload"])
    j = r["jobs"]
    return {
        "config": CONFIG,
        "jobs": {
            "submitted": j["submitted"],
            "completed": j["completed"],
            "failed": j["failed"],
            "rejected": j["rejected"],
            "running_at_end": j["running_at_end"],
            "pending_at_end": j["pending_at_end"],
            "jct_s": {k: j["jct_s"][k] for k in ("mean", "p50", "p99")},
            "queue_delay_s": {k: j["queue_delay_s"][k] for k in ("mean", "p99")},
        },
        "utilization": {k: r["utilization"][k] for k in ("allocated", "productive")},
        "goodput": r["goodput"],
        "interruptions": {
            "unexpected": r["interruptions"]["unexpected"],
            "node_failures": r["interruptions"]["node_failures"],
            "by_cause": r["interruptions"]["by_cause"],
        },
        "preemptions": r["preemptions"],
        "energy_mwh": r["energy_mwh"],
        "peak_facility_mw": r["peak_facility_mw"],
        "events": r["events"],
    }


def _diff(got: Any, want: Any, path: str = "") -> list[str]:
    """Where two summaries differ: ints, strings and keys exactly, floats to REL."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}.{k}: missing" for k in want if k not in got]
        out += [f"{path}.{k}: unexpected" for k in got if k not in want]
        for k in want:
            if k in got:
                out += _diff(got[k], want[k], f"{path}.{k}")
        return out
    if isinstance(want, float) and not isinstance(got, bool) and isinstance(got, int | float):
        return (
            [] if got == pytest.approx(want, rel=REL, abs=1e-12) else [f"{path}: {got} != {want}"]
        )
    return [] if got == want and type(got) is type(want) else [f"{path}: {got!r} != {want!r}"]


def test_golden_summary_matches() -> None:
    got = summarize()
    if UPDATE:
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"rewrote {GOLDEN.name}")
    want = json.loads(GOLDEN.read_text())
    diffs = _diff(got, want)
    assert not diffs, (
        "golden run differs (if intended: CORTEX_UPDATE_GOLDEN=1 pytest tests/golden):\n"
        + "\n".join(diffs)
    )


def test_golden_run_exercises_failures_and_preemptions() -> None:
    # Guards the choice of configuration: a golden file of an idle fleet checks little.
    want = json.loads(GOLDEN.read_text())
    assert want["config"] == CONFIG
    assert want["jobs"]["completed"] >= 10
    assert want["interruptions"]["unexpected"] >= 3
    assert len(want["interruptions"]["by_cause"]) >= 2
    assert want["preemptions"] >= 1
    assert sum(want["interruptions"]["by_cause"].values()) == want["interruptions"]["unexpected"]


def test_diff_reports_changes() -> None:
    want = {"a": 1, "b": {"x": 1.0, "y": "s"}}
    assert _diff({"a": 1, "b": {"x": 1.000001, "y": "s"}}, want) == []
    assert _diff({"a": 2, "b": {"x": 1.0, "y": "s"}}, want) == [".a: 2 != 1"]
    assert _diff({"a": 1, "b": {"x": 1.1, "y": "s"}}, want) == [".b.x: 1.1 != 1.0"]
    assert _diff({"a": 1, "b": {"x": 1.0}}, want) == [".b.y: missing"]
    assert _diff({"a": 1.0, "b": {"x": 1.0, "y": "s"}}, want) == [".a: 1.0 != 1"]
