"""Backfill's runtime estimate is one rule for both drivers (drive/run_estimate.py): the twin's
and the control plane's estimates of the same job agree, checkpoint writes included, and the
API's start estimates follow it. The control plane's estimate used to leave out the writes
(remaining work over speed), so a checkpointing job was estimated to end before the twin said.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeclock import FakeClock
from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import ADMIN_H, fake_service, job_body

from cortex.control import progress
from cortex.control.service import Service
from cortex.drive import run_estimate, runs
from cortex.sim import checkpoint as ckpt
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.spec import JobSpec
from testkit import TINY

FALLBACK_S = runs.rules("control").fallback_checkpoint_interval_s


@pytest.fixture
def svc(db_url: str, tmp_path: Path) -> Iterator[Service]:
    s = fake_service(db_url, tmp_path, slots=8, clock=FakeClock())
    yield s
    s.close()


def _job(job_id: int, **kw: object) -> Job:
    spec = JobSpec.model_validate({"name": "j", "team": "fsd", "gpus": 4, **kw})
    return Job.from_spec(job_id, spec, 0, spec.checkpoint_write_s)


# (spec fields, gang, wall seconds derived by hand); generic work at speed 1.0 on both sides.
CASES = [
    # 3,600 s in 600 s chunks: 6 chunks, a 60 s write after each but the last: 3,600 + 300.
    ({"duration_s": 3600, "checkpoint_write_s": 60, "checkpoint_interval_s": 600}, 4, 3900.0),
    # No interval given, no failure rate: the shared fallback interval (3,600 s) over 7,200 s
    # of work is 2 chunks, one write.
    ({"duration_s": 7200, "checkpoint_write_s": 60}, 4, 7200.0 + 60.0),
    # An elastic job on half its gang runs twice as long: 7,200 s in 600 s chunks, 11 writes.
    (
        {
            "duration_s": 3600,
            "checkpoint_write_s": 30,
            "checkpoint_interval_s": 600,
            "elastic": {"min_gpus": 2, "max_gpus": 4},
        },
        2,
        7200.0 + 11 * 30.0,
    ),
    # No write time: the job does not checkpoint, its work alone.
    ({"duration_s": 500}, 4, 500.0),
]


@pytest.mark.parametrize(("fields", "gang", "want"), CASES)
def test_the_twin_and_the_control_plane_estimate_the_same_job_alike(
    svc: Service, fields: dict[str, object], gang: int, want: float
) -> None:
    tw = Twin(TINY, [], SimConfig(days=1, failures=False))
    loop = svc.loop
    assert tw.fallback_tau_s == FALLBACK_S == 3600.0
    # The same speed for the job on both sides (generic work: 1.0 on H100, and on a device
    # the throughput table does not know), so the estimates must be equal, not just close.
    assert tw.speeds[("generic", 0)] == loop.speed("generic", 0) == 1.0
    live = loop.estimate_s(_job(1, **fields), 0, gang)
    twin = tw._estimate_s(_job(1, **fields), 0, gang)
    assert live == twin == pytest.approx(want, abs=1e-9)


def test_restart_overhead_owed_and_work_done_count_in_both_drivers(svc: Service) -> None:
    """What a job's progress says moves both estimates alike (the twin books it; the rule
    takes it from either driver): 1,800 s done of 3,600, 600 s of restart owed."""
    tw = Twin(TINY, [], SimConfig(days=1, failures=False))
    jobs = []
    for _ in range(2):
        j = _job(2, duration_s=3600, checkpoint_write_s=60, checkpoint_interval_s=600)
        j.done_s, j.owed_overhead_s = 1800.0, 600.0
        jobs.append(j)
    # 1,800 s left in 600 s chunks: 3 chunks, 2 writes, after 600 s of restart.
    want = 600.0 + 1800.0 + 2 * 60.0
    assert svc.loop.estimate_s(jobs[0], 0, 4) == tw._estimate_s(jobs[1], 0, 4) == want


def test_a_driver_without_a_failure_rate_takes_the_fallback_interval() -> None:
    job = _job(3, duration_s=100, checkpoint_write_s=10)
    assert run_estimate.interval_s(job, None, None, 1234.0) == 1234.0
    assert run_estimate.interval_s(job, 50.0, None, 1234.0) == 50.0  # the driver's default
    # Young/Daly over the rate, asked only when no interval is given: sqrt(2 * 10 * 1000) - 10.
    assert run_estimate.interval_s(job, None, lambda: 1e-3, 0.0) == pytest.approx(
        math.sqrt(2 * 10 * 1000) - 10
    )
    fixed = _job(4, duration_s=100, checkpoint_write_s=10, checkpoint_interval_s=70)

    def never() -> float:
        raise AssertionError("the rate is summed only when no interval is given")

    assert run_estimate.interval_s(fixed, None, never, 0.0) == 70.0
    none = _job(5, duration_s=100)
    assert run_estimate.interval_s(none, 50.0, never, 1.0) == math.inf


def test_the_api_start_estimate_counts_the_running_jobs_checkpoint_writes(svc: Service) -> None:
    """8 slots: a 8-GPU job of 3,600 s writing a 60 s checkpoint every 600 s runs from t0; the
    one behind it starts when it ends, t0 + 3,900 (the old estimate said t0 + 3,600)."""
    client = TestClient(svc.app)
    token = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    svc.loop.tick()
    t0 = svc.clock.time()
    body = job_body(
        gpus=8, duration_s=3600, checkpoint_write_s=60, checkpoint_interval_s=600, name="a"
    )
    assert client.post("/v1/jobs", json=body, headers=h).status_code == 201
    svc.loop.tick()
    r = client.post("/v1/jobs", json=job_body(gpus=8, duration_s=50, name="b"), headers=h)
    b = int(r.json()["id"])
    svc.loop.tick()
    got = client.get(f"/v1/jobs/{b}/why?start=true", headers=h).json()["start_estimate"]
    assert got["start_s"] == t0 + 3900.0


def _team(svc: Service) -> tuple[TestClient, dict[str, str]]:
    client = TestClient(svc.app)
    token = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    return client, {"Authorization": f"Bearer {token}"}


def test_a_checkpoint_size_is_a_write_time_in_both_drivers(svc: Service) -> None:
    """A job that gives its checkpoint's size, not its write time: the twin writes it at the
    fleet's storage bandwidth (workload/spec.py JobSpec.write_s), and so does the control plane
    now. It used to book no writes at all for such a job (its write time was None)."""
    client, h = _team(svc)
    svc.loop.tick()
    fields = {"duration_s": 3600, "checkpoint_size_gb": 120_000, "checkpoint_interval_s": 600}
    r = client.post("/v1/jobs", json=job_body(gpus=8, **fields), headers=h)
    assert r.status_code == 201, r.text
    svc.loop.tick()
    live = svc.loop.mirror.jobs[int(r.json()["id"])]
    # 120,000 GB at 2,000 GB/s; 3,600 s in 600 s chunks, a 60 s write after each but the last.
    assert (live.ckpt_write_s, svc.loop.estimate_s(live, 0, 8)) == (60.0, 3900.0)
    tw = Twin(TINY, [], SimConfig(days=1, failures=False))
    storage = tw.topo.spec.storage_write_gbps
    assert storage == svc.loop.topo.spec.storage_write_gbps == 2000.0  # the fleet default
    spec = JobSpec.model_validate({"name": "j", "team": "fsd", "gpus": 8, **fields})
    twin_job = Job.from_spec(1, spec, 0, spec.write_s(storage))
    assert twin_job.ckpt_write_s == 60.0
    assert svc.loop.estimate_s(live, 0, 8) == tw._estimate_s(twin_job, 0, 8) == 3900.0


def test_a_requeued_job_is_estimated_from_its_kept_work_and_owed_startup(
    svc: Service, db_url: str, tmp_path: Path
) -> None:
    """Attempt 1 reports its first step 100 s after it starts and a checkpoint at 760 s (one
    600 s chunk and its 60 s write), then fails at 800 s. The control plane books what the twin
    books for such a run (drive/run_estimate.py): 600 s of work kept, and the run's 100 s of
    startup owed at the next start; the estimate of the requeued job is the twin's for the same
    job, and a restart keeps both (jobs.work_done_s, restart_owed_s). It used to estimate the
    requeued job from its whole duration_s again (3,900 s)."""
    client, h = _team(svc)
    svc.loop.tick()
    clock = svc.clock
    fields = {"duration_s": 3600, "checkpoint_write_s": 60, "checkpoint_interval_s": 600}
    r = client.post("/v1/jobs", json=job_body(gpus=8, **fields), headers=h)
    jid = int(r.json()["id"])
    svc.loop.tick()
    start = clock.time()
    assert client.get(f"/v1/jobs/{jid}", headers=h).json()["state"] == "running"
    clock.advance(100)
    url = f"/v1/jobs/{jid}/progress"
    assert client.post(url, json={"attempt": 1, "step": 1}, headers=h).status_code == 202
    clock.advance(660)
    body = {"attempt": 1, "step": 2, "checkpoint_step": 2, "checkpoint_at": start + 760}
    assert client.post(url, json=body, headers=h).status_code == 202
    clock.advance(40)
    svc.loop.executor.finish(jid, "failed", 1)
    svc.loop.tick()  # requeued: retry 1 of 1, no backoff in these tests
    live = svc.loop.mirror.jobs[jid]
    assert (live.done_s, live.owed_overhead_s) == (600.0, 100.0)
    tw = Twin(TINY, [], SimConfig(days=1, failures=False))
    twin_job = _job(jid, gpus=8, **fields)
    twin_job.done_s, twin_job.owed_overhead_s = 600.0, 100.0
    # 100 s of startup, then 3,000 s left in 600 s chunks: 5 chunks, 4 writes.
    want = 100.0 + 3000.0 + 4 * 60.0
    assert svc.loop.estimate_s(live, 0, 8) == tw._estimate_s(twin_job, 0, 8) == want
    svc.close()  # a restart reads both back from the job's row
    again = fake_service(db_url, tmp_path, slots=8, clock=clock)
    try:
        job = again.loop.mirror.jobs[jid]
        assert (job.done_s, job.owed_overhead_s) == (600.0, 100.0)
        assert again.loop.estimate_s(job, 0, 8) == want
    finally:
        again.close()


@pytest.mark.parametrize(("overhead", "tau", "write", "chunks"), [(100, 600, 60, 1), (0, 50, 5, 7)])
def test_a_measured_run_keeps_what_the_twins_model_saves(
    overhead: float, tau: float, write: float, chunks: int
) -> None:
    """A run that goes as the twin models it (startup, then chunks each followed by a write),
    measured at its last checkpoint, keeps what sim/checkpoint.progress says it saved."""
    start = 1000.0
    at = start + overhead + chunks * (tau + write)
    measured = run_estimate.kept_compute_s(start, start + overhead, at, chunks, write)
    assert measured == ckpt.progress(at - start, overhead, tau, write)[1] == chunks * tau
    # No checkpoint in the run (none, or one before it began): nothing kept.
    assert run_estimate.kept_compute_s(start, start + overhead, None, 0, write) == 0.0
    assert run_estimate.kept_compute_s(start, None, start - 1, 1, write) == 0.0


class _MetricsExecutor(FakeExecutor):
    """The fake executor with the local executor's per-job metrics file."""

    def metrics_file(self, job_id: int) -> Path:
        return self.root / f"metrics-{job_id}.jsonl"


def test_a_run_whose_metrics_file_is_read_from_its_tail_owes_no_startup_it_did_not_measure(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 writes its first step 100 s after it starts, a step a second to 760 s, a
    checkpoint there, and fails at 800 s; its metrics file, first read at its exit, is longer
    than one read, so it is read from its tail. Its first step is then unknown: no startup is
    booked as owed, and its kept work counts from its start (600 s + its 100 s of startup).
    The tail's first line used to be taken as its first step: ~700 s of startup owed (a run of
    hours owed hours) and almost none of its work kept."""
    monkeypatch.setattr(progress, "READ_MAX_BYTES", 4096)
    ex = _MetricsExecutor(tmp_path / "runs")
    ex.root.mkdir(parents=True)
    svc = fake_service(db_url, tmp_path, slots=8, executor=ex, clock=FakeClock())
    try:
        client, h = _team(svc)
        svc.loop.tick()
        fields = {"duration_s": 3600, "checkpoint_write_s": 60, "checkpoint_interval_s": 600}
        r = client.post("/v1/jobs", json=job_body(gpus=8, **fields), headers=h)
        jid = int(r.json()["id"])
        svc.loop.tick()
        start = svc.clock.time()
        lines = [{"ts": start + t, "attempt": 1, "step": t, "loss": 1.0} for t in range(100, 760)]
        lines.append({"ts": start + 760, "attempt": 1, "step": 760, "event": "checkpoint"})
        ex.metrics_file(jid).write_text("".join(json.dumps(x) + "\n" for x in lines))
        assert ex.metrics_file(jid).stat().st_size > 4 * 4096
        svc.clock.advance(800)  # type: ignore[attr-defined]
        ex.finish(jid, "failed", 1)
        svc.loop.tick()
        live = svc.loop.mirror.jobs[jid]
        assert (live.done_s, live.owed_overhead_s) == (700.0, 0.0)
    finally:
        svc.close()
