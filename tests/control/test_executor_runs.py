"""The local executor across a service restart (adoption of runs, reused pids, vanished
runners), the detached runner's start protocol, and the per-attempt logs.

Every wait is bounded, as in test_executor.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from exec_kit import (
    PY,
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
    Handle,
    LocalExecutor,
)
from cortex.executors.local.procfs import boot_id, proc_stat


@pytest.fixture
def ex(tmp_path: Path) -> LocalExecutor:
    return same_user_executor(tmp_path / "root", grace_s=5.0)


def test_adopt_after_the_service_died(tmp_path: Path) -> None:
    root = tmp_path / "root"
    go = tmp_path / "go"
    ex = same_user_executor(root)
    waiter = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.02)"
    h = ex.launch(spec(61, py(waiter)))
    stored = json.dumps(h.to_dict())  # what the store keeps
    del ex  # the service dies; the job does not
    ex2 = same_user_executor(root)
    assert ex2.poll() == []
    handle = Handle.from_dict(json.loads(stored))
    assert handle == h
    assert ex2.adopt(handle)
    assert ex2.adopt(handle)  # idempotent: still one run
    assert ex2.poll() == []  # still running
    go.touch()
    (rec,) = wait_exits(ex2, 1)
    assert (rec.job_id, rec.outcome) == (61, "completed")


def test_adopt_reports_an_exit_recorded_while_down(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ex = same_user_executor(root)
    h = ex.launch(spec(62, py("import sys; sys.exit(4)")))
    del ex
    wait_for(Path(h.run_dir, "exit.json").exists, "the runner's verdict")
    ex2 = same_user_executor(root)
    assert ex2.adopt(h)
    (rec,) = wait_exits(ex2, 1)
    assert (rec.outcome, rec.exit_code) == ("failed", 4)


def test_stop_requested_before_the_service_died_is_carried_out(tmp_path: Path) -> None:
    """The runner enforces the grace period itself, and the request's reason is on disk."""
    root = tmp_path / "root"
    ex = same_user_executor(root, grace_s=0.3)
    marker = tmp_path / "grandchild.pid"
    h = ex.launch(spec(63, py(STUBBORN_JOB.format(put=put_fn(marker)))))
    gpid, gticks = read_pid(marker)
    assert ex.terminate(63, 1, "cancel")
    del ex
    wait_for(Path(h.run_dir, "exit.json").exists, "the runner to kill the job after its grace")
    assert gone(gpid, gticks)
    ex2 = same_user_executor(root)
    assert ex2.adopt(h)
    (rec,) = wait_exits(ex2, 1)
    assert rec.outcome == "cancelled", rec
    assert "SIGKILL" in rec.detail


def test_adopt_refuses_a_reused_pid(tmp_path: Path) -> None:
    """A live process with the handle's pid but another start time is not the job, and is left
    alone."""
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        st = proc_stat(other.pid)
        assert st is not None
        run_dir = tmp_path / "root" / "jobs" / "71" / "attempts" / "1"
        run_dir.mkdir(parents=True)
        fake = Handle(
            job_id=71,
            attempt=1,
            pid=other.pid,
            pgid=other.pid,
            start_ticks=st.start_ticks - 1,
            boot_id=boot_id(),
            run_dir=str(run_dir),
            stdout_path=str(run_dir / "stdout.log"),
            stderr_path=str(run_dir / "stderr.log"),
        )
        ex = same_user_executor(tmp_path / "root")
        assert not ex.adopt(fake)
        ex.kill(fake)  # an orphan by that pid: must not touch the unrelated process either
        time.sleep(0.1)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(timeout=10)


def test_adopt_of_a_run_whose_runner_vanished_kills_its_job(tmp_path: Path) -> None:
    root = tmp_path / "root"
    pidfile = tmp_path / "job.pid"
    ex = same_user_executor(root)
    h = ex.launch(spec(72, sleeper(pidfile)))
    pid, ticks = read_pid(pidfile)
    os.kill(h.pid, signal.SIGKILL)  # the runner alone dies (say, the OOM killer)
    wait_for(lambda: gone(h.pid, h.start_ticks), "the runner to die")
    del ex
    ex2 = same_user_executor(root)
    assert not ex2.adopt(h)
    wait_for(lambda: gone(pid, ticks), "the job left without its runner to be killed")


def test_live_handles_finds_runs_the_store_lost_and_kill_stops_them(tmp_path: Path) -> None:
    root = tmp_path / "root"
    pidfile = tmp_path / "job.pid"
    ex = same_user_executor(root)
    h = ex.launch(spec(81, sleeper(pidfile)))
    pid, ticks = read_pid(pidfile)
    del ex  # died before the store committed the handle
    ex2 = same_user_executor(root)
    assert ex2.live_handles() == [h]
    ex2.kill(h)
    wait_for(lambda: gone(pid, ticks) and gone(h.pid, h.start_ticks), "the orphan to die")
    ex2.poll()  # reaps
    assert ex2.live_handles() == []
    assert ex2.poll() == []  # killed orphans are not reported


def test_runner_starts_nothing_until_the_launch_is_recorded(tmp_path: Path) -> None:
    """A service killed between spawning the runner and writing handle.json leaves a run no
    one knows about; it must not start the job."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    marker = tmp_path / "ran"
    (run_dir / "spec.json").write_text(
        json.dumps(
            {
                "command": py(f"open({str(marker)!r}, 'w')"),
                "working_dir": None,
                "nprocs": 1,
                "grace_s": 1.0,
                "confirm_timeout_s": 0.2,
            }
        )
    )
    proc = subprocess.run(
        [PY, "-m", "cortex.executors.local.runner", str(run_dir)],
        input=json.dumps(dict(os.environ)).encode(),
        timeout=30,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert not marker.exists()
    assert "not confirmed" in json.loads((run_dir / "exit.json").read_text())["detail"]


def test_runner_starts_nothing_on_a_torn_env(tmp_path: Path) -> None:
    """The env arrives through the runner's stdin; a service killed mid-write leaves it torn,
    and a job must not start with half its env (its handle never came either)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    marker = tmp_path / "ran"
    (run_dir / "spec.json").write_text(
        json.dumps(
            {
                "command": py(f"open({str(marker)!r}, 'w')"),
                "working_dir": None,
                "nprocs": 1,
                "grace_s": 1.0,
                "confirm_timeout_s": 0.2,
            }
        )
    )
    proc = subprocess.run(
        [PY, "-m", "cortex.executors.local.runner", str(run_dir)],
        input=b'{"PATH": "/usr/bin", "TOK',
        timeout=30,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert not marker.exists()
    assert "env did not arrive" in json.loads((run_dir / "exit.json").read_text())["detail"]


def test_logs_are_capped_per_attempt_and_rotated(tmp_path: Path) -> None:
    """Issue 9: logs had no size cap. 40 lines of 100 bytes (4,000 bytes) into a 1,024-byte
    cap keeping 1 rotated part: stdout.log and stdout.log.1 hold at most 1,024 bytes each,
    the newest lines are in stdout.log, and nothing older than one part survives."""
    ex = same_user_executor(tmp_path / "root", log_cap_bytes=1024, log_keep=1)
    code = """
        import sys
        for i in range(40):
            sys.stdout.write(f"{i:03d} " + "x" * 95 + "\\n")
            sys.stdout.flush()
    """
    ex.launch(spec(95, py(code)))
    (rec,) = wait_exits(ex, 1)
    assert rec.outcome == "completed", rec
    out, _ = ex.log_paths(95, 1)
    parts = sorted(out.parent.glob("stdout.log*"))
    assert [p.name for p in parts] == ["stdout.log", "stdout.log.1"]
    for p in parts:
        assert 0 < p.stat().st_size <= 1024, (p, p.stat().st_size)
    assert out.read_text().splitlines()[-1].startswith("039 ")
    assert out.with_name("stdout.log.1").read_text().splitlines()[0] > "000 "


def test_log_parts_do_not_depend_on_how_writes_were_batched(tmp_path: Path) -> None:
    """The capped-log test failed under load: the job's 40 lines arrived in one read, and a
    read larger than the cap kept only its tail, so no rotated part existed. One 4,000-byte
    read into a 1,024-byte cap keeping 1 part must leave the same parts as 40 small reads."""
    from cortex.executors.local.runner import copy_capped

    payload = b"".join(f"{i:03d} ".encode() + b"x" * 95 + b"\n" for i in range(40))
    for name, chunks in (
        ("one", [payload]),
        ("many", [payload[i : i + 100] for i in range(0, 4000, 100)]),
    ):
        rd, wr = os.pipe()
        path = tmp_path / name / "stdout.log"
        path.parent.mkdir()
        for c in chunks:
            os.write(wr, c)
        os.close(wr)
        copy_capped(rd, path, 1024, 1)
        assert path.read_bytes() == payload[3072:]
        assert path.with_name("stdout.log.1").read_bytes() == payload[2048:3072]
        assert not path.with_name("stdout.log.2").exists()


def test_a_job_that_ended_before_the_preemption_signal_is_completed(tmp_path: Path) -> None:
    """Found by the crash benchmark (bench/control_faults.py): a job that exited 0 an instant
    before a preemption's SIGTERM reached its runner was counted as preempted and run again.
    The runner notes which ranks had already exited (reaped or zombie) when the first stop
    signal arrived; all of them with 0 is a completion."""
    from cortex.executors.local.rundir import RunFiles
    from cortex.executors.local.runner import Runner, _Rank

    files = RunFiles(tmp_path / "run")
    files.dir.mkdir()
    proc = subprocess.Popen([PY, "-c", "pass"])
    wait_for(lambda: (st := proc_stat(proc.pid)) is not None and st.finished, "a zombie rank")
    runner = Runner(files)
    runner.ranks = [_Rank(rank=0, pid=proc.pid, proc=proc)]
    runner._on_stop_signal(signal.SIGTERM, None)  # the preemption arrives after the exit
    runner._reap()
    runner._write_exit(runner.verdict(1.0))
    v = json.loads(files.exit.read_text())
    assert v["exit_code"] == 0 and v["stop_signal"] == signal.SIGTERM
    assert v["ended_before_stop"] is True

    # The executor, told it preempted this run, reads that verdict as a completion.
    root = tmp_path / "root"
    ex = same_user_executor(root)
    h = ex.launch(spec(48, py("pass")))
    wait_exits(ex, 1)
    exit_json = Path(h.run_dir) / "exit.json"
    exit_json.write_text(json.dumps(v))
    (Path(h.run_dir) / "terminate.json").write_text(
        json.dumps({"reason": "preempt", "grace_s": 5, "kill_at_wall": 0, "signalled_at": 1})
    )
    ex2 = same_user_executor(root)
    assert ex2.adopt(h)
    (rec,) = wait_exits(ex2, 1)
    assert (rec.outcome, rec.exit_code) == ("completed", 0), rec


# A runner whose stop arrives after it checked for one and before it forked the rank: the
# executor's SIGTERM to the process group came while the rank was not yet in it.
LATE_STOP_RUNNER = """
import json, os, signal, subprocess, sys
from pathlib import Path
from cortex.executors.local import runner
run_dir = Path(sys.argv[1])
(run_dir / "handle.json").write_text(json.dumps({"pid": os.getpid()}))
real_popen = subprocess.Popen
def stopped_then_popen(*args, **kw):
    os.killpg(0, signal.SIGTERM)  # the handler runs here, before the fork below
    return real_popen(*args, **kw)
subprocess.Popen = stopped_then_popen
sys.exit(runner.main([str(run_dir)]))
"""


def test_a_stop_that_arrives_while_a_rank_is_being_started_reaches_the_rank(
    tmp_path: Path,
) -> None:
    """The runner checked for a stop, then started the rank; a SIGTERM to the group in between
    reached the runner alone, and the rank ran on until the SIGKILL at the end of the grace
    period (no chance to checkpoint; a test waiting less than the grace timed out). Forced
    here: the runner's own group gets the SIGTERM just before Popen forks."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.json").write_text(
        json.dumps(
            {
                "command": py("import time; time.sleep(600)"),
                "working_dir": None,
                "nprocs": 1,
                "grace_s": 60.0,  # the old runner SIGKILLed only after this
                "confirm_timeout_s": 30.0,
            }
        )
    )
    proc = subprocess.run(
        [PY, "-c", LATE_STOP_RUNNER, str(run_dir)],
        input=json.dumps(dict(os.environ)).encode(),
        timeout=300,
        capture_output=True,
        check=False,
        start_new_session=True,  # the runner's killpg(0) reaches it alone
    )
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads((run_dir / "exit.json").read_text())
    assert verdict["stop_signal"] == signal.SIGTERM, verdict
    assert (verdict["signal"], verdict["killed_after_grace"]) == (signal.SIGTERM, False), verdict
