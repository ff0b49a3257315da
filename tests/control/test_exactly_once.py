"""Exactly-once runs with the real executor (issue 9, defect 4): a service killed after the
runner wrote its handle but before the loop stored it, whose job then finished while the service
was down. Recovery must find that run dir, read its verdict and complete the job, not run it
again."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from helpers import ADMIN
from sqlalchemy import select

from cortex.control import models as m
from cortex.control import store
from cortex.control.config import Settings
from cortex.control.schemas import SubmitRequest
from cortex.control.service import Service
from cortex.executors.local.executor import LocalExecutor

WAIT_S = 60.0  # generous: a loaded 2-core CI machine


def _service(url: str, home: Path) -> Service:
    settings = Settings(home=home, database_url=url, admin_token=ADMIN, min_runtime_s=0.0)
    return Service(
        settings,
        executor=LocalExecutor(home / "runs", grace_s=1.0, allow_same_user=True),
        inventory=LocalExecutor.discover(slots=2, gpus=False),
        node_name="node-test",
    )


def test_a_run_that_finished_while_the_service_was_down_is_not_run_again(
    db_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    svc = _service(db_url, home)
    marker = tmp_path / "ran"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]
    with svc.sessions.begin() as s:
        store.ensure_team(s, "fsd", time.time())
        [job] = store.insert_jobs(
            s,
            [SubmitRequest(team="fsd", name="once", gpus=1, duration_s=1, command=cmd)],
            time.time(),
        )
    loop = svc.loop
    loop.queues_dirty = True  # a new team's queue, as the token route does

    def launch_then_die(launches: list[tuple[int, int, Any]]) -> None:
        # launch() returned (handle.json written), then a kill -9: the handles never commit.
        for _jid, _attempt, spec in launches:
            loop.executor.launch(spec)

    loop._launch = launch_then_die  # type: ignore[method-assign]
    loop.tick()  # queued -> admitted -> running (attempt 1), launched
    loop.tick()
    run = home / "runs" / "jobs" / str(job.id) / "attempts" / "1"
    deadline = time.monotonic() + WAIT_S
    while not (run / "exit.json").exists():
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(0.05)
    with svc.sessions() as s:
        [alloc] = s.scalars(select(m.Allocation).where(m.Allocation.job_id == job.id)).all()
        assert alloc.handle is None  # the store never heard where it ran
    svc.engine.dispose()  # the dead service: no close(), no poll()
    svc.release_database()  # its PostgreSQL lock ends with its connections, as at a death

    svc2 = _service(db_url, home)
    try:
        assert svc2.recovered["adopted"] == 1 and svc2.recovered["lost"] == 0
        deadline = time.monotonic() + WAIT_S
        while True:
            svc2.loop.tick()
            with svc2.sessions() as s:
                row = s.get(m.Job, job.id)
                assert row is not None
                if row.state not in ("running", "admitted", "queued", "requeued"):
                    break
            assert time.monotonic() < deadline, row.state
            time.sleep(0.05)
        assert (row.state, row.attempt, row.exit_code) == ("completed", 1, 0)
        assert marker.read_text() == "x"  # it ran once
        assert not (run.parent / "2").exists()
        with svc2.sessions() as s:
            active = s.scalars(select(m.Allocation).where(m.Allocation.active.is_(True))).all()
        assert active == []
    finally:
        svc2.close()
