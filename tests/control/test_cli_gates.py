"""Job gates through the CLI and the loop: `hold`/`release` (a held job is never scheduled,
across ticks and restarts), `--dependency afterok:ID` (waits for completion; a failed
dependency cancels the dependent with the reason; a missing one is refused at submission) and
job arrays (`--array 0-5%2`: one job per index, CORTEX_ARRAY_INDEX set, at most 2 at once)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clienv import CliEnv
from fakeexec import FakeExecutor
from fastapi.testclient import TestClient
from helpers import fake_service


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliEnv]:
    e = CliEnv(db_url, tmp_path, monkeypatch, slots=2)
    yield e
    e.close()


def _submit(env: CliEnv, *args: str) -> list[int]:
    code, out, err = env.run("submit", "--parsable", "--duration-s", "60", *args)
    assert code == 0, err
    return [int(x) for x in out.split()]


def _ticks(env: CliEnv, n: int = 3) -> None:
    for _ in range(n):
        env.svc.loop.tick()


def _job(env: CliEnv, jid: int) -> dict:
    return dict(env.admin.get(f"/v1/jobs/{jid}").json())


def test_a_held_job_is_never_scheduled_until_released(env: CliEnv) -> None:
    [a] = _submit(env, "--hold", "--", "python3", "-V")
    _ticks(env, 5)  # two free slots, five passes: still waiting
    got = _job(env, a)
    assert (got["state"], got["reason"]) == ("queued", f"held (cortex release {a})")
    assert got["gates"]["held"] is True
    assert env.ex.launched == []
    code, out, _ = env.run("release", str(a))
    assert (code, out) == (0, f"job {a} released\n")
    _ticks(env, 1)
    assert env.state(a) == "running"
    code, _, err = env.run("release", str(a))
    assert code == 1 and err == f"error: job {a}: 409: job {a} is not held\n"
    code, _, err = env.run("hold", str(a))
    assert (
        code == 1
        and err == f"error: job {a}: 409: job {a} is running: only a waiting job is held\n"
    )


def test_hold_takes_a_queued_job_out_of_its_queue(env: CliEnv) -> None:
    a, b = _submit(env, "--gpus", "2", "--", "sleep", "9"), _submit(env, "--", "python3", "-V")
    _ticks(env, 1)
    assert (env.state(a[0]), env.state(b[0])) == ("running", "queued")  # b waits for a slot
    code, out, _ = env.run("hold", str(b[0]), "424242")
    assert code == 1 and f"job {b[0]} held" in out  # the missing id fails alone
    env.ex.finish(a[0])
    _ticks(env, 3)
    assert env.state(a[0]) == "completed" and env.state(b[0]) == "queued"  # slots free, held
    env.run("release", str(b[0]))
    _ticks(env, 1)
    assert env.state(b[0]) == "running"


def test_a_hold_outlives_a_restart(env: CliEnv, db_url: str, tmp_path: Path) -> None:
    [a] = _submit(env, "--hold", "--", "python3", "-V")
    _ticks(env, 1)
    env.svc.close()
    ex = FakeExecutor(tmp_path / "runs2")
    svc = fake_service(db_url, tmp_path, slots=2, executor=ex)  # recovers from the store
    try:
        for _ in range(3):
            svc.loop.tick()
        admin = TestClient(svc.app, headers=env.admin.headers)
        assert admin.get(f"/v1/jobs/{a}").json()["state"] == "queued"
        assert ex.launched == []
        assert admin.post(f"/v1/jobs/{a}/release").status_code == 200
        svc.loop.tick()
        assert admin.get(f"/v1/jobs/{a}").json()["state"] == "running"
    finally:
        svc.close()
        env.svc = svc  # closed once more by the fixture: closing twice must be harmless


def test_afterok_waits_for_completion(env: CliEnv) -> None:
    [a] = _submit(env, "--", "python3", "-V")
    [b] = _submit(env, "--dependency", f"afterok:{a}", "--", "python3", "-V")
    _ticks(env, 3)
    assert (env.state(a), env.state(b)) == ("running", "queued")
    assert _job(env, b)["reason"] == f"waiting for dependencies: afterok:{a}"
    env.ex.finish(a)
    _ticks(env, 1)  # the tick that sees a's exit also frees b
    assert (env.state(a), env.state(b)) == ("completed", "running")


def test_a_failed_dependency_cancels_the_dependent(env: CliEnv) -> None:
    [a] = _submit(env, "--", "python3", "-V")
    [c] = _submit(env, "--", "python3", "-V")
    [b] = _submit(env, "-d", f"afterok:{a}:{c}", "--", "python3", "-V")
    _ticks(env, 1)
    env.ex.finish(c)
    env.ex.finish(a, "failed", 2)  # max_retries=1: requeued once, then failed
    _ticks(env, 2)
    env.ex.finish(a, "failed", 2)
    _ticks(env, 2)
    assert (env.state(a), env.state(c)) == ("failed", "completed")
    got = _job(env, b)
    assert got["state"] == "cancelled"
    assert got["reason"] == f"dependency afterok:{a} can never be satisfied (job {a} failed)"
    assert env.ex.launched and all(s.job_id != b for s in env.ex.launched)
    # On a job already failed: refused at submission.
    code, _, err = env.run("submit", "-d", f"afterok:{a}", "--duration-s", "5", "--", "ls")
    assert code == 2
    assert (
        err
        == f"error: cortex submit: after_ok: job {a} is failed: the dependency can never be met\n"
    )


@pytest.mark.parametrize(
    ("dep", "line"),
    [
        ("afterok:77", "after_ok: job 77 not found"),
        ("afterany:1", "--dependency: 'afterany:1': only afterok:ID[:ID] is supported"),
        ("afterok:1:x", "--dependency: 'afterok:1:x': 'x' is not a job id"),
        ("afterok:", "--dependency: 'afterok:': '' is not a job id"),
        (
            "afterok:99999999999",
            "--dependency: 'afterok:99999999999': '99999999999' is not a job id",
        ),
    ],
)
def test_bad_dependencies_are_refused(env: CliEnv, dep: str, line: str) -> None:
    # A new job has no id until stored, so it can only name existing jobs: naming the next
    # id (the only way to a cycle) is "not found".
    code, out, err = env.run("submit", "-d", dep, "--duration-s", "5", "--", "ls")
    assert (code, out, err) == (2, "", f"error: cortex submit: {line}\n")
    assert env.admin.get("/v1/jobs").json()["jobs"] == []


def test_another_teams_job_is_not_a_dependency(env: CliEnv) -> None:
    assert env.admin.post("/v1/tokens", json={"team": "red"}).status_code in (200, 201)
    other = env.admin.post(
        "/v1/jobs", json={"team": "red", "name": "x", "gpus": 1, "duration_s": 5, "command": ["ls"]}
    )
    assert other.status_code == 201, other.text
    oid = other.json()["id"]
    code, _, err = env.run("submit", "-d", f"afterok:{oid}", "--duration-s", "5", "--", "ls")
    assert (code, err) == (2, f"error: cortex submit: after_ok: job {oid} not found\n")


def test_an_array_runs_its_members_at_most_limit_at_once(env: CliEnv) -> None:
    ids = _submit(env, "--array", "0-5%2", "--name", "sweep", "--", "python3", "train.py")
    assert len(ids) == 6
    names = [_job(env, j)["name"] for j in ids]
    assert names == [f"sweep[{i}]" for i in range(6)]
    most = 0
    for _ in range(12):
        _ticks(env, 1)
        running = [j for j in ids if env.state(j) == "running"]
        most = max(most, len(running))
        for j in running[:1]:
            env.ex.finish(j)
    assert [env.state(j) for j in ids] == ["completed"] * 6
    assert most == 2
    seen = {s.job_id: s.env["CORTEX_ARRAY_INDEX"] for s in env.ex.launched}
    assert seen == {j: str(i) for i, j in enumerate(ids)}


def test_the_array_limit_binds_below_free_capacity(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = CliEnv(db_url, tmp_path, monkeypatch, slots=8)
    try:
        ids = _submit(e, "--array", "1,3,5-9%3", "--", "python3", "-V")
        _ticks(e, 3)
        states = [e.state(j) for j in ids]
        # 8 free slots, 7 members, limit 3: the first three by index run, the rest wait.
        assert states == ["running"] * 3 + ["queued"] * 4
        assert _job(e, ids[3])["reason"] == "job array limit: 3 at once"
        e.ex.finish(ids[0])
        _ticks(e, 1)
        assert [e.state(j) for j in ids[:5]] == [
            "completed",
            "running",
            "running",
            "running",
            "queued",
        ]
    finally:
        e.close()


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("0-5%0", "the limit after % must be at least 1"),
        ("5-1", "range '5-1' ends before it begins"),
        ("a-b", "expected FIRST-LAST[%LIMIT] or a list like 1,3,5-7[%LIMIT]"),
        ("0-2000000", "indices go up to 1000000"),
        ("0-999999", "at most 1000 jobs per submission"),
        ("1,,2", "'' is not an index or a range FIRST-LAST"),
    ],
)
def test_bad_arrays_are_refused(env: CliEnv, spec: str, reason: str) -> None:
    code, out, err = env.run("submit", "--array", spec, "--duration-s", "5", "--", "ls")
    assert (code, out, err) == (2, "", f"error: cortex submit: array: {reason}\n")


def test_why_and_job_name_the_gate(env: CliEnv) -> None:
    [a] = _submit(env, "--", "python3", "-V")
    [b] = _submit(env, "--hold", "--time-limit-s", "90", "-d", f"afterok:{a}", "--", "ls")
    _ticks(env, 2)
    code, out, _ = env.run("why", str(b), "--json")
    got = json.loads(out)
    assert [(x["code"], x["hint"]) for x in got["blockers"]] == [
        ("JobHeldUser", "cortex release JOB")
    ]
    assert got["summary"] == f"JobHeldUser: held (cortex release {b})"
    code, out, _ = env.run("job", str(b))
    assert code == 0 and f"gates: held, afterok:{a}, time limit 90 s" in out
    env.run("release", str(b))
    _ticks(env, 1)
    got = json.loads(env.run("why", str(b), "--json")[1])
    assert got["blockers"][0]["code"] == "Dependency"


def test_gates_read_in_chunks_judge_alike(env: CliEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite takes at most 32,766 parameters a statement: the parked jobs' ids are read in
    chunks. With chunks of 2, an array of 7 at %3 behaves as with one chunk."""
    from cortex.control import store_gates

    monkeypatch.setattr(store_gates, "CHUNK", 2)
    ids = _submit(env, "--array", "0-6%3", "--", "python3", "-V")
    [dep] = _submit(env, "-d", ":".join(["afterok", *map(str, ids[:5])]), "--", "ls")
    _ticks(env, 2)
    # 2 slots: two members run; the limit of 3 counts the queued third too.
    assert [env.state(j) for j in ids] == ["running", "running", "queued", *["queued"] * 4]
    assert [_job(env, j)["reason"] for j in ids[3:]] == ["job array limit: 3 at once"] * 4
    for _ in range(12):
        for j in ids:
            if env.state(j) == "running":
                env.ex.finish(j)
        _ticks(env, 1)
    assert [env.state(j) for j in ids] == ["completed"] * 7
    assert env.state(dep) in ("running", "completed")


def test_a_hold_committed_while_the_loop_reads_new_jobs_still_parks_the_job(
    env: CliEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop reads new jobs (with whether each has a gate) before its write transaction. A
    hold that commits just after that read, while its route has not yet told the loop, must
    still keep the job from starting in that tick (the intake looks the gate up again)."""
    import threading

    from cortex.control import store, store_gates
    from cortex.control.loop import SchedulerLoop

    [a] = _submit(env, "--", "python3", "-V")
    committed, tick_done = threading.Event(), threading.Event()
    ask = SchedulerLoop.request_gates

    def request_gates(self: SchedulerLoop, hold_job: int | None = None) -> None:
        with env.svc.sessions() as r:
            visible = store_gates.gate(r, a) is not None
        if visible and not committed.is_set():  # the route told the loop after its commit:
            committed.set()  # held back until the tick ends
            tick_done.wait(30)
        ask(self, hold_job)

    monkeypatch.setattr(SchedulerLoop, "request_gates", request_gates)
    read = store.unseen_jobs
    holder = threading.Thread(target=lambda: env.admin.post(f"/v1/jobs/{a}/hold"))

    def unseen_then_hold(r: object) -> object:
        rows = read(r)  # type: ignore[arg-type]
        holder.start()
        assert committed.wait(30), "the hold route did not commit"
        return rows

    monkeypatch.setattr(store, "unseen_jobs", unseen_then_hold)
    try:
        env.svc.loop.tick()
    finally:
        tick_done.set()
        holder.join(30)
    monkeypatch.setattr(store, "unseen_jobs", read)
    _ticks(env, 2)
    got = _job(env, a)
    assert (got["state"], got["gates"]["held"]) == ("queued", True), got
    assert env.ex.launched == []
