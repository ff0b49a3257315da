"""The CLI's output conventions (-o table|wide|json|yaml, --json, --json-file, --parsable,
short state codes), several ids per cancel, --version and completion, against an in-process
service with the fake executor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from clienv import CliEnv
from typer.testing import CliRunner

from cortex.cli.main import app
from cortex.cli.output import state_code


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliEnv]:
    e = CliEnv(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path, monkeypatch, slots=1)
    yield e
    e.close()


def _submit(env: CliEnv, *args: str) -> int:
    code, out, err = env.run("submit", "--parsable", "--duration-s", "60", *args)
    assert code == 0, err
    return int(out.strip())


def test_every_format_shows_the_same_jobs(env: CliEnv, tmp_path: Path) -> None:
    a = _submit(env, "--name", "first", "--", "python3", "-c", "pass")
    b = _submit(env, "--name", "second", "--", "python3", "-c", "pass")
    env.svc.loop.tick()  # one slot: a runs, b waits
    assert (env.state(a), env.state(b)) == ("running", "queued")
    code, out, _ = env.run("jobs", "-o", "json")
    assert code == 0
    as_json = json.loads(out)
    assert [(j["id"], j["state"]) for j in as_json] == [(b, "queued"), (a, "running")]
    assert json.loads(env.run("jobs", "--json")[1]) == as_json
    assert yaml.safe_load(env.run("jobs", "-o", "yaml")[1]) == as_json
    code, out, _ = env.run("jobs", "--parsable")
    lines = out.splitlines()
    header = lines[0].split("|")
    assert header[:5] == ["id", "team", "name", "st", "state"] and "command" in header
    rows = [dict(zip(header, line.split("|"), strict=True)) for line in lines[1:]]
    assert [(r["id"], r["st"], r["state"]) for r in rows] == [
        (str(b), "PD", "queued"),
        (str(a), "R", "running"),
    ]
    assert rows[1]["command"] == "python3 -c pass"
    table = env.run("jobs")[1]
    wide = env.run("jobs", "-o", "wide")[1]
    assert " PD " in table and " R " in table and "second" in table
    assert "command" not in table and "python3 -c pass" in wide
    dest = tmp_path / "out.json"
    code, out, _ = env.run("jobs", "--json-file", str(dest))
    assert code == 0 and "second" in out and not out.lstrip().startswith("[")
    assert json.loads(dest.read_text()) == as_json


@pytest.mark.parametrize(
    "args",
    [
        ["jobs"],
        ["job", "1"],
        ["queues"],
        ["nodes"],
        ["events"],
        ["why", "1"],
        ["queue"],
        ["share"],
    ],
)
def test_every_listing_takes_the_same_flags(env: CliEnv, args: list[str]) -> None:
    _submit(env, "--", "python3", "-c", "pass")
    for flags in (["-o", "json"], ["--json"], ["-o", "yaml"], ["--parsable"], ["-o", "wide"]):
        code, out, err = env.run(*args, *flags)
        assert code == 0, (args, flags, err)
        if flags[-1] in ("json", "--json"):
            json.loads(out)
        elif flags[-1] == "yaml":
            yaml.safe_load(out)
    code, _, err = env.run(*args, "-o", "csv")
    assert code == 2
    assert err == (
        f"error: cortex {args[0]}: --output: unknown format 'csv'; one of table, wide, json, yaml\n"
    )
    code, _, err = env.run(*args, "--json", "-o", "yaml")
    assert code == 2 and "--output: choose one of json, yaml" in err


def test_cancel_takes_several_ids_and_reports_each_failure(env: CliEnv) -> None:
    a = _submit(env, "--", "python3", "-c", "pass")
    b = _submit(env, "--", "python3", "-c", "pass")
    env.svc.loop.tick()
    code, out, err = env.run("cancel", str(a), "999", str(b))
    assert code == 1  # one id failed; the others were still cancelled
    assert err == "error: job 999: 404: job 999 not found\n"
    assert f"cancel requested for job {a}" in out and f"cancel requested for job {b}" in out
    env.svc.loop.tick()
    assert env.state(b) == "cancelled"
    code, _, err = env.run("cancel", "0")
    assert code == 2 and err.startswith("error: cortex cancel: JOB_IDS: 0:")


def test_a_job_asked_to_stop_shows_completing() -> None:
    assert state_code({"state": "running", "cancel_requested": True}) == "CG"
    assert state_code({"state": "running", "cancel_requested": False}) == "R"
    assert [state_code({"state": s}) for s in ("queued", "requeued", "completed", "failed")] == [
        "PD", "PD", "CD", "F",
    ]  # fmt: skip
    assert state_code({"state": "no-such"}) == "?"


def test_version_and_shell_completion() -> None:
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith("cortex 0.")
    r = CliRunner().invoke(
        app,
        [],
        prog_name="cortex",
        env={"_CORTEX_COMPLETE": "complete_bash", "COMP_WORDS": "cortex jo", "COMP_CWORD": "1"},
    )
    assert r.exit_code == 0
    assert set(r.stdout.split()) == {"job", "jobs"}


def test_bad_filters_and_files_are_one_line_exit_2(env: CliEnv, tmp_path: Path) -> None:
    code, out, err = env.run("jobs", "--state", "sleeping")
    assert (code, out) == (2, "")
    assert err.startswith("error: cortex jobs: --state: unknown state 'sleeping'; one of queued,")
    nowhere = tmp_path / "no" / "such" / "dir" / "out.json"
    code, _, err = env.run("jobs", "--json-file", str(nowhere))
    assert (code, err) == (2, f"error: {nowhere}: <file>: No such file or directory\n")
