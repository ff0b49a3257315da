"""The scheduler loop and crash recovery against an in-test fake executor: every state change
follows the transition table, allocations are closed, preemption waits for the victim to exit,
and a restart adopts, requeues or kills what the store says was in flight."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import TeamService, fake_service
from sqlalchemy import select
from sqlalchemy.orm import Session

from cortex.control import models as m
from cortex.workload.states import TRANSITIONS, JobState


class Env(TeamService):
    def __init__(self, url: str, home: Path, slots: int = 4) -> None:
        self.url, self.home, self.slots = url, home, slots
        super().__init__(url, home, slots=slots)

    def job(self, job_id: int) -> dict:
        return self.client.get(f"/v1/jobs/{job_id}", headers=self.h).json()

    def restart(self) -> None:
        """A new service on the same store and the same (surviving) executor state."""
        self.svc.close()
        self.svc = fake_service(self.url, self.home, slots=self.slots, executor=self.ex)
        self.client = TestClient(self.svc.app)

    def active_allocations(self) -> list[m.Allocation]:
        with self.svc.sessions() as s:
            return list(s.scalars(select(m.Allocation).where(m.Allocation.active.is_(True))))

    def check_history(self, job_id: int) -> list[str]:
        hist = self.job(job_id)["history"]
        for h in hist[1:]:
            assert JobState(h["dst"]) in TRANSITIONS[JobState(h["src"])], hist
        return [h["dst"] for h in hist]


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def test_run_to_completion_closes_the_allocation(env: Env) -> None:
    a = env.submit(gpus=2)
    env.svc.loop.tick()
    assert env.job(a)["state"] == "running"
    assert [(s.job_id, s.attempt, s.devices) for s in env.ex.launched] == [(a, 1, [0, 1])]
    assert len(env.active_allocations()) == 1
    env.ex.finish(a)
    env.svc.loop.tick()
    assert env.check_history(a) == ["queued", "admitted", "running", "completed"]
    assert env.active_allocations() == []


def test_preemption_waits_for_the_victim_then_requeues_it(env: Env) -> None:
    low = env.submit(gpus=4, priority_class="preemptible", name="low")
    env.svc.loop.tick()
    high = env.submit(gpus=2, priority_class="production", name="high")
    env.svc.loop.tick()
    assert env.ex.terminated == [(low, 1, "preempt")]
    assert env.job(high)["state"] == "admitted"  # capacity reserved, devices still busy
    env.svc.loop.tick()
    assert len(env.ex.launched) == 1  # never two jobs on the same devices
    env.ex.finish(low, "preempted", 75)
    env.svc.loop.tick()
    assert env.job(high)["state"] == "running"
    assert env.ex.launched[-1].devices == [0, 1]
    assert env.check_history(low) == ["queued", "admitted", "running", "preempted", "requeued"]
    env.ex.finish(high)
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.job(low)["state"] == "running" and env.job(low)["attempt"] == 2
    assert env.job(low)["preemptions"] == 1


def test_cancel_queued_and_running(env: Env) -> None:
    run = env.submit(gpus=4)
    env.svc.loop.tick()
    wait = env.submit(gpus=4)
    env.client.post(f"/v1/jobs/{wait}/cancel", headers=env.h)
    env.client.post(f"/v1/jobs/{run}/cancel", headers=env.h)
    env.svc.loop.tick()
    assert env.check_history(wait) == ["queued", "cancelled"]
    assert env.ex.terminated == [(run, 1, "cancel")]
    assert env.job(run)["state"] == "running"
    env.ex.finish(run, "cancelled", -15)
    env.svc.loop.tick()
    assert env.check_history(run) == ["queued", "admitted", "running", "cancelled"]
    assert env.active_allocations() == []


def test_failures_retry_up_to_the_limit(env: Env) -> None:
    a = env.submit()
    for _ in range(2):
        env.svc.loop.tick()
        env.ex.finish(a, "failed", 3)
        env.svc.loop.tick()
    hist = env.check_history(a)
    assert hist.count("failed") == 2 and hist[-1] == "failed"  # max_retries=1
    assert env.job(a)["exit_code"] == 3 and env.job(a)["ended_at"] is not None
    assert env.active_allocations() == []


def test_launch_error_counts_as_a_failed_run(env: Env) -> None:
    env.ex.fail_launch = True
    a = env.submit()
    env.svc.loop.tick()
    j = env.job(a)
    assert j["state"] == "requeued" and "launch failed" in j["history"][-2]["reason"]
    assert env.active_allocations() == []


def test_restart_adopts_live_runs_and_requeues_lost_ones(env: Env) -> None:
    kept = env.submit(gpus=2, name="kept")
    lost = env.submit(gpus=2, name="lost")
    env.svc.loop.tick()
    assert {s.job_id for s in env.ex.launched} == {kept, lost}
    env.ex.adoptable = {(kept, 1)}
    env.restart()
    assert env.svc.recovered["adopted"] == 1 and env.svc.recovered["lost"] == 1
    assert env.job(kept)["state"] == "running"
    assert env.check_history(lost)[-2:] == ["failed", "requeued"]
    assert [h["job_id"] for h in env.ex.killed] == [lost]
    # the adopted run keeps its devices: the lost job restarts on the other two
    env.svc.loop.tick()
    assert env.job(lost)["state"] == "running"
    assert env.ex.launched[-1].devices == [2, 3] and env.ex.launched[-1].attempt == 2
    assert sorted(a.job_id for a in env.active_allocations()) == [kept, lost]
    env.ex.finish(kept)
    env.svc.loop.tick()
    assert env.job(kept)["state"] == "completed"


def test_restart_undoes_unlaunched_intents_and_closes_leaks(env: Env) -> None:
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    # A crash between committing the launch and recording the handle: no handle in the store.
    with env.svc.sessions.begin() as s:
        alloc = s.scalar(select(m.Allocation).where(m.Allocation.job_id == a))
        assert alloc is not None
        alloc.handle = None
        # and a leaked row for a job that holds nothing
        s.add(
            m.Allocation(
                job_id=a,
                attempt=0,
                node_id=alloc.node_id,
                flavor="CPU-SLOT",
                gpus=1,
                active=True,
                created_at=0.0,
            )
        )
    b = env.submit(gpus=1)
    with env.svc.sessions.begin() as s:  # b admitted, never launched
        row = s.get(m.Job, b)
        assert row is not None
        row.state, row.seen = "admitted", True
        s.add(
            m.Allocation(
                job_id=b,
                attempt=1,
                node_id=alloc.node_id,
                flavor="CPU-SLOT",
                gpus=1,
                active=True,
                created_at=0.0,
            )
        )
    env.restart()
    rec = env.svc.recovered
    assert (rec["lost"], rec["unlaunched"]) == (1, 1)
    assert env.active_allocations() == []
    assert env.job(a)["state"] == "requeued" and env.job(b)["state"] == "requeued"
    env.svc.loop.tick()
    assert env.job(a)["attempt"] == 2 and env.job(b)["attempt"] == 1


def test_restart_resends_a_committed_stop(env: Env) -> None:
    a = env.submit(gpus=4, priority_class="preemptible")
    env.svc.loop.tick()
    env.client.post(f"/v1/jobs/{a}/cancel", headers=env.h)
    env.svc.loop.tick()
    env.ex.adoptable = {(a, 1)}
    env.ex.terminated.clear()
    env.restart()
    assert env.ex.terminated == [(a, 1, "cancel")]
    env.ex.finish(a, "preempted", 75)  # whatever the exit, a cancelled job stays cancelled
    env.svc.loop.tick()
    assert env.job(a)["state"] == "cancelled"


def test_restart_adopts_a_run_whose_handle_never_reached_the_store(env: Env) -> None:
    from fakeexec import FakeHandle

    a = env.submit(gpus=1)
    env.svc.loop.tick()
    with env.svc.sessions.begin() as s:
        alloc = s.scalar(select(m.Allocation).where(m.Allocation.job_id == a))
        assert alloc is not None
        alloc.handle = None
    found = FakeHandle(a, 1, (0,))
    stray = FakeHandle(999, 1, (3,))  # a run the store knows nothing of
    env.ex.live = [found, stray]
    env.ex.adoptable = {(a, 1)}
    env.restart()
    assert env.svc.recovered["adopted"] == 1
    assert env.job(a)["state"] == "running"
    assert env.ex.killed == [stray]
    [alloc_row] = env.active_allocations()
    assert alloc_row.handle == found.to_dict()


def test_a_job_admitted_but_not_launched_can_itself_be_preempted(env: Env) -> None:
    a = env.submit(gpus=4, priority_class="preemptible", name="a")
    env.svc.loop.tick()
    b = env.submit(gpus=4, priority_class="normal", name="b")
    env.svc.loop.tick()
    assert env.job(b)["state"] == "admitted"  # waiting for a's devices
    c = env.submit(gpus=4, priority_class="production", name="c")
    env.svc.loop.tick()
    assert env.check_history(b) == ["queued", "admitted", "requeued"]
    assert env.job(c)["state"] == "admitted"
    assert [t[0] for t in env.ex.terminated] == [a]  # b never ran: nothing to signal
    env.ex.finish(a, "preempted", 75)
    env.svc.loop.tick()
    assert env.job(c)["state"] == "running" and env.job(b)["state"] == "requeued"
    assert [s.job_id for s in env.ex.launched] == [a, c]
    assert {x.job_id for x in env.active_allocations()} == {c}


def test_a_failed_tick_resynchronizes_from_the_store(env: Env) -> None:
    a = env.submit(gpus=2)
    env.svc.loop.tick()
    b = env.submit(gpus=2)
    loop = env.svc.loop
    real_persist = loop._persist

    def broken(*args: object) -> object:
        real_persist(*args)  # type: ignore[arg-type]
        raise RuntimeError("store went away")

    loop._persist = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        loop.tick()  # b was admitted in memory; the transaction rolled back
    assert b in loop.mirror.placement and env.job(b)["state"] == "queued"
    loop._persist = real_persist  # type: ignore[method-assign]
    env.ex.adoptable = {(a, 1)}
    assert loop.on_error is not None
    loop.on_error()
    assert b not in loop.mirror.placement and env.job(a)["state"] == "running"
    loop.tick()
    assert env.job(b)["state"] == "running"
    assert sorted(d for s in env.ex.launched for d in s.devices) == [0, 1, 2, 3]


def test_a_cancel_recorded_while_the_loop_reads_the_hints_is_not_lost(env: Env) -> None:
    a = env.submit(gpus=1, name="a")
    b = env.submit(gpus=1, name="b")
    env.svc.loop.tick()
    loop = env.svc.loop
    loop._last_cancel_scan = time.time()  # the periodic full scan is not due for a while
    env.client.post(f"/v1/jobs/{a}/cancel", headers=env.h)

    class CancelWhileRead(set[int]):
        """The API records b's cancel (a thread switch) just after the loop read the hints."""

        def __iter__(self) -> Iterator[int]:
            items = list(super().__iter__())
            env.client.post(f"/v1/jobs/{b}/cancel", headers=env.h)
            return iter(items)

    loop.cancel_hint = CancelWhileRead(loop.cancel_hint)
    with loop.sessions() as r:
        assert loop._cancel_candidates(r, time.time()) == [a]
    loop.tick()
    assert env.ex.terminated == [(b, 1, "cancel")]


def test_a_quota_change_committed_during_a_rebuild_is_applied_next_tick(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cortex.control import store

    loop = env.svc.loop
    real = store.queues
    raced = []

    def racing(s: Session) -> Any:
        rows = real(s)
        if not raced:  # what PUT /v1/queues does, after the loop read the old quota
            raced.append(True)
            with loop.sessions.begin() as w:
                q = w.scalar(select(m.Queue).where(m.Queue.name == "fsd"))
                assert q is not None
                q.nominal_share = 0.5
            loop.queues_dirty = True
        return rows

    monkeypatch.setattr(store, "queues", racing)
    loop.queues_dirty = True
    loop.tick()
    assert raced and loop.mirror.queues.queues[0].nominal == (0,)  # this tick read the old quota
    loop.tick()
    assert loop.mirror.queues.queues[0].nominal == (2,)  # 0.5 of 4 slots


def test_a_long_exit_detail_does_not_break_the_tick(env: Env) -> None:
    """The runner's detail quotes the command (`could not start rank 0: [Errno 2] No such file
    or directory: '<path>'`), and an argument may be 4,096 characters: PostgreSQL refused the
    500-character reason column, and every tick after failed on the same exit."""
    from fakeexec import FakeExit

    a = env.submit(gpus=1)
    env.svc.loop.tick()
    env.ex.alive.clear()
    missing = "/no/such/" + "a" * 4000
    env.ex.exits.append(
        FakeExit(a, 1, "failed", 127, f"could not start rank 0: No such file: {missing!r}")
    )
    env.svc.loop.tick()
    j = env.job(a)  # retried at once: attempt 2 runs on the freed slot
    assert (j["state"], j["attempt"], j["exit_code"]) == ("running", 2, 127)
    [failed] = [h for h in j["history"] if h["dst"] == "failed"]
    assert failed["reason"].startswith("failed: could not start rank 0: No such file")
    assert [(x.job_id, x.attempt) for x in env.active_allocations()] == [(a, 2)]


def test_restart_rejects_a_queued_job_the_fleet_can_no_longer_run_like_the_loop_does(
    env: Env,
) -> None:
    env.svc.loop.schedulable = False
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    with env.svc.sessions.begin() as s:  # accepted when the machine had other accelerators
        row = s.get(m.Job, a)
        assert row is not None
        row.spec = {**row.spec, "flavors": ["H100-SXM5"]}
    env.restart()
    j = env.job(a)
    assert j["state"] == "rejected" and j["reason"].startswith("NoEligibleFlavor")
    assert j["ended_at"] is not None
    kinds = [e["kind"] for e in env.client.get(f"/v1/events?job_id={a}", headers=env.h).json()]
    assert "rejected" in kinds


def test_restart_records_a_run_that_ended_before_its_handle_was_stored(env: Env) -> None:
    """Issue 9, defect 4: the runner wrote its handle, the service died before committing it,
    and the job finished while the service was down. Recovery reads that attempt's run dir
    (not only live runners), adopts it and records the exit: the job is never run again."""
    from fakeexec import FakeExit, FakeHandle

    a = env.submit(gpus=1)
    env.svc.loop.tick()
    with env.svc.sessions.begin() as s:
        alloc = s.scalar(select(m.Allocation).where(m.Allocation.job_id == a))
        assert alloc is not None
        alloc.handle = None
    env.ex.alive.clear()  # the runner is gone: not among the live ones ...
    env.ex.on_disk[(a, 1)] = FakeHandle(a, 1, (0,))  # ... but its run dir is there
    env.ex.adoptable = {(a, 1)}  # with a verdict on disk: adoptable, poll() reports it
    env.ex.exits.append(FakeExit(a, 1, "completed", 0))
    env.restart()
    assert env.svc.recovered["adopted"] == 1 and env.svc.recovered["lost"] == 0
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.check_history(a) == ["queued", "admitted", "running", "completed"]
    assert [s.attempt for s in env.ex.launched] == [1]  # launched once, never again
    assert env.active_allocations() == []


def test_a_failed_run_waits_out_its_retry_backoff(env: Env) -> None:
    loop = env.svc.loop
    loop.retry_backoff_base_s = 100.0  # first retry after 100 s, then 200 s, ...
    a = env.submit()
    loop.tick()
    env.ex.finish(a, "failed", 3)
    loop.tick()
    j = env.job(a)
    assert j["state"] == "requeued" and "retry in 100 s" in j["reason"]
    loop.tick()
    loop.tick()
    assert len(env.ex.launched) == 1  # still waiting: not relaunched at once
    loop.mirror.backoff[a] = 0.0  # the delay is over
    loop.tick()
    assert env.job(a)["state"] == "running" and env.ex.launched[-1].attempt == 2


def test_a_job_that_keeps_exiting_75_unasked_is_failed_at_the_limit(env: Env) -> None:
    """Issue 9: exit 75 requeued without limit (85 launches in 30 s). No stop was requested,
    so each exit 75 is a self-requeue; the third is over a limit of 2 and fails the job."""
    loop = env.svc.loop
    loop.max_exit75_requeues = 2
    a = env.submit()
    for _ in range(3):
        loop.tick()
        env.ex.finish(a, "preempted", 75)
        loop.tick()
    hist = env.check_history(a)
    assert hist.count("preempted") == 2 and hist[-1] == "failed", hist
    assert len(env.ex.launched) == 3
    j = env.job(a)
    assert j["ended_at"] is not None and "limit 2" in j["reason"]
    loop.tick()
    assert len(env.ex.launched) == 3 and env.active_allocations() == []


def test_a_restart_keeps_a_retry_delay(env: Env) -> None:
    env.svc.loop.retry_backoff_base_s = 100.0
    a = env.submit()
    env.svc.loop.tick()
    env.ex.finish(a, "failed", 3)
    env.svc.loop.tick()
    assert "retry in 100 s" in env.job(a)["reason"]
    env.restart()
    assert a in env.svc.loop.mirror.backoff  # still waiting, not back in the queue at once
    env.svc.loop.tick()
    assert len(env.ex.launched) == 1


def test_a_failing_tick_is_reported_counted_and_marks_the_loop_unhealthy(env: Env) -> None:
    """Issue 9: a tick that raised was retried forever, silently, while /healthz said ok."""
    loop = env.svc.loop
    loop._stop.set()  # no backoff sleep and no resynchronization in this test
    for _ in range(5):  # UNHEALTHY_AFTER
        loop._tick_failed(RuntimeError("store went away"))
    assert loop.tick_failures == 5 and not loop.healthy
    assert loop.metrics.registry.get_sample_value("cortex_scheduler_tick_failures_total") == 5
    with env.svc.sessions() as s:
        events = s.scalars(select(m.Event).where(m.Event.kind == "tick")).all()
    assert len(events) == 5 and "store went away" in events[0].message
    before = loop.last_tick_monotonic
    loop.tick()
    assert loop.tick_failures == 0 and loop.healthy and loop.last_tick_monotonic > before


def test_an_adopted_run_starts_when_its_attempt_did_not_its_first(env: Env) -> None:
    """review15: recovery began an adopted run at the job's first start (`started_at`), not its
    attempt's: after a restart, a run retried minutes ago had its queue's min_runtime_s
    protection (and the attempt start its progress lines are placed by) from attempt 1."""
    a = env.submit(gpus=1)
    env.svc.loop.tick()
    env.ex.finish(a, "failed", 3)
    env.svc.loop.tick()  # requeued (max_retries=1) and launched again: attempt 2
    assert env.job(a)["attempt"] == 2 and env.job(a)["state"] == "running"
    [alloc] = env.active_allocations()
    first = env.job(a)["started_at"]
    assert alloc.attempt == 2 and alloc.created_at > first
    before = env.svc.loop.mirror.jobs[a].run_start_s
    assert before == alloc.created_at
    env.ex.adoptable = {(a, 2)}
    env.restart()
    assert env.svc.recovered["adopted"] == 1
    assert env.svc.loop.mirror.jobs[a].run_start_s == before  # not `first`
