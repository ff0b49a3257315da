"""An operator's and a training team's review of the control plane (user14): each test is a
defect found by driving `cortex serve` and its CLI by hand, reduced to an in-process service
on the fake executor (4 CPU slots)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clienv import CliEnv
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body
from test_loop_clock import Env as ClockEnv
from typer.testing import CliRunner

from cortex.cli.main import app
from cortex.control.homelock import hold_home
from cortex.control.service import Service
from cortex.control.settings import Settings
from cortex.errors import InputError

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}
TOO_BIG = str(2**31)  # one past the largest job id the API takes


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliEnv]:
    e = CliEnv(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path, monkeypatch, slots=1)
    yield e
    e.close()


@pytest.fixture
def svc(db_url: str, tmp_path: Path) -> Iterator[Service]:
    service = fake_service(db_url, tmp_path, slots=4)
    yield service
    service.close()


def _submit(env: CliEnv) -> int:
    code, out, err = env.run("submit", "--parsable", "--duration-s", "60", "--", "true")
    assert code == 0, err
    return int(out.strip())


@pytest.mark.parametrize("command", ["cancel", "hold", "release"])
def test_an_id_past_the_api_range_is_refused_like_zero(env: CliEnv, command: str) -> None:
    # `cortex cancel 0` was exit 2 with one line, `cortex cancel 2147483648` exit 1 with the
    # server's 422 prefixed by "job N: 422:", as if the request had failed on the service.
    code, out, err = env.run(command, TOO_BIG)
    assert (code, out) == (2, ""), err
    assert err.startswith(f"error: cortex {command}: JOB_IDS: {TOO_BIG}: a job id is ")


def test_logs_refused_input_is_exit_2_as_for_job(env: CliEnv) -> None:
    # `cortex job 2147483648` is exit 2 (refused input); `cortex logs` answered the same 422
    # with exit 1, and `--tail` past the service's bound likewise.
    code, _, err = env.run("job", TOO_BIG)
    assert code == 2, err
    code, _, err = env.run("logs", TOO_BIG)
    assert code == 2 and err.startswith("error: path.job_id:"), err
    job = _submit(env)
    code, _, err = env.run("logs", str(job), "--tail", "100001")
    assert code == 2 and err.startswith("error: query.tail:"), err
    code, _, err = env.run("logs", str(job), "--follow", "--tail", "100001")
    assert code == 2 and err.startswith("error: query.tail:"), err
    code, _, err = env.run("logs", "999")
    assert (code, err) == (1, "error: 404: job 999 not found\n")


def test_cancelling_a_finished_job_does_not_say_cancel_requested(env: CliEnv) -> None:
    job = _submit(env)
    env.svc.loop.tick()
    env.ex.finish(job)
    env.svc.loop.tick()
    assert env.state(job) == "completed"
    code, out, err = env.run("cancel", str(job))
    assert code == 0, err
    assert out == f"job {job} already completed: nothing to cancel\n"
    waiting = _submit(env)
    code, out, _ = env.run("cancel", str(waiting))
    assert out == f"cancel requested for job {waiting} (state queued)\n"


def test_a_victim_search_is_retried_when_a_victims_minimum_runtime_ends(
    db_url: str, tmp_path: Path
) -> None:
    # Live: 4 preemptible jobs started at 00:30:03, a production job waited; the victims'
    # 60 s of protection ended at 00:31:03 but the preemption came at 00:31:53, when the
    # doubling victim-search backoff (0.2 s, 0.4 s, ... 51.2 s) next allowed a search. A
    # failed search now retries at the latest when a running job's protection ends.
    env = ClockEnv(db_url, tmp_path, min_runtime_s=60.0)
    try:
        low = env.submit(gpus=4, priority_class="preemptible", name="low")
        env.loop.tick()
        assert env.job(low)["state"] == "running"
        high = env.submit(gpus=1, priority_class="production", name="high")
        for _ in range(59):  # protected: each search finds no victim, the backoff doubles
            env.tick_after(1.0)
        assert env.ex.terminated == [] and env.job(high)["state"] == "queued"
        env.tick_after(1.0)  # 60 s since low started: its protection is over
        env.tick_after(1.0)
        assert env.ex.terminated == [(low, 1, "preempt")], env.ex.terminated
    finally:
        env.svc.close()


def test_a_quota_edit_answers_the_queue_as_get_does(svc: Service) -> None:
    # PUT /v1/queues/fsd answered running_gpus 0 and pending_jobs 0 while GET /v1/queues
    # said 1 job was waiting: the edit's answer left its usage out.
    client = TestClient(svc.app)
    tok = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    svc.loop.tick()
    for gpus in (3, 2):  # 4 slots: the first runs, the second waits
        assert client.post("/v1/jobs", json=job_body(gpus=gpus), headers=h).status_code == 201
        svc.loop.tick()
    listed = {q["name"]: q for q in client.get("/v1/queues", headers=ADMIN_H).json()}
    assert (listed["fsd"]["running_gpus"], listed["fsd"]["pending_jobs"]) == (3, 1)
    r = client.put("/v1/queues/fsd", json={"weight": 2}, headers=ADMIN_H)
    assert r.status_code == 200, r.text
    assert r.json() == {**listed["fsd"], "weight": 2.0}


def test_why_with_nothing_free_does_not_offer_a_gang_of_zero(svc: Service) -> None:
    # The hint read "a gang of at most 0 starts now (or set elastic.min_gpus)".
    client = TestClient(svc.app)
    tok = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    svc.loop.tick()
    ids = []
    for gpus in (4, 1):
        r = client.post("/v1/jobs", json=job_body(gpus=gpus), headers=h)
        ids.append(r.json()["id"])
        svc.loop.tick()
    top = client.get(f"/v1/jobs/{ids[1]}/why", headers=h).json()["blockers"][0]
    assert (top["code"], top["free_gpus"]) == ("InsufficientCapacity", 0)
    assert "at most 0" not in top["hint"], top["hint"]
    assert top["hint"] == (
        "nothing is free now: it waits for running jobs to end, or list another flavor"
    )


def test_a_flavor_quota_past_the_flavor_says_gpus_and_share(svc: Service) -> None:
    # "nominal quotas of CPU-SLOT add up to 24999.750 of its 4 GPUs, more than 1" for 99999
    # GPUs asked: a share printed as if it were GPUs.
    client = TestClient(svc.app)
    body = {"flavor_quotas": {"CPU-SLOT": {"nominal_gpus": 9}}}
    client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H)
    r = client.put("/v1/queues/fsd", json=body, headers=ADMIN_H)
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert msg == (
        "queue fsd's edit: nominal quotas of CPU-SLOT add up to 9 of its 4 GPUs (a share of "
        "2.250), more than it holds"
    ), msg


def test_why_says_when_every_node_is_out_of_service(svc: Service) -> None:
    # Live: after `cortex drain vm --reason "fan swap"` a new job's why read
    # "InsufficientCapacity: needs 1 CPU-SLOT, 0 free ... it waits for running jobs to end"
    # with no job running: nothing said the only node was drained, nor how it comes back.
    client = TestClient(svc.app)
    tok = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    svc.loop.tick()
    r = client.post("/v1/nodes/node-test/drain", json={"reason": "fan swap"}, headers=ADMIN_H)
    assert r.status_code == 200, r.text
    svc.loop.tick()
    job = client.post("/v1/jobs", json=job_body(), headers=h).json()["id"]
    svc.loop.tick()
    got = client.get(f"/v1/jobs/{job}/why", headers=h).json()
    top = got["blockers"][0]
    assert top["code"] == "NodesOutOfService", got
    assert top["message"] == "no node is in service (node-test: drained: fan swap)"
    assert top["hint"] == "an admin returns a drained node: cortex undrain NODE"
    assert got["summary"].startswith("NodesOutOfService:")
    assert client.post("/v1/nodes/node-test/undrain", headers=ADMIN_H).status_code == 200
    svc.loop.tick()
    svc.loop.tick()
    assert client.get(f"/v1/jobs/{job}", headers=h).json()["state"] == "running"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["drain", "node-test", "--reason", "x", "--burn-in-s", "inf"], "--burn-in-s"),
        (["drain", "node-test", "--reason", "x", "--burn-in-s", "1e309"], "--burn-in-s"),
        (["token", "create", "--team", "zz", "--expires-in-s", "inf"], "--expires-in-s"),
    ],
)
def test_an_infinite_float_option_is_refused_not_a_traceback(
    env: CliEnv, args: list[str], option: str
) -> None:
    # `cortex drain vm --reason x --burn-in-s inf` printed a traceback ending "ValueError: Out
    # of range float values are not JSON compliant" and exited 1; so did token create.
    r = CliRunner().invoke(app, args, env={"CORTEX_TOKEN": ADMIN})
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert option in r.stderr
    assert env.admin.get("/v1/nodes/health").json()[0]["state"] == "up"


async def _echo_length(scope: dict, receive: Any, send: Any) -> None:
    """An ASGI app answering the length of the body it read."""
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        msg = await receive()
        size += len(msg.get("body", b""))
        more = msg.get("more_body", False)
    answer = str(size).encode()
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def _ask(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(OSError):  # the server may close before reading it all
            sock.sendall(request)
        return sock.recv(4096)


def test_the_head_cap_counts_the_head_not_a_body_sent_with_it() -> None:
    # Live: `cortex submit many.yaml` (200 jobs, 40 KB) answered "many.yaml: header: request
    # head over the limit" from the service, whose body limit is 256 KiB: a client that writes
    # head and body at once (http.client does) had its body counted as head in the first read.
    import uvicorn

    from cortex.control.devpg import free_port
    from cortex.control.httpcap import capped_protocol

    port = free_port()
    config = uvicorn.Config(
        _echo_length, host="127.0.0.1", port=port, http=capped_protocol(2048), log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(3000):  # bounded: up to 30 s for the server to come up
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started
        body = b"x" * 40_000
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        answer = _ask(port, head + body)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"40000"), answer
        # The head itself stays capped, also when it arrives in pieces.
        big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"y" * 10_000 + b"\r\n\r\n"
        assert _ask(port, big).startswith(b"HTTP/1.1 431")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            with contextlib.suppress(OSError):
                for i in range(0, len(big), 1000):
                    sock.sendall(big[i : i + 1000])
            assert sock.recv(4096).startswith(b"HTTP/1.1 431")
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_a_refusal_with_many_errors_prints_the_first_ten(env: CliEnv, tmp_path: Path) -> None:
    # `cortex submit /etc/shadow` printed one line of 33 errors, each quoting a line of the
    # file; a job file of 1,000 bad jobs would print 1,000.
    bad = tmp_path / "bad.yaml"
    bad.write_text("".join(f"field{i}: {i}\n" for i in range(30)))
    code, _, err = env.run("submit", str(bad))
    assert code == 2
    assert err.count("Extra inputs are not permitted") == 7  # 3 missing fields come first
    assert err.endswith("; and 23 more\n"), err


def test_goodput_says_which_day_its_window_began(env: CliEnv) -> None:
    # `cortex goodput` at 00:44:37 printed "team fsd since 00:44:37: ...": a week ago, at the
    # same time of day, read as "since now".
    code, out, err = env.run("goodput", "-o", "json")
    assert code == 0, err
    since = json.loads(out)["since"]
    code, out, err = env.run("goodput")
    assert code == 0, err
    day = time.strftime("%Y-%m-%d %H:%M", time.localtime(since))
    assert out.startswith(f"team fsd since {day}:"), out


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("CORTEX_WORKDIR_ROOTS", "{bad", "not valid JSON"),
        ("CORTEX_DEFAULT_DURATION_S", "{bad", "not valid JSON"),
        # Nested past json's depth: a RecursionError traceback, exit 1 (review15).
        ("CORTEX_TEAM_PRIORITY_CLASSES", '{"a":' + "[" * 20000 + "]" * 20000 + "}", "deeply"),
        ("CORTEX_POLICY", "bogus", "unknown policy 'bogus'"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, var: str, value: str, words: str
) -> None:
    # `CORTEX_WORKDIR_ROOTS='{bad' cortex serve` ended in a pydantic_settings SettingsError
    # traceback (exit 1), `CORTEX_POLICY=bogus` in a KeyError one after recovery had run;
    # docs/control-plane.md: "A bad value is one line naming the variable and exit 2".
    monkeypatch.setenv(var, value)
    with pytest.raises(InputError) as got:
        Settings.from_env(home=tmp_path)
    assert got.value.source == var
    assert words in got.value.reason, got.value.reason


def test_a_second_serve_on_one_home_is_refused(tmp_path: Path) -> None:
    # Live: `cortex serve --home H --port 18415` while another `cortex serve --home H` ran
    # started a second scheduler loop on the same store and run dirs (migrations, recovery,
    # ticks) and served; docs/control-plane.md, Limits: "One service process per store".
    home = tmp_path / "home"
    first = hold_home(home)
    try:
        with pytest.raises(InputError) as got:
            hold_home(home)
        assert got.value.source == "serve"
        assert got.value.reason == (
            f"another cortex serve (pid {os.getpid()}) holds {home}; one service per home"
        )
    finally:
        os.close(first)
    os.close(hold_home(home))  # released with its holder: a restart takes it again
    assert (home / "serve.lock").stat().st_mode & 0o777 == 0o600


def test_logs_of_a_job_that_never_ran_say_so(env: CliEnv) -> None:
    # `cortex logs 238` of a held job printed nothing and exited 0: no way to tell "no output
    # yet" from "it ran and printed nothing".
    job = _submit(env)
    env.run("hold", str(job))
    code, out, err = env.run("logs", str(job))
    assert (code, out) == (0, "")
    assert err == f"(job {job} has not started: no output yet)\n"


def test_times_of_another_day_carry_their_date() -> None:
    # `cortex events` and a job's history printed HH:MM:SS only: after a weekend, Friday's
    # 09:12:03 read as this morning's.
    from cortex.cli.client import _ts

    now = time.time()
    assert _ts(now) == time.strftime("%H:%M:%S", time.localtime(now))
    old = now - 3 * 86400
    assert _ts(old) == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(old))
    assert _ts(None) == "-"


def test_a_drained_node_is_not_listed_as_schedulable(svc: Service) -> None:
    # Live: after `cortex drain vm --reason "fan swap"`, `cortex nodes` still said
    # "healthy yes, schedulable yes": nothing in the node list showed that no job would start.
    client = TestClient(svc.app)
    svc.loop.tick()
    assert [n["schedulable"] for n in client.get("/v1/nodes", headers=ADMIN_H).json()] == [True]
    r = client.post("/v1/nodes/node-test/drain", json={"reason": "fan swap"}, headers=ADMIN_H)
    assert r.status_code == 200, r.text
    svc.loop.tick()
    assert [n["schedulable"] for n in client.get("/v1/nodes", headers=ADMIN_H).json()] == [False]
    # A cordon's answer says the same, and counts what is allocated there as the list does.
    r = client.patch("/v1/nodes/node-test?schedulable=true", headers=ADMIN_H)
    assert r.status_code == 200 and r.json()["schedulable"] is False, r.text
    assert client.post("/v1/nodes/node-test/undrain", headers=ADMIN_H).status_code == 200
    svc.loop.tick()
    assert [n["schedulable"] for n in client.get("/v1/nodes", headers=ADMIN_H).json()] == [True]
    tok = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    client.post("/v1/jobs", json=job_body(gpus=3), headers={"Authorization": f"Bearer {tok}"})
    svc.loop.tick()
    svc.loop.tick()
    listed = client.get("/v1/nodes", headers=ADMIN_H).json()[0]
    assert listed["allocated_gpus"] == 3
    r = client.patch("/v1/nodes/node-test?schedulable=true", headers=ADMIN_H)
    assert r.json() == listed, r.text


def test_a_listing_sent_to_a_pipe_is_not_cut_to_80_columns(env: CliEnv) -> None:
    # `cortex jobs | grep running` found nothing: off a terminal Rich drew 80 columns, so the
    # state read "runn…" and a row wrapped over several lines.
    name = "fsd-e2e-v12-sweep-lr-3e-4-warmup-2000"
    code, out, err = env.run("submit", "--parsable", "--name", name, "--", "true")
    assert code == 0, err
    job = int(out)
    env.svc.loop.tick()
    r = CliRunner().invoke(app, ["jobs"], env={"COLUMNS": None, "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    rows = [line for line in r.stdout.splitlines() if f" {job} " in line]
    assert len(rows) == 1 and name in rows[0] and " running " in rows[0], r.stdout
    # A terminal's COLUMNS still rules where it is set.
    r = CliRunner().invoke(app, ["jobs"], env={"COLUMNS": "60", "NO_COLOR": "1"})
    assert max(len(line) for line in r.stdout.splitlines()) <= 60


@pytest.mark.parametrize("policy", ["admit", "cap"])
def test_a_power_policy_on_cpu_slots_schedules(db_url: str, tmp_path: Path, policy: str) -> None:
    # Live: `cortex serve --slots 4 --power-policy admit --site-cap-kw 2` (no GPU, no
    # CORTEX_POWER_MODEL_FLAVOR): the first submitted job made every tick fail with
    # ZeroDivisionError in the power ladder (a CPU slot draws 0 W in the catalog), /healthz
    # went "failing" and nothing was scheduled. docs/power.md: such slots "draw nothing".
    svc = fake_service(db_url, tmp_path, slots=4, power_policy=policy, site_cap_kw=2.0)
    try:
        client = TestClient(svc.app)
        tok = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
        h = {"Authorization": f"Bearer {tok}"}
        svc.loop.tick()
        job = client.post("/v1/jobs", json=job_body(), headers=h).json()["id"]
        svc.loop.tick()
        assert svc.loop.tick_failures == 0
        assert client.get(f"/v1/jobs/{job}", headers=h).json()["state"] == "running"
    finally:
        svc.close()


def test_a_dry_run_of_an_array_names_the_array(svc: Service) -> None:
    # POST /v1/jobs/dry-run {"name": "a", ..., "array": "0-999"} answered loc ["body", "jobs"]
    # "a dry run takes one job": a field the body does not have.
    client = TestClient(svc.app)
    tok = client.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    r = client.post("/v1/jobs/dry-run", json=job_body(array="0-9"), headers=h)
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "loc": ["body", "array"],
            "msg": "a dry run takes one job; this array makes 10: dry-run one member",
            "type": "type_error",
        }
    ]
    r = client.post("/v1/jobs/dry-run", json={"jobs": [job_body(), job_body()]}, headers=h)
    assert r.json()["detail"][0]["loc"] == ["body", "jobs"]


def test_logs_of_a_rank_the_job_does_not_have_are_refused_by_name(env: CliEnv) -> None:
    # `cortex logs J --rank 99999` of a one-rank job printed rank 0's output as that rank's.
    job = _submit(env)
    code, _, err = env.run("logs", str(job), "--rank", "1")
    assert code == 2 and err.startswith("error: query.rank:"), err
    assert f"job {job} has 1 ranks (0 to 0)" in err
    code, _, err = env.run("logs", str(job), "--rank", "0")
    assert code == 0, err


def test_a_token_ttl_past_the_cap_is_cut_with_a_note(
    env: CliEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `cortex token create --expires-in-s` above the service's cap (a year) was cut to a year
    # without a word.
    import cortex.cli.client as client_mod

    monkeypatch.setattr(
        client_mod, "_client", lambda timeout=30.0: contextlib.nullcontext(env.admin)
    )
    two_years = str(2 * 365 * 86400)
    code, out, err = env.run("token", "create", "--team", "red", "--expires-in-s", two_years)
    assert code == 0 and out.startswith("ctx_") and len(out.split()) == 1, (out, err)
    assert err == (
        "note: cut to the service's cap (CORTEX_MAX_TOKEN_TTL_S): this token expires in "
        "31536000 s (365 days), not 63072000 s\n"
    )
    code, out, err = env.run("token", "create", "--team", "red", "--expires-in-s", "3600")
    assert (code, err) == (0, "") and out.startswith("ctx_")
