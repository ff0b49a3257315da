"""Metrics under the names users know: Kueue-style quota gauges, admission wait by queue and
pending jobs by reason (the gates' jobs included), DCGM-style per-GPU power and utilization
attributed to the job, team and queue; and no gauge ending in `_total`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeclock import FakeClock
from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body
from prometheus_client.parser import text_string_to_metric_families

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class Env:
    def __init__(self, url: str, home: Path, **kw: object) -> None:
        self.clock = FakeClock()
        self.ex = FakeExecutor(home / "runs")
        self.svc = fake_service(url, home, slots=4, executor=self.ex, clock=self.clock, **kw)
        self.c = TestClient(self.svc.app, headers=ADMIN_H)
        assert self.c.post("/v1/tokens", json={"team": "fsd"}).status_code in (200, 201)
        self.svc.loop.tick()

    def submit(self, **kw: object) -> int:
        r = self.c.post("/v1/jobs", json=job_body(team="fsd", **kw))
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.c.get("/metrics").text
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


@pytest.fixture(params=[False, True], ids=["no-job-label", "job-label"])
def env(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    e = Env(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, metrics_job_label=request.param)
    yield e
    e.svc.close()


def test_no_gauge_ends_in_total(env: Env) -> None:
    text = env.c.get("/metrics").text
    gauges = [f.name for f in text_string_to_metric_families(text) if f.type == "gauge"]
    assert "cortex_gpus_capacity" in gauges
    assert [g for g in gauges if g.endswith("_total")] == []


def test_quota_gauges_follow_the_queue_and_its_jobs(env: Env) -> None:
    r = env.c.put("/v1/queues/fsd", json={"nominal_share": 0.5, "borrowing_limit_share": 0.25})
    assert r.status_code == 200, r.text
    env.submit()
    env.svc.loop.tick()
    got = env.samples()
    key = (("flavor", "CPU-SLOT"), ("queue", "fsd"))
    # 4 slots: a half share guarantees 2, a quarter share lets it borrow 1 more; 1 job runs.
    assert got[("cortex_queue_nominal_gpus", key)] == 2
    assert got[("cortex_queue_borrowing_limit_gpus", key)] == 1
    assert got[("cortex_queue_used_gpus", key)] == 1


def test_admission_wait_is_observed_by_queue(env: Env) -> None:
    env.submit()
    env.clock.advance(5.0)
    env.svc.loop.tick()
    got = env.samples()
    q = ("queue", "fsd")
    assert got[("cortex_admission_wait_time_seconds_count", (q,))] == 1
    # 5 s after submission: in the 5 s bucket, not the 1 s one.
    assert got[("cortex_admission_wait_time_seconds_bucket", (("le", "1.0"), q))] == 0
    assert got[("cortex_admission_wait_time_seconds_bucket", (("le", "5.0"), q))] == 1
    assert got[("cortex_admission_wait_time_seconds_sum", (q,))] == pytest.approx(5.0)


def test_pending_jobs_count_the_gates_with_slurms_reasons(env: Env) -> None:
    a = env.submit()
    env.submit(hold=True)
    env.submit(after_ok=[a])
    env.submit(after_ok=[a], name="second")
    env.svc.loop.tick()
    got = env.samples()

    def pending(reason: str) -> float:
        return got.get(("cortex_pending_jobs", (("queue", "fsd"), ("reason", reason))), 0.0)

    assert (pending("JobHeldUser"), pending("Dependency")) == (1, 2)


class FakeReader:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def read(self, device: int) -> tuple[str, float | None, float | None] | None:
        self.calls.append(device)
        if device == 3:
            return None  # a device NVML cannot read: left out
        return f"GPU-{device:04d}", 100.0 + device, None if device == 2 else 10.0 * device


def test_dcgm_metrics_name_the_job_holding_each_gpu(env: Env) -> None:
    assert not any(k[0].startswith("DCGM_") for k in env.samples())  # CPU slots: absent
    jid = env.submit(gpus=2)
    env.svc.loop.tick()
    env.svc.dcgm.reader = FakeReader()  # type: ignore[attr-defined]
    got = env.samples()
    devices = env.c.get(f"/v1/jobs/{jid}").json()["devices"]
    assert sorted(devices) == [0, 1]

    with_job = env.svc.settings.metrics_job_label

    def labels(d: int, held: bool) -> tuple[tuple[str, str], ...]:
        job, team = (str(jid), "fsd") if held else ("", "")
        got = {"gpu": str(d), "UUID": f"GPU-{d:04d}", "Hostname": "node-test", "team": team}
        got |= {"queue": team, **({"job": job} if with_job else {})}
        return tuple(sorted(got.items()))

    power = {k[1]: v for k, v in got.items() if k[0] == "DCGM_FI_DEV_POWER_USAGE"}
    util = {k[1]: v for k, v in got.items() if k[0] == "DCGM_FI_DEV_GPU_UTIL"}
    assert power == {
        labels(0, True): 100.0, labels(1, True): 101.0, labels(2, False): 102.0,
    }  # fmt: skip
    assert util == {labels(0, True): 0.0, labels(1, True): 10.0}  # device 2: no reading
