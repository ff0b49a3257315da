"""Per-queue preemption protection in the running control plane (review findings): the budget
counts evictions this service made (not only those it read back at a restart), a job's own
exit 75 and pauses for power do not spend it, and a queue's own minimum runtime holds."""

from __future__ import annotations

import pytest
from helpers import ADMIN_H
from test_loop import Env, env  # noqa: F401  (the loop's fixture)


def _budget(env: Env, n: int) -> None:  # noqa: F811
    r = env.client.put("/v1/queues/fsd", json={"preemption_budget": n}, headers=ADMIN_H)
    assert r.status_code == 200, r.text


def _evicted_once(env: Env) -> int:  # noqa: F811
    """A preemptible 4-GPU job evicted once by a production job that then completes."""
    low = env.submit(gpus=4, priority_class="preemptible", name="low")
    env.svc.loop.tick()
    high = env.submit(gpus=2, priority_class="production", name="high")
    env.svc.loop.tick()
    assert env.ex.terminated == [(low, 1, "preempt")]
    env.ex.finish(low, "preempted", 75)
    env.svc.loop.tick()
    env.ex.finish(high)
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.job(low)["state"] == "running" and env.job(low)["preemptions"] == 1
    return low


def test_the_budget_counts_an_eviction_this_service_made(env: Env) -> None:  # noqa: F811
    _budget(env, 1)
    low = _evicted_once(env)
    # Its budget of 1 is spent: a second production job waits instead of evicting it again.
    env.submit(gpus=2, priority_class="production", name="high2")
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.ex.terminated == [(low, 1, "preempt")], env.ex.terminated


def test_the_budget_holds_across_a_restart(env: Env) -> None:  # noqa: F811
    _budget(env, 1)
    low = _evicted_once(env)
    env.restart()
    env.svc.loop.tick()
    env.submit(gpus=2, priority_class="production", name="high2")
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.ex.terminated == [(low, 1, "preempt")], env.ex.terminated


def test_a_self_requeue_does_not_spend_the_budget(env: Env) -> None:  # noqa: F811
    _budget(env, 1)
    low = env.submit(gpus=4, priority_class="preemptible", name="low")
    env.svc.loop.tick()
    env.ex.finish(low, "preempted", 75)  # an exit 75 no one asked for: it requeues itself
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.job(low)["state"] == "running"
    env.restart()
    env.svc.loop.tick()
    env.submit(gpus=2, priority_class="production", name="high")
    env.svc.loop.tick()
    env.svc.loop.tick()
    # Never evicted: its budget of 1 is untouched, so production may take its GPUs.
    assert [t[0] for t in env.ex.terminated] == [low], env.ex.terminated


def test_a_queues_own_minimum_runtime_protects_in_the_loop(env: Env) -> None:  # noqa: F811
    r = env.client.put("/v1/queues/fsd", json={"min_runtime_s": 7200}, headers=ADMIN_H)
    assert r.status_code == 200
    env.submit(gpus=4, priority_class="preemptible", name="low")
    env.svc.loop.tick()
    env.submit(gpus=2, priority_class="production", name="high")
    env.svc.loop.tick()
    env.svc.loop.tick()
    assert env.ex.terminated == []


def test_why_names_when_the_protected_victims_may_be_preempted(env: Env) -> None:  # noqa: F811
    # `cortex why` of a job waiting on victims inside their min_runtime_s said "it waits for
    # running jobs to end": the preemption due when their protection ends went unsaid.
    r = env.client.put("/v1/queues/fsd", json={"min_runtime_s": 7200}, headers=ADMIN_H)
    assert r.status_code == 200
    low = env.submit(gpus=4, priority_class="preemptible", name="low")
    env.svc.loop.tick()
    high = env.submit(gpus=2, priority_class="production", name="high")
    env.svc.loop.tick()
    got = env.client.get(f"/v1/jobs/{high}/why", headers=env.h).json()
    top = got["blockers"][0]
    ends = env.job(low)["started_at"] + 7200
    assert top["code"] == "InsufficientCapacity" and top["free_gpus"] == 0
    assert top["preempt_at_s"] == pytest.approx(ends, abs=1)
    # Their minimum runtime alone: a victim shielded by its preemption budget is never
    # counted (protection.retry_by_s), its protection does not end (review15).
    assert "protected now (their queue's min_runtime_s);" in top["hint"]
    assert f"t={ends:.0f}" in top["hint"] and "waits for running jobs to end" not in top["hint"]
    # A job no victim search ran for (same class: nothing it may preempt) keeps the old hint.
    same = env.submit(gpus=2, priority_class="preemptible", name="same")
    env.svc.loop.tick()
    b = env.client.get(f"/v1/jobs/{same}/why", headers=env.h).json()["blockers"][0]
    assert b["preempt_at_s"] is None and "waits for running jobs to end" in b["hint"]
    # A pass that skips its search (backing off) keeps saying it: the answer of the pass that
    # searched stands until the protection ends or the job starts.
    env.svc.loop.mirror.jobs[high].next_preempt_try_s = ends  # no search before then
    env.svc.loop.dirty = True
    env.svc.loop.tick()
    again = env.client.get(f"/v1/jobs/{high}/why", headers=env.h).json()
    assert again["as_of"] > got["as_of"]  # a later pass
    assert again["blockers"][0]["preempt_at_s"] == pytest.approx(ends, abs=1)
