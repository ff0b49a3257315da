"""The golden run checked without trusting the twin's own accounting.

`test_golden.py` compares the run with a file the twin wrote. Here the same run's figures are
derived again from outside its metrics: the job count from the workload generator, every job's
state path against the paths the twin may take (written out by hand, not read from
`workload/states.py`), and the GPU-hours, job-completion and queueing times integrated from the
jobs' recorded histories. A bug in the metrics, the report or the state machine moves one side
and not the other.

On `tiny` every node is an 8-GPU H100-SXM5 and H100-SXM5 runs every kind at speed 1.0, so a
job of `gpus` GPUs holds ceil(gpus / 8) * 8 GPUs when it spans nodes, else `gpus`.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import build
from cortex.sim.report import build_report
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.sources import load_workload
from cortex.workload.states import JobState

GOLDEN = Path(__file__).with_name("tiny_seed7.json")
Q, A, R, P, F, RQ, C, X = (JobState.QUEUED, JobState.ADMITTED, JobState.RUNNING,
                           JobState.PREEMPTED, JobState.FAILED, JobState.REQUEUED,
                           JobState.COMPLETED, JobState.REJECTED)  # fmt: skip
# The twin's paths (docs/ARCHITECTURE.md, "Job states"): arrival, start, finish, failure,
# preemption. The control plane's extra moves (cancel, admitted -> requeued) never happen here.
TWIN_MOVES = {Q: {A, X}, A: {R}, R: {P, F, C}, P: {RQ}, F: {RQ}, RQ: {A}, C: set(), X: set()}
GPN = 8  # GPUs per node on tiny


@pytest.fixture(scope="module")
def run() -> tuple[dict[str, Any], list[Job], list[Job], float]:
    want = json.loads(GOLDEN.read_text())["config"]
    topo = build(load_fleet_spec(want["fleet"]))
    jobs = load_workload(
        want["workload"], topo, days=want["days"], seed=want["seed"], load=want["load"]
    )
    fresh = load_workload(
        want["workload"], topo, days=want["days"], seed=want["seed"], load=want["load"]
    )
    cfg = SimConfig(
        days=want["days"], seed=want["seed"], failure_scale=want["failure_scale"],
        debug=True, keep_history=True,
    )  # fmt: skip
    report = build_report(Twin(topo, jobs, cfg).run(), want["workload"])
    return report, jobs, fresh, want["days"] * 86400.0


def _alloc(gpus: int) -> int:
    return gpus if gpus <= GPN else -(-gpus // GPN) * GPN


def _runs(job: Job, horizon: float) -> list[tuple[float, float]]:
    """[start, stop) of each run, from the history; a run still going stops at the horizon."""
    out = []
    start = None
    for t, state, _ in job.history or []:
        if state is R:
            start = t
        elif start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, horizon))
    return out


def test_jobs_are_conserved_from_the_workload(run: Any) -> None:
    report, jobs, fresh, horizon = run
    # The generator alone says how many jobs arrive before the horizon.
    arrived = [j for j in fresh if j.submit_s < horizon]
    assert report["jobs"]["submitted"] == len(arrived) == len(jobs)
    final = [j.history[-1][1] for j in jobs if j.history]
    counts = {s: final.count(s) for s in set(final)}
    assert report["jobs"]["completed"] == counts.get(C, 0)
    assert report["jobs"]["rejected"] == counts.get(X, 0)
    assert report["jobs"]["running_at_end"] == counts.get(R, 0)
    assert report["jobs"]["pending_at_end"] == counts.get(Q, 0) + counts.get(RQ, 0)
    # A history that ends `failed`: the job's own failures spent every retry (judge_exit).
    assert report["jobs"]["failed"] == counts.get(F, 0)
    j = report["jobs"]
    ended = j["completed"] + j["failed"] + j["rejected"]
    assert ended + j["running_at_end"] + j["pending_at_end"] == len(jobs)


def test_every_history_is_a_twin_path_in_time_order(run: Any) -> None:
    _, jobs, _, horizon = run
    for job in jobs:
        hist = job.history or []
        assert hist[0][:2] == (job.submit_s, Q), job.id
        for (t0, s0, _), (t1, s1, _) in itertools.pairwise(hist):
            assert s1 in TWIN_MOVES[s0], (job.id, s0, s1)
            assert t0 <= t1 <= horizon, (job.id, t0, t1)
            if s0 is A:  # a start is admitted, then running, at one instant
                assert t1 == t0


def test_gpu_hours_and_counts_integrate_from_the_histories(run: Any) -> None:
    report, jobs, _, horizon = run
    # Allocated GPU-seconds: every run's length times the GPUs its gang holds.
    alloc_s = sum(_alloc(j.gpus) * (b - a) for j in jobs for a, b in _runs(j, horizon))
    assert report["gpu_hours"]["allocated"] == pytest.approx(alloc_s / 3600, rel=1e-5)
    # Never more GPUs held at once than the fleet has (64): a sweep over run edges.
    edges = sorted(
        (t, d * _alloc(j.gpus)) for j in jobs for a, b in _runs(j, horizon)
        for t, d in ((a, 1), (b, -1))
    )  # fmt: skip
    held = np.cumsum([d for _, d in edges]) if edges else np.zeros(1)
    assert held.max() <= 64 and held[-1] >= 0
    # Interruptions and preemptions: one history entry each.
    moves = [s for j in jobs for _, s, _ in j.history or []]
    assert report["preemptions"] == moves.count(P)
    assert report["interruptions"]["unexpected"] == moves.count(F)


def test_completed_work_and_times_recomputed_from_the_workload(run: Any) -> None:
    report, jobs, fresh, horizon = run
    spec = {j.id: j for j in fresh}
    done = [j for j in jobs if j.history and j.history[-1][1] is C]
    # A completed job did all the work the generator gave it: its runs at speed 1.0 last at
    # least work_s in total (more with checkpoint writes and restart overheads).
    for j in done:
        ran = sum(b - a for a, b in _runs(j, horizon))
        assert ran >= spec[j.id].work_s - 1e-6, (j.id, ran, spec[j.id].work_s)
    # Productive GPU-hours are every job's kept work, gpus x work each (speed 1.0 on tiny): the
    # completed jobs' whole work_s, taken from the generator (not the twin); the work the others
    # kept at their last checkpoint (their done_s); and, since the books count work done by the
    # horizon, the running jobs' uncheckpointed work (`in_progress_at_end`, a memo line).
    gh = report["gpu_hours"]
    completed_h = sum(spec[j.id].gpus * spec[j.id].work_s for j in done) / 3600
    done_ids = {j.id for j in done}
    kept_h = sum(j.gpus * j.done_s for j in jobs if j.id not in done_ids) / 3600
    assert completed_h > 0
    assert gh["productive"] == pytest.approx(
        completed_h + kept_h + gh["in_progress_at_end"], rel=1e-5
    )
    # Job completion and queueing times from the histories, not from the twin's fields.
    jct = np.array([j.history[-1][0] - spec[j.id].submit_s for j in done])
    for k, q in (("mean", None), ("p50", 50), ("p99", 99)):
        x = jct.mean() if q is None else np.percentile(jct, q)
        assert report["jobs"]["jct_s"][k] == pytest.approx(x, rel=1e-5)
    waits = np.array([
        next(t for t, s, _ in j.history or [] if s is R) - spec[j.id].submit_s
        for j in jobs if any(s is R for _, s, _ in j.history or [])
    ])  # fmt: skip
    assert report["jobs"]["queue_delay_s"]["mean"] == pytest.approx(waits.mean(), rel=1e-5)


def test_golden_file_agrees_with_the_independent_figures(run: Any) -> None:
    # The checked-in file must match what is derived here, not only what the twin reports.
    report, jobs, _, _ = run
    want = json.loads(GOLDEN.read_text())
    moves = [s for j in jobs for _, s, _ in j.history or []]
    assert want["jobs"]["submitted"] == len(jobs)
    assert want["preemptions"] == moves.count(P)
    assert want["interruptions"]["unexpected"] == moves.count(F)
    final = [j.history[-1][1] for j in jobs if j.history]
    assert want["jobs"]["completed"] == final.count(C)
    assert want["jobs"]["failed"] == final.count(F)
    assert report["jobs"]["submitted"] == want["jobs"]["submitted"]
