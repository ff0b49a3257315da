"""Cross-team isolation on every route and client command that lists or reads, against a real
`cortex serve` (SQLite) over HTTP.

Two teams each run one job to completion: fsd's job is named `fsd-secret-name` and prints
`fsd-secret-output`; optimus's is `opt-visible` and prints `opt-output`. Every check asks as
optimus for fsd's data and expects nothing (a missing job's 404 for a single job), and asks as
fsd or optimus for its own data and expects it: the second half makes each check fail when the
team filter is removed rather than pass on an empty server. Each test below was run with its
filter in `control/api.py` / `control/store.py` removed and failed (see docs/testing.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from live import ADMIN, LiveServer, wait_for
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cortex.cli.main import app

SECRET = "fsd-secret"
MISSING = 999_999


@dataclass(frozen=True)
class World:
    server: LiveServer
    fsd: str  # tokens
    opt: str
    fsd_job: int
    opt_job: int


def _job(name: str, text: str) -> dict:
    return {
        "name": name,
        "gpus": 1,
        "duration_s": 30,
        "command": [sys.executable, "-c", f"print({text!r})"],
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("iso")
    srv = LiveServer(tmp / "home", f"sqlite:///{tmp / 'iso.db'}", slots=2)
    srv.home.mkdir()
    srv.start()
    try:
        fsd, opt = srv.team_token("fsd"), srv.team_token("optimus")
        ids = []
        for token, name, text in ((fsd, "fsd-secret-name", "fsd-secret-output"),
                                  (opt, "opt-visible", "opt-output")):  # fmt: skip
            r = srv.client(token).post("/v1/jobs", json=_job(name, text))
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        admin = srv.client(ADMIN)
        for jid in ids:
            wait_for(
                lambda jid=jid: admin.get(f"/v1/jobs/{jid}").json()["state"] == "completed",
                f"job {jid} to complete",
            )
        # An admin action that logs a team-scoped event (team=fsd, no job).
        r = admin.put("/v1/queues/fsd", json={"weight": 2.0})
        assert r.status_code == 200, r.text
        yield World(srv, fsd, opt, ids[0], ids[1])
    finally:
        srv.stop()
        srv.cleanup_runs()


def _get(w: World, token: str, path: str, **params: object) -> httpx.Response:
    return w.server.client(token).get(path, params=params)


def _same_as_missing(w: World, method: str, path: str, **params: object) -> None:
    """optimus asking for fsd's job gets exactly what it gets for a job that does not exist."""
    c = w.server.client(w.opt)
    other = c.request(method, path.format(w.fsd_job), params=params)
    missing = c.request(method, path.format(MISSING), params=params)
    assert other.status_code == missing.status_code == 404, other.text
    assert SECRET not in other.text
    detail = other.json()["detail"].replace(str(w.fsd_job), "N")
    assert detail == missing.json()["detail"].replace(str(MISSING), "N")


# ---- HTTP --------------------------------------------------------------------------------------
def test_list_jobs_shows_only_the_callers_team(world: World) -> None:
    w = world
    for token, own in ((w.opt, w.opt_job), (w.fsd, w.fsd_job)):
        jobs = _get(w, token, "/v1/jobs").json()["jobs"]
        assert [j["id"] for j in jobs] == [own]
    # Asking for the other team by name, or filtering by state, reveals nothing more.
    # (Another team's name is a 404 worded as an unknown team's, as on /v1/queue.)
    for team in ("fsd", "nosuchteam"):
        r = _get(w, w.opt, "/v1/jobs", team=team)
        assert (r.status_code, r.json()) == (404, {"detail": f"team {team} not found"})
    done = _get(w, w.opt, "/v1/jobs", state="completed").json()["jobs"]
    assert [j["id"] for j in done] == [w.opt_job]
    # The admin sees both (the filter is per team, not a broken listing).
    assert {j["id"] for j in _get(w, ADMIN, "/v1/jobs").json()["jobs"]} == {w.fsd_job, w.opt_job}


def test_one_job_and_its_history_are_hidden_from_other_teams(world: World) -> None:
    w = world
    _same_as_missing(w, "GET", "/v1/jobs/{}")
    own = _get(w, w.fsd, f"/v1/jobs/{w.fsd_job}").json()
    assert own["name"] == "fsd-secret-name" and own["history"][-1]["dst"] == "completed"


@pytest.mark.parametrize("follow", [False, True], ids=["tail", "follow"])
def test_logs_are_hidden_from_other_teams(world: World, follow: bool) -> None:
    w = world
    _same_as_missing(w, "GET", "/v1/jobs/{}/logs", follow=follow)
    _same_as_missing(w, "GET", "/v1/jobs/{}/logs", follow=follow, stream="stderr")
    own = _get(w, w.fsd, f"/v1/jobs/{w.fsd_job}/logs", follow=follow)
    assert own.status_code == 200 and own.text == "fsd-secret-output\n"


def test_cancel_of_another_teams_job_is_a_missing_job(world: World) -> None:
    w = world
    _same_as_missing(w, "POST", "/v1/jobs/{}/cancel")
    assert _get(w, w.fsd, f"/v1/jobs/{w.fsd_job}").json()["cancel_requested"] is False


def test_events_show_only_the_callers_team(world: World) -> None:
    w = world
    seen = _get(w, w.opt, "/v1/events", limit=1000).json()
    assert seen, "optimus has its own events (start, exit)"
    assert {e["team"] for e in seen} == {"optimus"}
    assert w.opt_job in {e["job_id"] for e in seen}
    # Another team's job is a 404 worded as a missing job's.
    for jid in (w.fsd_job, 99999):
        r = _get(w, w.opt, "/v1/events", job_id=jid)
        assert (r.status_code, r.json()) == (404, {"detail": f"job {jid} not found"})
    # fsd sees its job's events and the quota change on its queue.
    own = _get(w, w.fsd, "/v1/events", limit=1000).json()
    assert {e["team"] for e in own} == {"fsd"}
    assert w.fsd_job in {e["job_id"] for e in own}
    assert any(e["kind"] == "queue" for e in own)
    assert {e["job_id"] for e in _get(w, w.fsd, "/v1/events", job_id=w.fsd_job).json()} == {
        w.fsd_job
    }


def test_queues_show_only_the_callers_queue(world: World) -> None:
    w = world
    assert [q["name"] for q in _get(w, w.opt, "/v1/queues").json()] == ["optimus"]
    assert [q["name"] for q in _get(w, w.fsd, "/v1/queues").json()] == ["fsd"]
    assert {q["name"] for q in _get(w, ADMIN, "/v1/queues").json()} >= {"fsd", "optimus"}


def test_metrics_carry_counts_by_team_and_no_job_details(world: World) -> None:
    # /metrics is a Prometheus scrape target without a token: it may carry aggregate counts
    # per team, never a job's name, id, command or output.
    text = httpx.get(f"{world.server.base}/metrics", timeout=10).text
    labels: set[str] = set()
    teams: set[str] = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels |= set(s.labels)
            if fam.name == "cortex_jobs" and s.value:
                teams.add(s.labels["team"])
    # A queue is a team's (named for it); gpu, UUID and Hostname name devices (DCGM-style
    # metrics, where GPUs exist), not jobs: the `job` label is off by default.
    allowed = {"state", "team", "queue", "flavor", "node", "le", "gpu", "UUID", "Hostname"}
    assert labels <= allowed, labels
    assert teams == {"fsd", "optimus"}
    for leak in ("fsd-secret-name", "fsd-secret-output", "opt-visible", sys.executable):
        assert leak not in text


# ---- the client commands -----------------------------------------------------------------------
def _cli(w: World, token: str, *args: str) -> tuple[int, str, str]:
    env = {"CORTEX_URL": w.server.base, "CORTEX_TOKEN": token, "COLUMNS": "250"}
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


def test_cli_jobs_lists_only_the_callers_team(world: World) -> None:
    w = world
    code, out, _ = _cli(w, w.opt, "jobs", "--json")
    assert code == 0 and [j["id"] for j in json.loads(out)] == [w.opt_job]
    code, out, err = _cli(w, w.opt, "jobs", "--team", "fsd", "--json")
    assert (code, out, err) == (1, "", "error: 404: team fsd not found\n")  # as `cortex queue`
    code, out, _ = _cli(w, w.opt, "jobs")  # the table
    assert code == 0 and "opt-visible" in out and SECRET not in out
    code, out, _ = _cli(w, w.fsd, "jobs")
    assert code == 0 and "fsd-secret-name" in out


@pytest.mark.parametrize(
    "args",
    [
        ("job", "{}"),
        ("job", "{}", "--json"),
        ("logs", "{}"),
        ("logs", "{}", "-f"),
        ("logs", "{}", "--stderr"),
        ("cancel", "{}"),
    ],
    ids=lambda a: " ".join(a).replace("{}", "N"),
)
def test_cli_single_job_commands_treat_another_teams_job_as_missing(
    world: World, args: tuple[str, ...]
) -> None:
    w = world
    code, out, err = _cli(w, w.opt, *(a.format(w.fsd_job) for a in args))
    code_m, out_m, err_m = _cli(w, w.opt, *(a.format(MISSING) for a in args))
    assert code == code_m == 1
    assert out == out_m == ""
    assert err.replace(str(w.fsd_job), "N") == err_m.replace(str(MISSING), "N")
    assert "404" in err and SECRET not in err


def test_cli_single_job_commands_work_for_the_owner(world: World) -> None:
    w = world
    code, out, _ = _cli(w, w.fsd, "job", str(w.fsd_job), "--json")
    assert code == 0 and json.loads(out)["name"] == "fsd-secret-name"
    for follow in ((), ("-f",)):
        code, out, _ = _cli(w, w.fsd, "logs", str(w.fsd_job), *follow)
        assert (code, out) == (0, "fsd-secret-output\n")


def test_cli_events_and_queues_show_only_the_callers_team(world: World) -> None:
    w = world
    code, out, _ = _cli(w, w.opt, "events", "--limit", "1000", "--json")
    events = json.loads(out)
    assert code == 0 and events and {e["team"] for e in events} == {"optimus"}
    code, out, err = _cli(w, w.opt, "events", "--job", str(w.fsd_job), "--json")
    assert (code, out, err) == (1, "", f"error: 404: job {w.fsd_job} not found\n")
    code, out, _ = _cli(w, w.opt, "events")  # the table
    assert code == 0 and "optimus" in out and "fsd" not in out
    code, out, _ = _cli(w, w.opt, "queues", "--json")
    assert code == 0 and [q["name"] for q in json.loads(out)] == ["optimus"]
    code, out, _ = _cli(w, w.opt, "queues")
    assert code == 0 and "optimus" in out and "fsd" not in out
