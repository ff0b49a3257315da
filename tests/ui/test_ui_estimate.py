"""The dashboard shows the control plane's runtime estimate, by the twin's rule
(drive/run_estimate.py): a running job's checkpoint writes count in when it is estimated to end,
and so in the start estimate of the job waiting for it (it showed the work alone before)."""

from __future__ import annotations

import re
from pathlib import Path

from fakeclock import FakeClock
from uikit import ADMIN, UiEnv

from cortex.control.ui.render import _utc


def test_the_why_panel_counts_a_running_jobs_checkpoint_writes(tmp_path: Path) -> None:
    """The whole fleet (64 GPUs) runs a 3,600 s job writing a 60 s checkpoint every 600 s:
    six chunks, five writes, so it ends at t0 + 3,900 (not t0 + 3,600), and the 8-GPU job
    behind it is estimated to start then."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        t0 = clock.time()
        big = env.submit(
            env.fsd, gpus=64, duration_s=3600, checkpoint_write_s=60, checkpoint_interval_s=600
        )
        env.svc.loop.tick()
        assert set(env.svc.loop.mirror.placement) == {big}
        wait = env.submit(env.fsd, gpus=8, duration_s=600, name="waits")
        env.svc.loop.tick()
        text = env.login(ADMIN).get(f"/ui/fragments/why/{wait}?start=true").text
        table = re.search(rf'id="blocking-{wait}">(.*?)</table>', text, re.S)
        assert table is not None
        row = re.search(rf'data-job="{big}">(.*?)</tr>', table.group(1), re.S)
        assert row is not None and f"<td>{_utc(t0 + 3900.0)}</td>" in row.group(1)
        estimate = re.search(r'id="estimate">(.*?)</p>', text, re.S)
        assert estimate is not None
        assert f"Start estimate (UTC):\n    {_utc(t0 + 3900.0)}," in estimate.group(1)
    finally:
        env.svc.close()
