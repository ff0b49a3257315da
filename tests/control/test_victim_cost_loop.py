"""The control plane's victim cost reads each candidate's newest checkpoint from its metrics
file before the pass (review finding: it used to depend on whether someone had opened the
job's page, which made the decision depend on who was looking)."""

from __future__ import annotations

import pytest
from test_progress_api import Env, env  # noqa: F401  (the fixture)


@pytest.mark.parametrize("looked", [False, True])
def test_the_victim_does_not_depend_on_someone_reading_the_job(
    env: Env,  # noqa: F811
    looked: bool,
) -> None:
    loop = env.svc.loop
    # Two preemptible 2-GPU jobs that cannot checkpoint on SIGTERM, started in one tick.
    a = env.submit(gpus=2, priority_class="preemptible", name="a", checkpoint_on_signal=False)
    b = env.submit(gpus=2, priority_class="preemptible", name="b", checkpoint_on_signal=False)
    loop.tick()
    t0 = env.clock.time()
    env.clock.advance(250)
    # b checkpointed 10 s ago (its metrics file, as cortex.training writes it); a never did.
    # Lost work: a 2 x 250 = 500 GPU-s, b 2 x 10 = 20 GPU-s: b is the cheaper victim.
    env.ex.metrics_file(b).write_text(
        f'{{"ts": {t0 + 240}, "attempt": 1, "event": "checkpoint", "step": 40}}\n'
    )
    if looked:
        env.job(b)  # someone opens b's page: the service reads its metrics file
    env.submit(gpus=2, priority_class="production", name="high")
    loop.tick()
    assert env.ex.terminated == [(b, 1, "preempt")], (a, b, env.ex.terminated)


def _forward_run(env: Env, lost: object) -> dict[int, float]:  # noqa: F811
    """The start estimator's forward run over the last pass's record: every start in it,
    restarts of preemption victims included."""
    from cortex.control import estimate

    loop = env.svc.loop
    rec = loop.why.current
    return estimate._simulate(
        loop.topo, rec.queue_config, loop.pol, rec.at, rec.running,
        [job for q in rec.queues for _, job in q], loop.estimate_s, loop.speed,
        lambda _jid: 1.0, None, lost=lost,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize("checkpointed", ["a", "b"])
def test_the_start_estimate_costs_victims_as_the_loop_does(
    env: Env,  # noqa: F811
    checkpointed: str,
) -> None:
    """A preemption the forward run makes (not the live pass) takes the victim that loses the
    least work, as the loop would: the estimator used to cost victims by GPUs alone."""
    from cortex.control import estimate

    loop = env.svc.loop
    long = {"priority_class": "preemptible", "duration_s": 10_000, "checkpoint_on_signal": False}
    a = env.submit(gpus=1, name="a", **long)
    b = env.submit(gpus=1, name="b", **long)
    env.submit(gpus=2, duration_s=400, name="c")  # normal: the waiting job cannot evict it
    loop.tick()
    t0 = env.clock.time()
    env.clock.advance(250)
    ids = {"a": a, "b": b}
    saver = ids[checkpointed]
    env.ex.metrics_file(saver).write_text(
        f'{{"ts": {t0 + 240}, "attempt": 1, "event": "checkpoint", "step": 40}}\n'
    )
    env.job(saver)  # its checkpoint is known to the progress book now
    # Needs 3 of the 4 GPUs: a and b alone are not enough now, so the live pass preempts
    # nobody; when c ends (t0 + 400) the forward run evicts one of them. Lost work then:
    # the checkpointed one 400 - 240 = 160 s, the other 400 s.
    h = env.submit(gpus=3, duration_s=100, name="h")
    loop.tick()
    assert env.ex.terminated == []
    starts = _forward_run(env, estimate.lost_work(loop))
    assert starts[h] == pytest.approx(t0 + 400)
    victim = saver
    other = b if saver == a else a
    # The victim starts again when h ends, at t0 + 500; the other one never stopped.
    assert starts.get(victim) == pytest.approx(t0 + 500) and other not in starts, starts
