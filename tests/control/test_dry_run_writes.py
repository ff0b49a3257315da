"""A dry run builds its job by the loop's rule: a job declaring only `checkpoint_size_gb` writes
for its size over the fleet's storage bandwidth, as the job the loop schedules does
(loop.mem_job, JobSpec.write_s). The dry run built it with `checkpoint_write_s` alone, so its
writes were missing from the runtime that decides whether the job backfills."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN_H, fake_service, job_body

from cortex.control import dryrun
from cortex.control.service import Service
from cortex.workload.job import Job


@pytest.fixture
def svc(db_url: str, tmp_path: Path) -> Iterator[Service]:
    service = fake_service(db_url, tmp_path, slots=4)
    yield service
    service.close()


def test_a_dry_run_job_writes_its_declared_checkpoint_size(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Job] = []
    real = dryrun.live_record

    def spy(loop: Any, now: float, job: Job) -> Any:
        seen.append(job)
        return real(loop, now, job)

    monkeypatch.setattr(dryrun, "live_record", spy)
    client = TestClient(svc.app)
    tok = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    r = client.post(
        "/v1/jobs/dry-run", json=job_body(duration_s=3600, checkpoint_size_gb=400), headers=h
    )
    assert r.status_code == 200, r.text
    gbps = svc.loop.topo.spec.storage_write_gbps
    assert len(seen) == 1
    assert seen[0].ckpt_write_s == pytest.approx(400 / gbps)
    assert seen[0].ckpt_write_s > 0
