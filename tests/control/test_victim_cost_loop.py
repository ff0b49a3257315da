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
