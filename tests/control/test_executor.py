"""The local executor with real processes: small `python -c` jobs, real signals, real files.

Every wait is bounded; a job that should be stopped early sleeps far longer than the test's
timeout, so a stop that does not happen fails the test instead of passing slowly."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from exec_kit import (
    STUBBORN_JOB,
    gone,
    put_fn,
    py,
    read_pid,
    same_user_executor,
    sleeper,
    spec,
    wait_exits,
    wait_for,
)

from cortex.executors.local.executor import (
    LocalExecutor,
)
from cortex.executors.local.procfs import job_running, proc_stat


@pytest.fixture
def ex(tmp_path: Path) -> LocalExecutor:
    return same_user_executor(tmp_path / "root", grace_s=5.0)


def test_exit_codes_decide_the_outcome(ex: LocalExecutor) -> None:
    handles = [
        ex.launch(spec(1, py("pass"))),
        ex.launch(spec(2, py("import sys; sys.exit(3)"))),
        ex.launch(spec(3, py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))),
        ex.launch(spec(4, py("import sys; sys.exit(75)"))),
    ]
    by_job = {r.job_id: r for r in wait_exits(ex, 4)}
    for h in handles:  # reaped: no zombie left behind
        assert proc_stat(h.pid) is None
    assert (by_job[1].outcome, by_job[1].exit_code) == ("completed", 0)
    assert (by_job[2].outcome, by_job[2].exit_code) == ("failed", 3)
    assert "code 3" in by_job[2].detail
    assert (by_job[3].outcome, by_job[3].exit_code) == ("failed", None)
    assert "SIGKILL" in by_job[3].detail
    assert (by_job[4].outcome, by_job[4].exit_code) == ("preempted", 75)


def test_env_working_dir_and_logs(
    ex: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORTEX_ADMIN_TOKEN", "secret-admin-token")  # the service's, not the job's
    monkeypatch.setenv("RANK", "5")  # stale torchrun variables in the service's env
    work = tmp_path / "work"
    work.mkdir()
    code = """
        import json, os, sys
        json.dump({"env": dict(os.environ), "cwd": os.getcwd()}, open("env.json", "w"))
        print("to stdout")
        print("to stderr", file=sys.stderr)
    """
    user_env = {"FOO": "bar", "CUDA_VISIBLE_DEVICES": "7"}
    h = ex.launch(spec(11, py(code), env=user_env, working_dir=str(work), devices=[0, 1]))
    (rec,) = wait_exits(ex, 1)
    assert rec.outcome == "completed", rec
    got = json.loads((work / "env.json").read_text())
    env = got["env"]
    assert Path(got["cwd"]) == work
    assert env["FOO"] == "bar"
    assert env["CORTEX_JOB_ID"] == "11"
    assert env["CORTEX_ATTEMPT"] == "1"
    ckpt = Path(env["CORTEX_CHECKPOINT_DIR"])
    assert ckpt.is_dir()
    assert ckpt == (ex.root / "jobs" / "11" / "checkpoints").resolve()
    assert Path(env["CORTEX_METRICS_FILE"]).parent == ckpt.parent
    # CPU slots: no GPU at all (the user's value is overridden), the slots named instead.
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["CORTEX_VISIBLE_SLOTS"] == "0,1"
    assert env["OMP_NUM_THREADS"] == "2"
    assert "CORTEX_ADMIN_TOKEN" not in env
    assert "RANK" not in env and "MASTER_PORT" not in env  # a single process is no gang
    out, err = ex.log_paths(11, 1)
    assert (str(out), str(err)) == (h.stdout_path, h.stderr_path)
    assert out.read_text() == "to stdout\n"
    assert err.read_text() == "to stderr\n"


def test_job_env_secrets_are_never_written_to_disk(ex: LocalExecutor, tmp_path: Path) -> None:
    """Issue 9 leftover: the job's decrypted env (its secrets) sat in the run dir's spec.json
    for as long as the run dir lived. The job still gets the value (it writes a digest of it
    to its own file), and no file the executor leaves under its root, nor the runner's own
    environment, holds the value."""
    secret = "s3cr3t-" + os.urandom(8).hex()
    seen = tmp_path / "seen"
    code = f"""
        import hashlib, os
        v = os.environ["API_SECRET"].encode()
        open({str(seen)!r}, "w").write(hashlib.sha256(v).hexdigest())
    """
    h = ex.launch(spec(13, py(code), env={"API_SECRET": secret}))
    runner_environ = Path(f"/proc/{h.pid}/environ").read_bytes()  # still starting or a zombie
    assert wait_exits(ex, 1)[0].outcome == "completed"
    assert seen.read_text() == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.encode() not in runner_environ
    files = [p for p in ex.root.rglob("*") if p.is_file()]
    assert any(p.name == "spec.json" for p in files)  # the scan saw the run dir
    holding = [str(p) for p in files if secret.encode() in p.read_bytes()]
    assert holding == []
    spec_data = json.loads(next(p for p in files if p.name == "spec.json").read_text())
    assert "API_SECRET" in spec_data["env_names"]  # the names stay, for whoever debugs


def test_gpu_job_sees_only_its_gpus(ex: LocalExecutor, tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    code = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    ckpt = tmp_path / "my-ckpt"
    ex.launch(spec(12, py(code), devices=[2, 3], uses_gpus=True, checkpoint_dir=ckpt))
    assert wait_exits(ex, 1)[0].outcome == "completed"
    env = json.loads(out.read_text())
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert "CORTEX_VISIBLE_SLOTS" not in env
    assert Path(env["CORTEX_CHECKPOINT_DIR"]) == ckpt.resolve()
    assert ckpt.is_dir()


def test_cancel(ex: LocalExecutor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    ex.launch(spec(21, sleeper(pidfile)))
    pid, ticks = read_pid(pidfile)
    assert ex.terminate(21, 1, "cancel")
    (rec,) = wait_exits(ex, 1)
    assert rec.outcome == "cancelled"
    assert "cancel" in rec.detail
    assert gone(pid, ticks)
    assert not ex.terminate(21, 1, "cancel")  # nothing left to stop


def test_stop_right_after_launch_still_gets_a_verdict(ex: LocalExecutor) -> None:
    """The SIGTERM reaches the runner while its interpreter is still starting: it must be held
    until the runner can record it, not kill the runner silently."""
    h = ex.launch(spec(22, py("import time; time.sleep(600)")))
    assert ex.terminate(22, 1, "cancel")
    (rec,) = wait_exits(ex, 1)
    assert rec.outcome == "cancelled"
    assert "without recording" not in rec.detail, rec
    assert Path(h.run_dir, "exit.json").exists()


CHECKPOINTING_JOB = """
    import os, signal, sys, time
    ckpt = os.path.join(os.environ["CORTEX_CHECKPOINT_DIR"], "step")
    if os.path.exists(ckpt):
        print("resumed from", open(ckpt).read(), "attempt", os.environ["CORTEX_ATTEMPT"])
        sys.exit(0)
    step = 0
    def on_term(signum, frame):
        with open(ckpt + ".tmp", "w") as f:
            f.write(str(step))
        os.replace(ckpt + ".tmp", ckpt)
        sys.exit(75)
    signal.signal(signal.SIGTERM, on_term)
    step = 42
    open(os.path.join(os.environ["CORTEX_CHECKPOINT_DIR"], "ready"), "w").close()
    time.sleep(600)
"""


def test_preempt_checkpoints_and_the_next_attempt_resumes(ex: LocalExecutor) -> None:
    ex.launch(spec(31, py(CHECKPOINTING_JOB)))
    wait_for((ex.checkpoint_dir(31) / "ready").exists, "the job to trap SIGTERM")
    assert ex.terminate(31, 1, "preempt")
    (rec,) = wait_exits(ex, 1)
    assert (rec.outcome, rec.exit_code) == ("preempted", 75), rec
    ex.launch(spec(31, py(CHECKPOINTING_JOB), attempt=2))
    (rec,) = wait_exits(ex, 1)
    assert (rec.outcome, rec.attempt) == ("completed", 2), rec
    assert ex.log_paths(31, 2)[0].read_text() == "resumed from 42 attempt 2\n"


def test_preempt_of_a_job_ignoring_sigterm_kills_the_whole_group(tmp_path: Path) -> None:
    ex = same_user_executor(tmp_path / "root", grace_s=0.5)
    grandchild = tmp_path / "grandchild.pid"
    ex.launch(spec(41, py(STUBBORN_JOB.format(put=put_fn(grandchild)))))
    gpid, gticks = read_pid(grandchild)
    t0 = time.monotonic()
    assert ex.terminate(41, 1, "preempt")
    (rec,) = wait_exits(ex, 1)
    assert time.monotonic() - t0 >= 0.5  # it was given its grace
    assert rec.outcome == "preempted", rec
    assert rec.exit_code is None and "SIGKILL" in rec.detail, rec
    assert gone(gpid, gticks)


COUNTING_JOB = """
    import os, signal, sys, time
    log = os.path.join(os.environ["CORTEX_CHECKPOINT_DIR"], "sigterms")
    def on_term(signum, frame):
        with open(log, "a") as f:
            f.write("TERM\\n")
    signal.signal(signal.SIGTERM, on_term)
    open(os.path.join(os.environ["CORTEX_CHECKPOINT_DIR"], "ready"), "w").close()
    while not os.path.exists(log):
        time.sleep(0.01)
    time.sleep(0.5)  # time for any further SIGTERM to arrive
    sys.exit(75)
"""


def test_terminate_sends_one_sigterm_however_often_it_is_asked(tmp_path: Path) -> None:
    """The store re-sends a committed stop after a restart; the job must not get it twice."""
    root = tmp_path / "root"
    ex = same_user_executor(root)
    h = ex.launch(spec(45, py(COUNTING_JOB)))
    wait_for((ex.checkpoint_dir(45) / "ready").exists, "the job to trap SIGTERM")
    assert ex.terminate(45, 1, "preempt")
    assert ex.terminate(45, 1, "preempt")
    del ex
    ex2 = same_user_executor(root)
    assert ex2.adopt(h)
    ex2.terminate(45, 1, "cancel")  # the restart's re-send, now a cancel
    (rec,) = wait_exits(ex2, 1)
    assert rec.outcome == "cancelled", rec
    assert (ex2.checkpoint_dir(45) / "sigterms").read_text() == "TERM\n"


def test_preempt_that_came_too_late_does_not_undo_a_completion(tmp_path: Path) -> None:
    """Exit 0 after the SIGTERM is a preemption (the job may have stopped early); exit 0 before
    the SIGTERM reached the job is a completion."""
    root = tmp_path / "root"
    ex = same_user_executor(root)
    graceful = "import signal, sys, time, os\n" + (
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "open(os.path.join(os.environ['CORTEX_CHECKPOINT_DIR'], 'ready'), 'w').close()\n"
        "time.sleep(600)"
    )
    ex.launch(spec(46, py(graceful)))
    wait_for((ex.checkpoint_dir(46) / "ready").exists, "the job to trap SIGTERM")
    ex.terminate(46, 1, "preempt")
    (rec,) = wait_exits(ex, 1)
    assert (rec.outcome, rec.exit_code) == ("preempted", 0), rec

    h = ex.launch(spec(47, py("pass")))
    del ex
    wait_for(Path(h.run_dir, "exit.json").exists, "the job to finish")
    # The service decided to preempt it, signalled a group that had just ended, and died.
    (Path(h.run_dir) / "terminate.json").write_text(
        json.dumps({"reason": "preempt", "grace_s": 5, "kill_at_wall": 0, "signalled_at": 1})
    )
    ex2 = same_user_executor(root)
    assert ex2.adopt(h)
    (rec,) = wait_exits(ex2, 1)
    assert (rec.outcome, rec.exit_code) == ("completed", 0), rec


def test_a_job_that_exits_on_the_sigterm_before_its_runner_looks_is_preempted(
    tmp_path: Path,
) -> None:
    """The group's SIGTERM reaches the job and its runner together. A job that traps it and exits
    0 before the runner's handler runs looked, to the runner, like one that had finished before
    the stop: a preempted job was recorded completed (it failed CI once, by chance). Stopping the
    runner makes that order certain here."""
    ex = same_user_executor(tmp_path / "root")
    graceful = "import signal, sys, time, os\n" + (
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        "open(os.path.join(os.environ['CORTEX_CHECKPOINT_DIR'], 'ready'), 'w').close()\n"
        "time.sleep(600)"
    )
    h = ex.launch(spec(48, py(graceful)))
    wait_for((ex.checkpoint_dir(48) / "ready").exists, "the job to trap SIGTERM")
    # The job can be up before its runner has booked it (Popen returns at the exec; the rank is
    # appended after): stopped there, the runner's handler would find no rank at all and see
    # nothing ended (CI, once, on a loaded machine). It logs its ranks once they are booked.
    runner_log = Path(h.run_dir) / "runner.log"
    wait_for(
        lambda: runner_log.exists() and "started 1 rank(s)" in runner_log.read_text(),
        "the runner to book its rank",
    )
    os.kill(h.pid, signal.SIGSTOP)  # the runner's handler cannot run until SIGCONT
    try:
        assert ex.terminate(48, 1, "preempt")
        wait_for(lambda: not job_running(h.pid, h.pgid), "the job to exit on its SIGTERM")
    finally:
        os.kill(h.pid, signal.SIGCONT)
    (rec,) = wait_exits(ex, 1)
    assert (rec.outcome, rec.exit_code) == ("preempted", 0), rec
    verdict = json.loads((Path(h.run_dir) / "exit.json").read_text())
    assert verdict["ended_before_stop"] is True  # what the runner saw, and why this was a defect


def test_processes_that_left_the_group_get_the_sigterm_too(ex: LocalExecutor) -> None:
    """A wrapper that starts the real work in a new session (setsid) must not cost the work its
    chance to checkpoint: the runner passes the SIGTERM on."""
    worker = (
        "import os, signal, sys, time\n"
        "d = os.environ['CORTEX_CHECKPOINT_DIR']\n"
        "def on_term(*a):\n"
        "    open(os.path.join(d, 'worker-saved'), 'w').close()\n"
        "    sys.exit(75)\n"
        "signal.signal(signal.SIGTERM, on_term)\n"
        "open(os.path.join(d, 'ready'), 'w').close()\n"
        "time.sleep(600)\n"
    )
    wrapper = f"""
        import signal, subprocess, sys
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the wrapper waits for its worker
        w = subprocess.Popen([sys.executable, "-c", {worker!r}], start_new_session=True)
        sys.exit(w.wait())
    """
    ex.launch(spec(48, py(wrapper)))
    wait_for((ex.checkpoint_dir(48) / "ready").exists, "the worker to trap SIGTERM")
    ex.terminate(48, 1, "preempt")
    (rec,) = wait_exits(ex, 1)
    assert (rec.outcome, rec.exit_code) == ("preempted", 75), rec
    assert (ex.checkpoint_dir(48) / "worker-saved").exists()


def test_gang_gets_torchrun_variables(ex: LocalExecutor, tmp_path: Path) -> None:
    code = f"""
        import json, os
        path = os.path.join({str(tmp_path)!r}, "env-" + os.environ["RANK"])
        json.dump(dict(os.environ), open(path, "w"))
    """
    ex.launch(spec(51, py(code), nprocs=2, devices=[0, 1]))
    (rec,) = wait_exits(ex, 1)
    assert rec.outcome == "completed", rec
    envs = [json.loads((tmp_path / f"env-{r}").read_text()) for r in (0, 1)]
    assert [e["RANK"] for e in envs] == ["0", "1"]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1"]
    assert envs[0]["MASTER_PORT"] == envs[1]["MASTER_PORT"]
    assert 0 < int(envs[0]["MASTER_PORT"]) < 65536
    for e in envs:
        assert (e["MASTER_ADDR"], e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"]) == ("127.0.0.1", "2", "2")
        assert e["OMP_NUM_THREADS"] == "1"  # two slots shared by two processes


def test_a_failing_rank_stops_the_rest_of_the_gang(ex: LocalExecutor, tmp_path: Path) -> None:
    """Rank 1 fails only once the test has seen rank 0 running (the go file): a fixed head start
    for rank 0 (it was 0.3 s) lost to a slow interpreter start on a loaded machine, and rank 0
    was stopped before it wrote its pid."""
    pidfile, go = tmp_path / "rank0.pid", tmp_path / "go"
    code = f"""
        import os, sys, time
        if os.environ["RANK"] == "1":
            end = time.monotonic() + 120  # bounded: a failed test leaves nothing spinning
            while not os.path.exists({str(go)!r}) and time.monotonic() < end:
                time.sleep(0.01)
            sys.exit(7)
        open({str(pidfile)!r} + ".tmp", "w").write(str(os.getpid()))
        os.replace({str(pidfile)!r} + ".tmp", {str(pidfile)!r})
        time.sleep(600)
    """
    ex.launch(spec(52, py(code), nprocs=2, devices=[0, 1]))
    pid0, ticks0 = read_pid(pidfile)
    t0 = time.monotonic()
    go.touch()
    (rec,) = wait_exits(ex, 1)
    assert time.monotonic() - t0 < 120  # not the 600 s rank 0 would have slept
    assert (rec.outcome, rec.exit_code) == ("failed", 7), rec
    assert "rank 1" in rec.detail
    assert gone(pid0, ticks0)
    assert "rank 1 failed" in ex.log_paths(52, 1)[1].read_text()


def test_command_not_found_fails_with_a_message(ex: LocalExecutor) -> None:
    ex.launch(spec(91, ["/nonexistent/cortex-no-such-program", "x"]))
    (rec,) = wait_exits(ex, 1)
    assert (rec.outcome, rec.exit_code) == ("failed", 127), rec
    assert "no-such-program" in ex.log_paths(91, 1)[1].read_text()


def test_bad_launches_are_rejected_and_leave_nothing(ex: LocalExecutor, tmp_path: Path) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"command": []}, "command"),
        ({"command": "echo hi"}, "command"),
        ({"nprocs": 0}, "nprocs"),
        ({"env": {"A": 1}}, "env"),
        ({"env": {"A": "x\0y"}}, "env"),
        ({"command": ["echo", "a\0b"]}, "command"),
        ({"devices": [-1]}, "devices"),
        ({"working_dir": str(tmp_path / "missing")}, "working_dir"),
    ]
    for kw, field in cases:
        args: dict[str, object] = {"cmd": py("pass"), **kw}
        cmd = args.pop("command", args.pop("cmd"))
        with pytest.raises(ValueError, match=field):
            ex.launch(spec(99, cmd, **args))  # type: ignore[arg-type]
    assert not (ex.root / "jobs" / "99" / "attempts" / "1").exists()
    with pytest.raises(ValueError, match="reason"):
        ex.terminate(99, 1, "pause")  # type: ignore[arg-type]


def test_an_attempt_runs_at_most_once(ex: LocalExecutor) -> None:
    ex.launch(spec(92, py("pass")))
    with pytest.raises(ValueError, match="attempt"):
        ex.launch(spec(92, py("pass")))
    wait_exits(ex, 1)
    with pytest.raises(ValueError, match="already launched"):
        same_user_executor(ex.root).launch(spec(92, py("pass")))
