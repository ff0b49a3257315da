"""The CLI at the edge (issue 9, defect 8): no traceback on any job file, all-or-nothing job
files, retries that do not duplicate, escape sequences neutralised, token list/revoke, logs
that say when they were cut, and settings errors as one line with exit 2. The commands talk to
an in-process app (same code as `cortex serve`, no port)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body
from sqlalchemy import func, select
from typer.testing import CliRunner

from cortex.cli import client as client_mod
from cortex.cli.main import app
from cortex.control import models as m
from cortex.control.service import Service


class Direct(TestClient):
    """A TestClient usable as the CLI's per-command client: entering it must not run the
    app's lifespan (that would stop the service's loop and writer on exit)."""

    fail_after_send = 0  # the next N requests reach the app, then the answer is "lost"

    def __enter__(self) -> Direct:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def request(self, *a: Any, **kw: Any) -> Any:  # type: ignore[override]
        resp = super().request(*a, **kw)
        if Direct.fail_after_send > 0:
            Direct.fail_after_send -= 1
            raise httpx.ReadError("connection reset by peer")
        return resp


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = fake_service(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    yield service
    service.close()


@pytest.fixture
def cli(svc: Service, monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(timeout: float | None = 30.0) -> Direct:
        token = os.environ.get("CORTEX_TOKEN", "")
        return Direct(svc.app, headers={"Authorization": f"Bearer {token}"})

    monkeypatch.setattr(client_mod, "_client", make)
    Direct.fail_after_send = 0

    def run(token: str, *args: str) -> tuple[int, str, str]:
        r = CliRunner().invoke(app, list(args), env={"CORTEX_TOKEN": token})
        assert "Traceback" not in r.stdout + r.stderr
        return r.exit_code, r.stdout, r.stderr

    return run


def team_token(cli: Any, svc: Service) -> str:
    code, out, err = cli(ADMIN, "token", "create", "--team", "fsd")
    assert code == 0, err
    svc.loop.tick()
    return str(out.strip())


def jobs_stored(svc: Service) -> int:
    with svc.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(m.Job)) or 0)


GOOD = "name: n\ngpus: 1\nduration_s: 5\ncommand: [echo]\n"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (GOOD.replace("5", ".nan").encode(), "duration_s"),
        (GOOD.replace("5", ".inf").encode(), "duration_s"),
        (b"\xff\xfename: x\n", "UTF-8"),
        (GOOD.encode() + b"env: {A: !!binary aGVsbG8=}\n", "not JSON serializable"),
        (b"a: &a [1, 2]\nb: *a\n", "aliases"),
        (b"name: [unclosed\n", "malformed YAML"),
        (b"- 1\n- 2\n", "expected a job object"),
        (b"jobs: []\n", "no jobs"),
    ],
)
def test_bad_job_files_are_one_line_and_exit_2(
    cli: Any, svc: Service, tmp_path: Path, content: bytes, words: str
) -> None:
    token = team_token(cli, svc)
    f = tmp_path / "job.yaml"
    f.write_bytes(content)
    code, _, err = cli(token, "submit", str(f))
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err
    assert jobs_stored(svc) == 0


def test_a_yaml_date_is_a_string_not_a_traceback(cli: Any, svc: Service, tmp_path: Path) -> None:
    token = team_token(cli, svc)
    f = tmp_path / "job.yaml"
    f.write_text(GOOD.replace("name: n", "name: 2024-01-01"))
    code, out, err = cli(token, "submit", str(f))
    assert code == 0 and "(2024-01-01)" in out, err


def test_a_job_file_is_submitted_all_or_nothing(cli: Any, svc: Service, tmp_path: Path) -> None:
    token = team_token(cli, svc)
    f = tmp_path / "jobs.yaml"
    f.write_text(f"jobs:\n  - {job_body(name='a')}\n  - {job_body(name='b', gpus=-1)}\n")
    code, _, err = cli(token, "submit", str(f))
    assert code == 2 and "jobs.1.gpus" in err and str(f) in err, err
    assert jobs_stored(svc) == 0  # the first job was stored before the second failed, once


def test_a_retry_after_a_lost_answer_does_not_duplicate(
    cli: Any, svc: Service, tmp_path: Path
) -> None:
    token = team_token(cli, svc)
    f = tmp_path / "jobs.yaml"
    f.write_text(f"jobs:\n  - {job_body(name='a')}\n  - {job_body(name='b')}\n")
    Direct.fail_after_send = 1  # stored, but the client never hears it
    code, out, err = cli(token, "submit", str(f))
    assert code == 0, err
    assert out.count("submitted job") == 2
    assert jobs_stored(svc) == 2  # not 4
    # An explicit key across two commands: the second is the first's answer again.
    code1, out1, _ = cli(token, "submit", str(f), "--idempotency-key", "nightly-7")
    code2, out2, _ = cli(token, "submit", str(f), "--idempotency-key", "nightly-7")
    assert code1 == code2 == 0 and out1 == out2 and jobs_stored(svc) == 4


def test_escape_sequences_in_names_are_not_printed_raw(cli: Any, svc: Service) -> None:
    token = team_token(cli, svc)
    evil = "\x1b]0;owned\x07x\x1b[2J[bold red]y[/]\x9b"
    r = TestClient(svc.app).post(
        "/v1/jobs", json=job_body(name=evil), headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 201, r.text
    for args in (("jobs",), ("job", str(r.json()["id"]))):
        code, out, _ = cli(token, *args)
        assert code == 0
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    # Each control character becomes "?", and Rich markup is escaped so it prints as written.
    assert client_mod.safe(evil) == "?]0;owned?x?[2J\\[bold red]y\\[/]?"


def test_token_list_and_revoke(cli: Any, svc: Service) -> None:
    token = team_token(cli, svc)
    code, out, _ = cli(ADMIN, "token", "list", "--json")
    assert code == 0 and token not in out
    import json

    listed = json.loads(out)
    tid = next(t["id"] for t in listed if t["team"] == "fsd")
    assert cli(token, "jobs")[0] == 0
    code, out, _ = cli(ADMIN, "token", "revoke", str(tid))
    assert code == 0 and f"token {tid} revoked" in out
    code, _, err = cli(token, "jobs")
    assert code == 1 and "unauthorized" in err
    # Again: idempotent (exit 0), but it says so and when, instead of "revoked" once more.
    first = TestClient(svc.app).get("/v1/tokens", headers={"Authorization": f"Bearer {ADMIN}"})
    revoked_at = next(t["revoked_at"] for t in first.json() if t["id"] == tid)
    code, out, _ = cli(ADMIN, "token", "revoke", str(tid))
    assert code == 0 and out.startswith(f"token {tid} was already revoked at "), out
    r = TestClient(svc.app).delete(
        f"/v1/tokens/{tid}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert r.status_code == 200
    assert (r.json()["already_revoked"], r.json()["revoked_at"]) == (True, revoked_at)


def test_logs_say_when_they_were_cut(cli: Any, svc: Service) -> None:
    token = team_token(cli, svc)
    r = TestClient(svc.app).post(
        "/v1/jobs", json=job_body(), headers={"Authorization": f"Bearer {token}"}
    )
    job_id = r.json()["id"]
    svc.loop.tick()
    out_path, _ = svc.executor.log_paths(job_id, 1)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # 5 MiB of 1 KiB lines; the tail returns the last 4 MiB, so 1 MiB = 1048576 bytes is cut.
    out_path.write_bytes((b"x" * 1023 + b"\n") * 5 * 1024)
    code, out, err = cli(token, "logs", str(job_id))
    assert code == 0 and len(out) == 4 * 1024 * 1024
    assert "first 1048576 bytes of the log left out" in err


@pytest.mark.parametrize(
    ("var", "value", "args", "source"),
    [
        ("CORTEX_SLOTS", "abc", (), "CORTEX_SLOTS"),
        ("CORTEX_GRACE_S", "nan", (), "CORTEX_GRACE_S"),
        ("CORTEX_PORT", "99999", (), "CORTEX_PORT"),
        ("CORTEX_MAX_RETRIES", "1001", (), "CORTEX_MAX_RETRIES"),  # the bound --max-retries takes
        ("CORTEX_WORKDIR_ROOTS", '{"fsd": ["relative/dir"]}', (), "CORTEX_WORKDIR_ROOTS"),
        ("CORTEX_RUN_AS", "fsd=root; rm", (), "CORTEX_RUN_AS"),
        ("CORTEX_LOG_LEVEL", "info", ("--slots", "0"), "--slots"),
        ("CORTEX_LOG_LEVEL", "info", ("--tls-cert", "/x.pem"), "settings"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    tmp_path: Path, var: str, value: str, args: tuple[str, ...], source: str
) -> None:
    env = {**os.environ, "CORTEX_HOME": str(tmp_path), var: value}
    p = subprocess.run(
        [sys.executable, "-m", "cortex.cli.main", "serve", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(f"error: {source}: "), p.stderr
