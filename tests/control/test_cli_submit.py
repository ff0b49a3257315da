"""`cortex submit`: a one-off command after `--`, `--wait` (the exit status follows the jobs),
`--dry-run` (where and when, nothing stored), `--watch`, and hostile input, against an
in-process service with the fake executor (the loop ticked by the test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clienv import CliEnv

from cortex.cli import client as client_mod
from cortex.cli import submit as submit_mod


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliEnv]:
    e = CliEnv(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path, monkeypatch, slots=2)
    yield e
    e.close()


def _jobs(env: CliEnv) -> list[dict]:
    return list(env.admin.get("/v1/jobs").json()["jobs"])


def test_one_off_command_becomes_a_job(env: CliEnv) -> None:
    code, out, err = env.run(
        "submit", "--gpus", "2", "--duration-s", "30", "--env", "A=1=2", "--name", "hello",
        "--", "python3", "-c", "print('x')", "--flag",
    )  # fmt: skip
    assert code == 0, err
    assert out == "submitted job 1 (hello)\n"
    [job] = _jobs(env)
    assert job["command"] == ["python3", "-c", "print('x')", "--flag"]  # options after -- kept
    assert job["gpus"] == 2
    code, out, _ = env.run("submit", "--duration-s", "30", "-o", "json", "--", "/bin/true")
    assert code == 0 and json.loads(out)[0]["name"] == "true"  # named for its program


def test_job_file_named_after_dashdash_is_a_command(env: CliEnv, tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("{name: f, gpus: 1, duration_s: 5, command: [python3, -c, pass]}\n")
    assert env.run("submit", str(job), "--parsable")[1] == "1\n"
    code, _, err = env.run("submit", "--duration-s", "5", "--", str(job))
    assert code == 0, err
    assert _jobs(env)[0]["command"] == [str(job)]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ([], "error: cortex submit: FILE: expected one job file, or a command after `--`\n"),
        (["a.yaml", "b.yaml"], "error: cortex submit: FILE: expected one job file, or a "
         "command after `--`\n"),
        (["a.yaml", "--", "ls"], "error: cortex submit: FILE: give a job file or a command "
         "after `--`, not both\n"),
        (["--env", "NOEQUALS", "--duration-s", "5", "--", "ls"],
         "error: cortex submit: --env: 'NOEQUALS': expected NAME=VALUE\n"),
        (["--time-limit-s", "nan", "--", "ls"], "error: cortex submit: --time-limit-s: "
         "must be a finite number of seconds, at most 1e9\n"),
        (["--gpus", "99", "--duration-s", "5", "--", "ls"],
         "error: cortex submit: gpus: NeverFits: needs 99 GPUs; the most any acceptable "
         "flavor could give is 2\n"),
        (["-o", "toml", "--", "ls"],
         "error: cortex submit: --output: unknown format 'toml'; one of table, wide, json, "
         "yaml\n"),
    ],
)  # fmt: skip
def test_bad_submissions_are_one_line_exit_2(env: CliEnv, args: list[str], line: str) -> None:
    code, out, err = env.run("submit", *args)
    assert (code, out, err) == (2, "", line)
    assert _jobs(env) == []


def _finisher(env: CliEnv, outcome: str, code: int | None) -> object:
    """A stand-in for --wait's sleep: the running jobs exit as told, and the loop ticks."""

    def sleep(_s: float) -> None:
        env.svc.loop.tick()
        for jid, _att in list(env.ex.alive):
            env.ex.finish(jid, outcome, code)
        env.svc.loop.tick()

    return sleep


@pytest.mark.parametrize(
    ("outcome", "code", "status"),
    [("completed", 0, 0), ("failed", 3, 3), ("failed", None, 1), ("failed", 300, 1)],
)
def test_wait_exits_as_the_job_did(
    env: CliEnv, monkeypatch: pytest.MonkeyPatch, outcome: str, code: int | None, status: int
) -> None:
    monkeypatch.setattr(submit_mod.time, "sleep", _finisher(env, outcome, code))
    got, out, err = env.run("submit", "--wait", "--duration-s", "5", "--", "python3", "-V")
    assert got == status, (out, err)
    final = "completed" if outcome == "completed" else "failed"
    assert out.splitlines()[-1].startswith(f"job 1 {final}")
    assert _jobs(env)[0]["state"] == final


def test_wait_gives_the_highest_exit_of_several() -> None:
    jobs = [
        {"state": "completed", "exit_code": 0},
        {"state": "failed", "exit_code": 7},
        {"state": "failed", "exit_code": 2},
        {"state": "cancelled", "exit_code": None},
    ]
    assert submit_mod.exit_code_of(jobs) == 7  # max(0, 7, 2, 1)
    assert submit_mod.exit_code_of(jobs[:1]) == 0
    assert submit_mod.exit_code_of([jobs[0], jobs[3]]) == 1


def test_wait_times_out_with_one_line(env: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(submit_mod.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(submit_mod.time, "sleep", lambda _s: None)
    code, _, err = env.run(
        "submit", "--wait", "--wait-timeout-s", "25", "--duration-s", "5", "--", "sleep", "9"
    )
    assert code == 1
    assert err == "error: --wait: timed out after 25 s; still running: 1\n"


def test_dry_run_says_where_and_when_and_stores_nothing(env: CliEnv) -> None:
    # Idle, 2 slots: a 1-slot job starts now, on the one node.
    code, out, _ = env.run(
        "submit", "--dry-run", "-o", "json", "--duration-s", "5", "--", "python3", "-V"
    )
    got = json.loads(out)
    assert code == 0 and got["never"] is False
    assert got["start_s"] == pytest.approx(got["as_of"])
    assert (got["flavor"], got["gpus"], got["nodes"]) == ("CPU-SLOT", 1, [
        {"node": "node-test", "gpus": 1},
    ])  # fmt: skip
    # A 2-slot job of 600 s takes both slots: the next one starts when it ends, 600 s after
    # it started (runtime estimates are the submitters': no error in the point estimate).
    code, _, _ = env.run("submit", "--gpus", "2", "--duration-s", "600", "--", "sleep", "600")
    env.svc.loop.tick()
    [running] = _jobs(env)
    assert running["state"] == "running"
    got = json.loads(
        env.run("submit", "--dry-run", "--json", "--duration-s", "5", "--", "python3", "-V")[1]
    )
    assert got["start_s"] == pytest.approx(running["started_at"] + 600, abs=0.01)
    assert got["low_s"] <= got["start_s"] <= got["high_s"]  # the band spans every run
    code, out, _ = env.run("submit", "--dry-run", "--duration-s", "5", "--", "python3", "-V")
    assert code == 0 and out.startswith("it would start at ") and "node-test (1)" in out
    assert len(_jobs(env)) == 1  # nothing stored by the dry runs


def test_dry_run_of_a_list_is_refused(env: CliEnv, tmp_path: Path) -> None:
    f = tmp_path / "two.yaml"
    f.write_text(
        "- {name: a, gpus: 1, duration_s: 5, command: [ls]}\n"
        "- {name: b, gpus: 1, duration_s: 5, command: [ls]}\n"
    )
    code, _, err = env.run("submit", "--dry-run", str(f))
    assert (code, err) == (2, "error: cortex submit: --dry-run: takes one job; this file has a "
                              "list\n")  # fmt: skip


def test_watch_redraws_until_the_job_is_final(env: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env.run("submit", "--duration-s", "5", "--", "python3", "-V")
    env.svc.loop.tick()
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        if len(sleeps) == 2:  # after two draws the job ends
            env.ex.finish(1)
            env.svc.loop.tick()

    monkeypatch.setattr(client_mod.time, "sleep", sleep)
    code, out, _ = env.run("job", "1", "--watch", "--interval", "0.5", "--parsable")
    assert code == 0
    states = [ln.split("|")[4] for ln in out.splitlines() if ln[:1].isdigit()]
    assert states == ["running", "running", "completed"]  # stops at the final state
    assert sleeps == [0.5, 0.5]


def test_watch_of_a_list_stops_on_ctrl_c(env: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def sleep(_s: float) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(client_mod.time, "sleep", sleep)
    code, out, _ = env.run("jobs", "--watch", "--parsable")
    assert code == 0
    assert out.count("id|team|name") == 3  # three draws, then Ctrl-C


def test_dry_run_api_refuses_as_submit_does(env: CliEnv) -> None:
    body = {"name": "a", "gpus": 1, "duration_s": 5, "command": ["ls"]}
    r = env.client.post("/v1/jobs/dry-run", json={"jobs": [body, body]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "jobs"]
    r = env.client.post("/v1/jobs/dry-run", json={**body, "team": "other"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "team"]
    r = env.client.post("/v1/jobs/dry-run", json={**body, "gpus": 0})
    assert r.status_code == 422
    r = env.client.post("/v1/jobs/dry-run", json=body, headers={"Authorization": "Bearer x"})
    assert r.status_code == 401
    assert _jobs(env) == []


def test_one_dry_run_at_a_time(env: CliEnv) -> None:
    from cortex.control.api import dryrun

    body = {"name": "a", "gpus": 1, "duration_s": 5, "command": ["ls"]}
    assert dryrun._ONE.acquire(blocking=False)  # another dry run holds it
    try:
        r = env.client.post("/v1/jobs/dry-run", json=body)
        assert (r.status_code, r.headers.get("retry-after")) == (429, "1")
    finally:
        dryrun._ONE.release()
    assert env.client.post("/v1/jobs/dry-run", json=body).status_code == 200
