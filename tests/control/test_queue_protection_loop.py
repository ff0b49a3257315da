"""Per-queue preemption protection in the running control plane (review findings): the budget
counts evictions this service made (not only those it read back at a restart), a job's own
exit 75 and pauses for power do not spend it, and a queue's own minimum runtime holds."""

from __future__ import annotations

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
