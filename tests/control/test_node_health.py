"""Node health through the loop (a fake executor that owns a two-node fleet, a clock the test
moves): node losses are strikes under the twin's rule (drive/data/quarantine.csv: 2 within
14 d, 48 h of burn-in), a repeat offender is drained and back after its burn-in; failures are
attributed to nodes; admin drain and undrain; strikes and drains survive a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeclock import FakeClock
from fakeexec import FakeExecutor, FakeExit, Spec
from fastapi.testclient import TestClient
from helpers import ADMIN, job_body

from cortex.control.service import Service
from cortex.control.settings import Settings
from cortex.drive.node_health import QuarantineRules
from cortex.executors.nodes import NodeInfo, build_fleet

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
RULES = QuarantineRules.load()


class FleetExecutor(FakeExecutor):
    changes: list[tuple[str, bool]]

    def node_changes(self) -> list[tuple[str, bool]]:
        out, self.changes = self.changes, []
        return out


class Env:
    def __init__(
        self, url: str, home: Path, clock: FakeClock | None = None, max_retries: int = 5
    ) -> None:
        self.home, self.url = home, url
        self.clock = clock or FakeClock()
        self.ex = FleetExecutor(home / "runs")
        self.ex.changes = []
        fleet = build_fleet([NodeInfo(n, "H100-SXM5", 8, "p1", n) for n in ("node-a", "node-b")])
        settings = Settings(
            home=home, database_url=url, admin_token=ADMIN, min_runtime_s=0.0,
            max_retries=max_retries,
        )  # fmt: skip
        self.svc = Service(
            settings, executor=self.ex, inventory=fleet, node_name="ray", launch_spec=Spec,
            handle_from_dict=lambda d: d, clock=self.clock,
        )  # fmt: skip
        self.svc.loop.retry_backoff_base_s = 0.0
        self.client = TestClient(self.svc.app)
        r = self.client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H)
        self.h = {"Authorization": f"Bearer {r.json()['token']}"}

    def submit(self, gpus: int) -> int:
        r = self.client.post("/v1/jobs", json=job_body(gpus=gpus, nprocs=1), headers=self.h)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def ticks(self, n: int = 2) -> None:
        for _ in range(n):
            self.svc.loop.tick()

    def lose(self, node: str) -> None:
        """The executor loses `node` (no job on it) and reports it back."""
        self.ex.changes = [(node, False)]
        self.ticks()
        self.ex.changes = [(node, True)]
        self.ticks()

    def health(self, unhealthy: bool = True) -> dict[str, dict[str, Any]]:
        r = self.client.get("/v1/nodes/health", params={"unhealthy": unhealthy}, headers=self.h)
        assert r.status_code == 200, r.text
        return {n["name"]: n for n in r.json()}

    def up(self) -> list[bool]:
        return list(self.svc.loop.mirror.state.node_up)


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def test_a_node_lost_twice_is_drained_and_returns_after_its_burn_in(env: Env) -> None:
    env.ticks()
    assert env.health() == {}  # nothing unhealthy yet
    env.lose("node-b")
    got = env.health()["node-b"]
    # One strike of 2: score 1 - 1/2 = 0.5; back in service.
    assert (got["state"], got["score"], got["node_failures"]) == ("up", 0.5, 1)
    assert env.up() == [True, True]
    env.clock.advance(3600.0)
    env.lose("node-b")  # the second within 14 d: drained
    got = env.health()["node-b"]
    assert (got["state"], got["score"], got["node_failures"]) == ("drained", 0.0, 2)
    assert got["reason"].startswith("2 node failures within 14 d (last: node lost)")
    assert got["return_at"] == env.clock.time() + RULES.burn_in_s  # 48 h
    assert env.up() == [True, False]  # out, though the executor says it is alive
    # A 16-GPU job does not fit on node-a alone while node-b is out.
    jid = env.submit(16)
    env.ticks()
    assert env.client.get(f"/v1/jobs/{jid}", headers=env.h).json()["state"] == "queued"
    env.clock.advance(RULES.burn_in_s - 1.0)
    env.ticks()
    assert env.up() == [True, False]  # a second short of its burn-in
    env.clock.advance(1.0)
    env.ticks()
    assert env.up() == [True, True]
    got = env.health()["node-b"]  # its failures stay on record; its strikes were spent
    assert (got["state"], got["score"], got["node_failures"], got["strikes"]) == ("up", 1.0, 2, 0)
    assert env.client.get(f"/v1/jobs/{jid}", headers=env.h).json()["state"] == "running"


def test_strikes_outside_the_window_do_not_add_up(env: Env) -> None:
    env.ticks()
    env.lose("node-a")
    env.clock.advance(RULES.window_s + 1.0)  # the first strike has left the window
    env.lose("node-a")
    got = env.health(unhealthy=False)["node-a"]
    assert (got["state"], got["node_failures"]) == ("up", 1)


def test_failures_are_attributed_to_the_node_named_or_to_the_nodes_it_ran_on(env: Env) -> None:
    env.ticks()
    big = env.submit(16)  # on both nodes
    env.ticks(1)
    env.ex.finish(big, "failed", 1)  # a job failure naming no node: both nodes, no strike
    env.ticks(1)
    h = env.health()
    assert [(h[n]["job_failures"], h[n]["node_failures"]) for n in ("node-a", "node-b")] == [
        (1, 0), (1, 0),
    ]  # fmt: skip
    assert (h["node-a"]["score"], h["node-a"]["state"]) == (1.0, "up")
    # Relaunched on both; now it fails because node-b was lost: only node-b is blamed.
    env.ticks(1)
    env.ex.alive.clear()
    env.ex.exits.append(FakeExit(big, 2, "failed", None, "node node-b lost: RayActorError"))
    env.ticks(1)
    h = env.health()
    assert (h["node-a"]["job_failures"], h["node-b"]["job_failures"]) == (1, 2)
    attempts = env.client.get(f"/v1/jobs/{big}/goodput", headers=env.h).json()["attempts"]
    assert [a["node"] for a in attempts[:2]] == [None, "node-b"]  # the first: two nodes


def test_an_exit_that_names_its_node_is_a_strike_and_a_busy_node_drains_once_empty(
    env: Env,
) -> None:
    env.ticks()
    a, b = env.submit(8), env.submit(8)
    env.ticks(1)
    on = {s.job_id: s.nodes[0][0] for s in env.ex.launched}
    bad = on[a]
    for jid in (a, b):  # both failures pinned on a's node by the executor
        att = env.client.get(f"/v1/jobs/{jid}", headers=env.h).json()["attempt"]
        env.ex.alive = {k: v for k, v in env.ex.alive.items() if k[0] != jid}
        rec = FakeExit(jid, att, "failed", 1, "rank 0 died")
        rec.node = bad  # type: ignore[attr-defined]
        env.ex.exits.append(rec)
        env.clock.advance(10.0)
        env.ticks(1)
    # a was relaunched on its node after the first strike and still runs there: the node is
    # draining (its job left to finish), out of service once it is empty.
    got = env.health()[bad]
    assert (got["node_failures"], got["state"]) == (2, "draining")
    a_now = env.client.get(f"/v1/jobs/{a}", headers=env.h).json()
    assert (a_now["state"], a_now["attempt"]) == ("running", 2)
    env.ex.finish(a, "completed", 0)
    env.ticks(1)
    assert env.health()[bad]["state"] == "drained"
    assert env.up()[["node-a", "node-b"].index(bad)] is False


def test_a_failure_blamed_on_a_node_spends_no_retry_and_waits_no_backoff(
    db_url: str, tmp_path: Path
) -> None:
    """drive/runs.py judge_exit, issue 11: with no retry at all (max_retries 0) and a backoff of
    100 s, a run lost with its node (one the executor names, one lost) or with the executor's
    cluster (the Ray head lost: `cluster_lost`) is requeued and relaunched at once, its
    retries untouched; the job's own failure then ends it for good. Before, every failed run
    spent a retry: the first node failure failed the job (and, until mend17, a head loss)."""
    env = Env(db_url, tmp_path, max_retries=0)
    env.svc.loop.retry_backoff_base_s = 100.0
    try:
        env.ticks()
        jid = env.submit(8)
        env.ticks(1)
        for attempt, how in ((1, "named"), (2, "lost"), (3, "cluster")):
            node = env.ex.launched[-1].nodes[0][0]
            env.ex.alive.clear()
            detail = {"named": "", "lost": f"node {node} lost: gone"}.get(how, "Ray head lost")
            rec = FakeExit(jid, attempt, "failed", 1, detail)
            if how == "named":
                rec.node = node  # type: ignore[attr-defined]
            if how == "cluster":
                rec.cluster_lost = True  # type: ignore[attr-defined]
            env.ex.exits.append(rec)
            env.ticks(1)  # judged, requeued and launched again in the same tick: no backoff
            got = env.client.get(f"/v1/jobs/{jid}", headers=env.h).json()
            assert (got["state"], got["attempt"], got["failures"]) == ("running", attempt + 1, 0)
        env.ex.finish(jid, "failed", 1)  # the job's own failure: no retry left
        env.ticks(1)
        got = env.client.get(f"/v1/jobs/{jid}", headers=env.h).json()
        assert (got["state"], got["attempt"], got["failures"]) == ("failed", 4, 1)
    finally:
        env.svc.close()


def test_admin_drain_and_undrain(env: Env) -> None:
    env.ticks()
    team = env.client.post("/v1/nodes/node-a/drain", json={"reason": "bad DIMM"}, headers=env.h)
    assert team.status_code == 403
    r = env.client.post("/v1/nodes/node-a/drain", json={"reason": "bad DIMM"}, headers=ADMIN_H)
    assert r.status_code == 200 and r.json()["return_at"] is None  # until undrained
    env.ticks(1)
    got = env.health()["node-a"]
    assert (got["state"], got["reason"], got["score"]) == ("drained", "bad DIMM", 0.0)
    assert env.up() == [False, True]
    env.clock.advance(365 * 86400.0)
    env.ticks(1)
    assert env.up() == [False, True]  # no burn-in end: out until undrained
    assert env.client.post("/v1/nodes/node-a/undrain", headers=ADMIN_H).status_code == 200
    env.ticks(1)
    assert env.up() == [True, True]
    again = env.client.post("/v1/nodes/node-a/undrain", headers=ADMIN_H)
    assert again.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {}, {"reason": ""}, {"reason": "x" * 201}, {"reason": "a\x1b[31m"},
        {"reason": "r", "burn_in_s": -1}, {"reason": "r", "burn_in_s": 1e9},
        {"reason": "r", "burn_in_s": "nan"}, {"reason": "r", "extra": 1},
    ],
)  # fmt: skip
def test_bad_drain_bodies_are_refused(env: Env, body: dict) -> None:
    r = env.client.post("/v1/nodes/node-a/drain", json=body, headers=ADMIN_H)
    assert r.status_code == 422


def test_an_unknown_node_is_a_404(env: Env) -> None:
    r = env.client.post("/v1/nodes/node-z/drain", json={"reason": "r"}, headers=ADMIN_H)
    assert r.status_code == 404
    assert env.client.post("/v1/nodes/node-z/undrain", headers=ADMIN_H).status_code == 404


def test_strikes_and_drains_survive_a_restart(db_url: str, tmp_path: Path) -> None:
    clock = FakeClock()
    first = Env(db_url, tmp_path, clock)
    first.ticks()
    first.lose("node-b")  # strike 1
    first.client.post(
        "/v1/nodes/node-a/drain", json={"reason": "fan", "burn_in_s": 60}, headers=ADMIN_H
    )
    first.svc.close()
    again = Env(db_url, tmp_path, clock)
    again.ticks()
    assert again.up() == [False, True]  # node-a's drain kept
    again.lose("node-b")  # strike 2 (the first one reloaded): drained
    assert again.health()["node-b"]["state"] == "drained"
    clock.advance(61.0)
    again.ticks()
    assert again.up() == [True, False]  # node-a's 60 s burn-in over; node-b's 48 h is not
    again.svc.close()


# ---- the CLI against the same service ------------------------------------------------------------
def _cli(env: Env, monkeypatch: pytest.MonkeyPatch, h: dict, *args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from cortex.cli import client
    from cortex.cli.main import app

    def fake_client(timeout: float | None = 30.0) -> Any:
        c = TestClient(env.svc.app)
        c.headers.update(h)
        return c

    monkeypatch.setattr(client, "_client", fake_client)
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_cortex_nodes_unhealthy_drain_and_undrain(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.ticks()
    code, out, err = _cli(env, monkeypatch, ADMIN_H, "drain", "node-b", "--reason", "bad fan")
    assert code == 0 and out.strip() == "node node-b drained", err
    env.ticks(1)
    code, out, _ = _cli(env, monkeypatch, env.h, "nodes", "--unhealthy")
    assert code == 0 and "node-b" in out and "bad fan" in out and "drained" in out
    assert "node-a" not in out  # healthy: not listed
    code, out, _ = _cli(env, monkeypatch, env.h, "nodes", "--unhealthy", "--json")
    assert [n["name"] for n in json.loads(out)] == ["node-b"]
    code, _, err = _cli(env, monkeypatch, env.h, "undrain", "node-b")  # a team: refused
    assert code != 0 and "admin" in err
    code, out, _ = _cli(env, monkeypatch, ADMIN_H, "undrain", "node-b")
    assert code == 0 and out.strip() == "node node-b undrained"
    code, _, err = _cli(env, monkeypatch, ADMIN_H, "drain", "../jobs", "--reason", "x")
    assert code == 1 and "404" in err  # one path segment: never routed to another resource
    code, _, err = _cli(env, monkeypatch, ADMIN_H, "drain", "node-a", "--reason", "")
    assert code == 2 and err.startswith("error: --reason: ")


def test_a_draining_node_takes_no_new_work_while_its_jobs_finish(env: Env) -> None:
    """#14's gap: a node drained while it ran a job still took new work on its free GPUs until
    it emptied, so a drain could last forever on a busy fleet. Now it is cordoned: the job
    runs on, the free half stays unused, and an undrain gives it back at once."""
    env.ticks()
    a = env.submit(4)
    env.ticks(1)
    (node,) = {s.nodes[0][0] for s in env.ex.launched}
    other = "node-b" if node == "node-a" else "node-a"
    filler = env.submit(8)  # fills the other node
    env.ticks(1)
    r = env.client.post(f"/v1/nodes/{node}/drain", json={"reason": "fan"}, headers=ADMIN_H)
    assert r.status_code == 200, r.text
    env.ticks(1)
    assert env.health()[node]["state"] == "draining"
    b = env.submit(4)  # would fit on the draining node's 4 free GPUs
    env.ticks(2)
    assert env.client.get(f"/v1/jobs/{b}", headers=env.h).json()["state"] == "queued"
    launched = {s.job_id: s.nodes[0][0] for s in env.ex.launched}
    assert (launched[a], launched[filler]) == (node, other) and b not in launched
    # Undrained while still busy: it takes work again in the next pass.
    assert env.client.post(f"/v1/nodes/{node}/undrain", headers=ADMIN_H).status_code == 200
    env.ticks(2)
    launched = {s.job_id: s.nodes[0][0] for s in env.ex.launched}
    assert launched.get(b) == node
