"""The control plane's cycle writes no view (tests/frozen_views.py): the loop's passes, its
preemption and its power admission and cap solve, with Snapshot, Start, Allocation, PowerView,
Grant and CapJob refusing a field's re-assignment; and the guard does catch a policy that
writes the loop's snapshot. The same paths' outcomes are tested in test_loop.py and
test_power_loop.py; here only that they run under the guard."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ADMIN_H, TeamService

from frozen_views import ViewWriteError, WritesSnapshot


class Env(TeamService):
    def __init__(self, home: Path, **kw: Any) -> None:
        super().__init__(f"sqlite:///{home / 'cortex.db'}", home, **kw)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.svc.close()


@pytest.mark.usefixtures("frozen_views")
def test_the_loop_starts_and_preempts_without_writing_a_view(env: Env) -> None:
    low = env.submit(gpus=4, priority_class="preemptible", name="low")
    env.svc.loop.tick()
    high = env.submit(gpus=2, priority_class="production", name="high")
    env.svc.loop.tick()
    assert env.ex.terminated == [(low, 1, "preempt")]
    env.ex.finish(low, "preempted", 75)
    env.svc.loop.tick()
    assert env.state(high) == "running"


@pytest.mark.usefixtures("frozen_views")
def test_the_power_loop_caps_and_pauses_without_writing_a_view(tmp_path: Path) -> None:
    # As in test_power_loop.py: 3 H100-modelled slots at 5.65 kW. A production job short of
    # watts makes the solver cap two preemptible ones to their floor (level 8) and starts capped;
    # at 5.2 kW (615 W over idle: one floor of 324 W fits, two do not) the solver pauses both
    # preemptible jobs.
    env = Env(
        tmp_path,
        slots=3,
        power_policy="cap",
        site_cap_kw=5.65,
        power_actuator=f"record:{tmp_path / 'caps.jsonl'}",
        power_model_flavor="H100-SXM5",
    )
    try:
        for i in range(2):
            env.submit(name=f"low{i}", priority_class="preemptible")
        env.svc.loop.tick()
        env.submit(name="high", priority_class="production")
        for _ in range(3):
            env.svc.loop.tick()
        power = env.client.get("/v1/power", headers=env.h).json()
        assert [j["cap_level"] for j in power["jobs"]] == [8, 8, 8]
        put = env.client.put("/v1/power", json={"site_cap_kw": 5.2}, headers=ADMIN_H)
        assert put.status_code == 200
        env.svc.loop.tick()
        assert [why for _, _, why in env.ex.terminated] == ["preempt", "preempt"]
    finally:
        env.svc.close()


@pytest.mark.usefixtures("frozen_views")
def test_a_policy_that_writes_the_loops_snapshot_fails_its_tick(env: Env) -> None:
    loop = env.svc.loop
    loop.pol = dataclasses.replace(loop.pol, ordering=WritesSnapshot(loop.pol.ordering))
    env.submit(gpus=1)
    with pytest.raises(ViewWriteError, match=r"Snapshot\.now_s"):
        loop.tick()
