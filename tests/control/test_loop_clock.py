"""The scheduler loop on an injected fake clock: retry and preemption backoff, idle passes,
heartbeats and liveness are decided by the clock the test moves, with no sleeps; one tick
stamps its transitions and its events with one `now`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeclock import FakeClock
from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body
from sqlalchemy import select

from cortex.control import models as m

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class Env:
    def __init__(self, url: str, home: Path, **kw: object) -> None:
        self.url, self.home, self.kw = url, home, kw
        self.clock = FakeClock()
        self.ex = FakeExecutor(home / "runs")
        self.start()
        tok = self.client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()
        self.h = {"Authorization": f"Bearer {tok['token']}"}
        self.loop.tick()

    def start(self) -> None:
        self.svc = fake_service(self.url, self.home, executor=self.ex, clock=self.clock, **self.kw)
        self.loop = self.svc.loop
        self.client = TestClient(self.svc.app)

    def restart(self) -> None:
        self.svc.close()
        self.start()

    def submit(self, **kw: object) -> int:
        r = self.client.post("/v1/jobs", json=job_body(**kw), headers=self.h)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def job(self, job_id: int) -> dict:
        return self.client.get(f"/v1/jobs/{job_id}", headers=self.h).json()

    def tick_after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.loop.tick()


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def test_one_tick_stamps_its_transitions_and_events_with_one_now(env: Env) -> None:
    a = env.submit()
    env.tick_after(1000.0)  # far from the machine's clock: a stamp from it would show
    t = env.clock.time()
    hist = env.job(a)["history"]
    assert [(h["dst"], h["at"]) for h in hist[1:]] == [("admitted", t), ("running", t)]
    with env.svc.sessions() as s:
        start = s.scalars(select(m.Event).where(m.Event.job_id == a, m.Event.kind == "start"))
        assert [e.at for e in start] == [t]
        allocs = s.scalars(select(m.Allocation.created_at).where(m.Allocation.job_id == a))
        assert list(allocs) == [t]
    env.ex.finish(a, "failed", 3)
    env.tick_after(7.0)
    with env.svc.sessions() as s:
        ex = s.scalars(select(m.Event.at).where(m.Event.job_id == a, m.Event.kind == "exit"))
        assert list(ex) == [t + 7.0]
    assert {h["at"] for h in env.job(a)["history"][3:5]} == {t + 7.0}  # failed, requeued


def test_a_retry_waits_its_backoff_on_the_clock(env: Env) -> None:
    env.loop.retry_backoff_base_s = 100.0  # first retry after 100 s
    a = env.submit()
    env.loop.tick()
    env.ex.finish(a, "failed", 3)
    env.tick_after(1.0)
    assert "retry in 100 s" in env.job(a)["reason"]
    env.tick_after(99.75)  # 0.25 s short of the delay, which began at the failing tick
    assert env.job(a)["state"] == "requeued" and len(env.ex.launched) == 1
    env.tick_after(0.25)
    j = env.job(a)
    assert j["state"] == "running" and env.ex.launched[-1].attempt == 2


def test_a_restart_keeps_a_retry_delay_by_the_injected_clock(env: Env) -> None:
    env.loop.retry_backoff_base_s = 100.0
    a = env.submit()
    env.loop.tick()
    env.ex.finish(a, "failed", 3)
    env.tick_after(1.0)
    env.clock.advance(50.0)
    env.restart()
    assert a in env.loop.mirror.backoff  # 50 s of 100 left: still waiting
    env.loop.tick()
    assert len(env.ex.launched) == 1
    env.clock.advance(50.0)  # the delay is over while the service is down
    env.restart()
    assert a not in env.loop.mirror.backoff
    env.loop.tick()
    assert env.job(a)["state"] == "running" and env.ex.launched[-1].attempt == 2


def test_a_failed_victim_search_backs_off_by_the_clock(db_url: str, tmp_path: Path) -> None:
    """4 slots, a minimum runtime of 100 s. A preemptible job of 1 runs; a production job of 4
    finds no victim yet (the victim's node started work less than 100 s ago): the search fails
    and backs off, doubling from tick_s (0.2 s; drive/data/run_rules.csv's control rows set no
    minimum-runtime floor) up to 300 s. A search runs only in a pass (at least IDLE_CYCLE_S =
    1 s apart while nothing happens) whose `now` has reached the job's next try; at 100 s the
    victim may be preempted."""
    env = Env(db_url, tmp_path, min_runtime_s=100.0)
    try:
        small = env.submit(gpus=1, priority_class="preemptible", name="small")
        env.loop.tick()
        head = env.submit(gpus=4, priority_class="production", name="head")
        env.loop.tick()
        job = env.loop.mirror.jobs[head]
        waits = [job.preempt_backoff_s]
        for _ in range(5):
            env.tick_after(1.0)
            waits.append(job.preempt_backoff_s)
        # t=0 fails: 0.2 (next t=0.2). t=1: 0.4 (next 1.4). t=2: 0.8 (2.8). t=3: 1.6 (4.6).
        # t=4: 4 < 4.6, no search. t=5: 3.2 (next 8.2).
        assert waits == [0.2, 0.4, 0.8, 1.6, 1.6, 3.2]
        assert env.ex.terminated == []
        env.tick_after(95.0)  # t=100: the victim has run its minimum
        assert env.ex.terminated == [(small, 1, "preempt")]
    finally:
        env.svc.close()


def test_idle_passes_and_heartbeats_follow_the_clock(env: Env) -> None:
    """A job that cannot start yet gets a deep pass at most every IDLE_CYCLE_S (1 s) while
    nothing happens; the node's heartbeat is written every HEARTBEAT_S (5 s)."""
    env.submit(gpus=4)
    env.loop.tick()
    blocked = env.submit(gpus=1)
    env.loop.tick()
    assert env.job(blocked)["state"] == "queued"

    def passes() -> float:
        n = env.loop.metrics.registry.get_sample_value("cortex_schedule_cycle_seconds_count")
        return n or 0.0

    def last_seen() -> float:
        with env.svc.sessions() as s:
            node = s.get(m.Node, env.loop.node_id)
            assert node is not None
            return float(node.last_seen)

    p0, beat0 = passes(), last_seen()
    env.tick_after(0.5)
    assert passes() == p0  # nothing happened and less than 1 s passed: no pass
    env.tick_after(0.5)
    assert passes() == p0 + 1
    env.tick_after(3.0)  # 4 s after the last heartbeat
    assert last_seen() == beat0
    env.tick_after(1.0)
    assert last_seen() == beat0 + 5.0 == env.clock.time()


def test_healthz_goes_stale_by_the_clock(env: Env) -> None:
    assert env.client.get("/healthz").status_code == 200
    env.clock.advance(env.svc.settings.health_stale_s + 1.0)  # no tick for longer than that
    r = env.client.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "stale"
    env.loop.tick()
    assert env.client.get("/healthz").status_code == 200


def test_a_launch_that_raises_is_recorded_at_the_ticks_now(env: Env) -> None:
    env.ex.fail_launch = True
    a = env.submit()
    env.tick_after(1000.0)
    t = env.clock.time()
    hist = env.job(a)["history"]
    assert [h["dst"] for h in hist] == ["queued", "admitted", "running", "failed", "requeued"]
    assert {h["at"] for h in hist[1:]} == {t}  # the launch's commit follows the tick's own


def test_the_api_stamps_rows_and_judges_tokens_by_the_service_clock(env: Env) -> None:
    """Every row the API writes carries the injected clock's time, and a token's expiry is
    judged by it: stamps from the machine's clock (the old store.now_s and the auth
    dependency's time.time) would be 5,000 s off."""
    env.clock.advance(5000.0)
    t = env.clock.time()
    r = env.client.post("/v1/tokens", json={"team": "optimus", "expires_in_s": 60}, headers=ADMIN_H)
    assert r.status_code == 201, r.text
    short = {"Authorization": f"Bearer {r.json()['token']}"}
    assert r.json()["expires_at"] == t + 60
    a = env.submit()
    assert env.client.post(f"/v1/jobs/{a}/cancel", headers=env.h).status_code == 202
    r = env.client.put("/v1/queues/fsd", json={"weight": 2}, headers=ADMIN_H)
    assert r.status_code == 200, r.text
    with env.svc.sessions() as s:
        team = s.scalar(select(m.Team).where(m.Team.name == "optimus"))
        assert team is not None and team.created_at == t
        kinds = ("team", "token", "cancel", "queue")
        stamps = s.execute(
            select(m.Event.kind, m.Event.at).where(m.Event.kind.in_(kinds), m.Event.at >= t - 1)
        ).all()
    assert {k for k, _ in stamps} == set(kinds) and {at for _, at in stamps} == {t}
    assert env.client.get("/v1/jobs", headers=short).status_code == 200
    env.clock.advance(61.0)  # past the token's 60 s on the service clock, not the machine's
    assert env.client.get("/v1/jobs", headers=short).status_code == 401


@pytest.fixture
def hetero_env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path, policy="hetero")
    yield e
    e.svc.close()


def test_the_hetero_profile_solves_its_targets_on_the_loops_clock(hetero_env: Env) -> None:
    """`--policy hetero` in the control plane runs the same periodic throughput solve as the
    twin (drive/allocation.py), every allocator interval (1,800 s) of the service's clock."""
    env = hetero_env
    alloc = env.loop.allocation
    assert env.loop.pol.allocator is not None and alloc.solves == 0
    a = env.submit()
    env.tick_after(1.0)
    assert env.job(a)["state"] == "running" and alloc.solves == 1
    assert alloc.targets is not None
    env.submit()
    env.tick_after(600.0)  # inside the interval: the last targets are reused
    assert alloc.solves == 1
    env.submit()
    env.tick_after(1200.0)  # 1,801 s after the first solve
    assert alloc.solves == 2


def test_a_running_job_has_its_devices_in_the_view_when_its_state_commits(env: Env) -> None:
    """The API shows a job's devices from the loop's published view, and only for a running
    job: the view must name them by the time `running` is committed, or a reader between the
    commit and the end of the tick sees a running job on no devices (a flaky live test found
    it)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    seen: list[tuple[int, bool]] = []

    def check(_s: Session) -> None:
        for jid in env.loop.mirror.attempt:
            seen.append((jid, jid in env.loop.view.devices))

    a = env.submit()
    event.listen(Session, "after_commit", check)
    try:
        env.loop.tick()
    finally:
        event.remove(Session, "after_commit", check)
    assert (a, True) in seen and all(ok for _, ok in seen)
