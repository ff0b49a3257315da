"""The runner: a small parent process between the service and a job's processes.

    python -m cortex.executors.local.runner RUN_DIR

Why it exists: only a process's parent can wait() for it and learn how it ended. A service that
was killed and started again is not the parent of the jobs its earlier self started, so it could
see that a pid vanished but never with which exit code, which is what decides completed, failed
or preempted. The runner is that parent. It lives in its own session (so a kill -9 of the service,
or a signal to the service's process group, does not reach it), starts the job's processes,
waits for them, and writes their verdict atomically to exit.json in the run dir
(see exec_rundir). Whoever runs the service later reads the verdict from there.

It also does what only a parent sitting next to the job can do promptly: stop the rest of a gang
when one rank fails, enforce the SIGTERM grace period even while the service is down, and make
sure nothing the job started outlives it (it is a child subreaper, so orphaned grandchildren are
re-parented to it rather than to init).

It imports only the standard library and two tiny modules, so it starts in tens of ms."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cortex.executors.local.procfs import all_stats, proc_stat
from cortex.executors.local.rundir import RunFiles, read_json, write_json_atomic

POLL_S = 0.05  # how often the runner looks at its children: bounds exit-report latency
CONFIRM_POLL_S = 0.005
DRAIN_S = 5.0  # how long the verdict waits for the log copiers after the job has ended
_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# The exit codes a shell uses for "not found" and "found but not executable".
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


def rank_env(base: dict[str, str], rank: int, nprocs: int, master_port: int) -> dict[str, str]:
    """torchrun's variables, so `init_process_group("env://")` works unchanged in a gang. One node
    only: every rank is local, so LOCAL_RANK == RANK."""
    env = dict(base)
    if nprocs > 1:
        env.update(
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(master_port),
            WORLD_SIZE=str(nprocs),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(nprocs),
            GROUP_RANK="0",
        )
    return env


def free_port() -> int:
    """A port free right now. Another process could take it before rank 0 binds it; torchrun has
    the same race and it is rare on one machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


@dataclass
class _Rank:
    rank: int
    pid: int
    proc: subprocess.Popen[bytes]
    status: int | None = None  # os.waitstatus_to_exitcode: the code, or -signal
    end_seq: int = 0  # order of exit: the first failing rank is the cause of a gang failure


class Runner:
    def __init__(self, files: RunFiles) -> None:
        self.files = files
        self.me = os.getpid()
        self.pgid = os.getpgid(0)
        self.started_at = time.time()
        self.stop_signals: list[tuple[int, float]] = []  # (signal, monotonic time) as received
        self.handled_signals = 0
        self.ranks: list[_Rank] = []
        self.end_seq = 0
        self.deadline: float | None = None  # monotonic: SIGKILL what is left after this
        self.killed_after_grace = False
        self.gang_failed: _Rank | None = None  # the rank whose failure stopped the gang
        self.start_error: tuple[int, OSError] | None = None
        self.copiers: list[threading.Thread] = []
        self.ended_before_stop: set[int] = set()

    # -- signals ---------------------------------------------------------------------------
    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        # Only record it: the main loop acts, so no work runs inside a signal handler. The one
        # look around: which ranks had already exited (reaped, or zombies) when the first stop
        # arrived. A job that had finished then completed; a preemption must not rerun it.
        if not self.stop_signals:
            self.ended_before_stop = {
                r.rank
                for r in self.ranks
                if r.status is not None or ((st := proc_stat(r.pid)) is not None and st.finished)
            }
        self.stop_signals.append((signum, time.monotonic()))

    def _install_handlers(self) -> None:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._on_stop_signal)
        # The executor starts us with the stop signals blocked, so that a stop requested while
        # this interpreter was still starting stays pending instead of killing us before we
        # could record it; it is delivered to the handler now. The children inherit the empty
        # mask (a job with SIGTERM blocked could never checkpoint).
        signal.pthread_sigmask(signal.SIG_SETMASK, [])

    # -- output ----------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} runner[{self.me}]: {msg}", flush=True)

    def tell_job_log(self, msg: str) -> None:
        """A line in the job's own stderr, where a user looking at `cortex logs` will see it."""
        with contextlib.suppress(OSError), open(self.files.stderr, "a") as f:
            f.write(f"[cortex runner] {msg}\n")

    # -- process tree ----------------------------------------------------------------------
    def _descendants(self, *, outside_group: bool = False) -> list[int]:
        """Live processes of this job: everything in our process group, and everything below us
        in the process tree (a job may move a child into a new group or session). With
        `outside_group`, only the latter kind: those a signal to our group misses."""
        stats = [s for s in all_stats() if s.pid != self.me]
        children: dict[int, list[int]] = {}
        for s in stats:
            children.setdefault(s.ppid, []).append(s.pid)
        below: set[int] = set()
        todo = [self.me]
        while todo:
            for c in children.get(todo.pop(), []):
                if c not in below:
                    below.add(c)
                    todo.append(c)
        if outside_group:
            return [
                s.pid for s in stats if not s.finished and s.pid in below and s.pgrp != self.pgid
            ]
        return [s.pid for s in stats if not s.finished and (s.pid in below or s.pgrp == self.pgid)]

    def _signal_job(self, sig: int, *, outside_group: bool = False) -> int:
        pids = self._descendants(outside_group=outside_group)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        return len(pids)

    def _reap(self) -> None:
        """Collect every exited child: ranks (recording their status) and orphans re-parented to
        us (discarding it), so that none is left a zombie."""
        by_pid = {r.pid: r for r in self.ranks}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            r = by_pid.get(pid)
            if r is not None and r.status is None:
                self.end_seq += 1
                r.status = os.waitstatus_to_exitcode(status)
                r.end_seq = self.end_seq
                # Popen did not reap it; tell it so that it does not try to.
                r.proc.returncode = r.status

    def _kill_stragglers(self) -> None:
        """After the ranks have exited, SIGKILL whatever they left behind (background workers,
        daemons). Repeated because a dying process may have forked; bounded because a process
        we may not signal (another user's) must not hang the runner."""
        for _ in range(50):
            self._reap()
            if self._signal_job(signal.SIGKILL) == 0:
                break
            time.sleep(0.01)
        self._reap()

    # -- phases ----------------------------------------------------------------------------
    def _await_confirmation(self, timeout_s: float) -> bool:
        """Start nothing until the service has recorded our pid in handle.json: a service killed
        between spawning us and writing it would not know this run exists, and a job it does
        not know about could end up running twice."""
        deadline = time.monotonic() + timeout_s
        while True:
            data = read_json(self.files.handle)
            if data is not None:
                return int(data["pid"]) == self.me
            if time.monotonic() >= deadline:
                return False
            time.sleep(CONFIRM_POLL_S)

    def _spawn(self, spec: dict[str, Any]) -> None:
        nprocs = int(spec["nprocs"])
        port = free_port() if nprocs > 1 else 0
        who = spec.get("run_as")
        # Another user's job: its uid and gid, no supplementary groups (the runner is root, and
        # root's groups must not leak into the job), files private to it by default.
        creds: dict[str, Any] = (
            {"user": int(who["uid"]), "group": int(who["gid"]), "extra_groups": [], "umask": 0o077}
            if who
            else {}
        )
        cap = spec.get("log_cap_bytes")
        if cap:
            # The ranks write into pipes that the runner copies to the files, rotating them at
            # the cap: a job cannot fill the disk through its logs.
            out_fd = self._capped_log(self.files.stdout, int(cap), int(spec.get("log_keep", 0)))
            err_fd = self._capped_log(self.files.stderr, int(cap), int(spec.get("log_keep", 0)))
            out_cm: Any = os.fdopen(out_fd, "wb")
            err_cm: Any = os.fdopen(err_fd, "wb")
        else:
            out_cm = open(self.files.stdout, "ab")  # noqa: SIM115 - entered just below
            err_cm = open(self.files.stderr, "ab")  # noqa: SIM115
        with out_cm as out, err_cm as err:
            for rank in range(nprocs):
                if self.stop_signals:
                    # Stopped while starting: ranks not started yet need no stopping.
                    self.log(f"stop requested; rank {rank} and later not started")
                    return
                try:
                    proc = subprocess.Popen(
                        spec["command"],
                        env=rank_env(spec["env"], rank, nprocs, port),
                        cwd=spec["working_dir"],
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        **creds,
                    )
                except OSError as e:
                    self.start_error = (rank, e)
                    self.tell_job_log(f"could not start rank {rank}: {e}")
                    self._stop_gang(float(spec["grace_s"]))
                    return
                self.ranks.append(_Rank(rank=rank, pid=proc.pid, proc=proc))
                if self.stop_signals:
                    self._pass_on_missed_stop(rank, proc.pid)
                    return
        self.log(f"started {nprocs} rank(s): pids {[r.pid for r in self.ranks]}")

    def _pass_on_missed_stop(self, rank: int, pid: int) -> None:
        """A stop arrived while this rank was being started, after the check above. Sent to the
        group before the fork, it reached us and not the rank, which would run on until the
        SIGKILL at the end of the grace period: pass it on. Sent after the fork, the rank got
        it already, in all likelihood before it could install a handler of its own (Popen
        returns at the rank's exec), so this second one changes nothing; only a rank that set
        up its handler while this runner was descheduled right here gets it twice."""
        sig = self.stop_signals[0][0]
        self.log(f"{signal_name(sig)} arrived while rank {rank} was starting: passed on to it")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)

    def _capped_log(self, path: Path, cap_bytes: int, keep: int) -> int:
        """A pipe whose read end a thread copies into `path`; returns the write end."""
        rd, wr = os.pipe()
        t = threading.Thread(
            target=copy_capped, args=(rd, path, cap_bytes, keep), name=path.name, daemon=True
        )
        t.start()
        self.copiers.append(t)
        return wr

    def _drain_logs(self) -> None:
        """Let the copiers write what the job's last writes left in the pipes. Bounded: a
        process outside our reach holding a pipe open must not keep the verdict back."""
        deadline = time.monotonic() + DRAIN_S
        for t in self.copiers:
            t.join(max(0.0, deadline - time.monotonic()))

    def _stop_gang(self, grace_s: float) -> None:
        if self.deadline is None and self.ranks:
            self.deadline = time.monotonic() + grace_s
        self._signal_job(signal.SIGTERM)

    def _requested_grace_s(self, default_s: float) -> float:
        """The grace of the stop request the service wrote before signalling, else ours (a
        SIGTERM from someone else, e.g. the machine shutting down)."""
        try:
            req = read_json(self.files.terminate)
        except ValueError:
            req = None
        return float(req["grace_s"]) if req is not None else default_s

    def _supervise(self, grace_s: float) -> None:
        while any(r.status is None for r in self.ranks):
            if len(self.stop_signals) > self.handled_signals:
                sig, at = self.stop_signals[-1]
                self.handled_signals = len(self.stop_signals)
                grace = self._requested_grace_s(grace_s)
                deadline = at + grace
                self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)
                self.log(f"{signal_name(sig)} received; SIGKILL in {grace:g} s if still running")
                # The group got this signal with us; pass it on to the job's processes that left
                # the group (a wrapper that calls setsid, say), so they too can checkpoint.
                self._signal_job(sig, outside_group=True)
            if self.deadline is not None and time.monotonic() >= self.deadline:
                if not self.killed_after_grace:
                    self.log("grace period over: SIGKILL")
                    self.tell_job_log("still running at the end of the grace period: SIGKILL")
                self.killed_after_grace = True
                self._signal_job(signal.SIGKILL)
            self._reap()
            failed = [r for r in self.ranks if r.status not in (None, 0)]
            running = any(r.status is None for r in self.ranks)
            # A rank that fails while others run breaks the gang: collectives would hang.
            if failed and running and self.gang_failed is None and not self.stop_signals:
                first = min(failed, key=lambda r: r.end_seq)
                self.gang_failed = first
                self.log(f"rank {first.rank} exited with {first.status}: stopping the gang")
                self.tell_job_log(
                    f"rank {first.rank} failed ({_describe(first.status)}); "
                    "stopping the other ranks"
                )
                self._stop_gang(grace_s)
            time.sleep(POLL_S)

    def verdict(self, grace_s: float) -> dict[str, Any]:
        """exit_code (None when killed by a signal), signal, detail: one line for people."""
        n = len(self.ranks)
        if self.start_error is not None:
            rank, err = self.start_error
            start_code = 1
            if isinstance(err, FileNotFoundError):
                start_code = EXIT_NOT_FOUND
            elif isinstance(err, PermissionError):
                start_code = EXIT_NOT_EXECUTABLE
            extra = f"; stopped the {n} rank(s) already started" if n else ""
            return _v(start_code, None, f"could not start rank {rank}: {err}{extra}")
        if not self.ranks:
            return _v(None, None, "stopped before the job started")
        if self.gang_failed is not None:
            r = self.gang_failed
            code, sig = _split(r.status)
            extra = " (SIGKILL after the grace period)" if self.killed_after_grace else ""
            return _v(
                code, sig, f"rank {r.rank} {_describe(r.status)}; stopped the other ranks{extra}"
            )
        if self.killed_after_grace:
            return _v(
                None,
                signal.SIGKILL,
                f"still running {grace_s:g} s after SIGTERM: killed with SIGKILL",
            )
        # The first rank to end badly is the cause; the others usually ended because of it.
        # A gang that checkpointed (every rank 75) thus reports 75 like a single process.
        bad = sorted((r for r in self.ranks if r.status != 0), key=lambda r: r.end_seq)
        if not bad:
            return _v(
                0, None, "exited with code 0" if n == 1 else f"all {n} ranks exited with code 0"
            )
        first = bad[0]
        code, sig = _split(first.status)
        who = "" if n == 1 else f"rank {first.rank} "
        return _v(code, sig, f"{who}{_describe(first.status)}")

    def run(self) -> int:
        self._install_handlers()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        spec = read_json(self.files.spec)
        if spec is None:
            self.log(f"no {self.files.spec}")
            return 2
        # The job's env comes through our stdin, never from a file (see
        # LocalExecutor._spawn_runner): read to EOF before the launch is confirmed.
        env = read_env(sys.stdin.buffer)
        if env is None:
            self.log("the job's env did not arrive whole on stdin: starting nothing")
            self._write_exit(_v(None, None, "launch incomplete: the job's env did not arrive"))
            return 1
        spec["env"] = env
        grace_s = float(spec["grace_s"])
        if not self._await_confirmation(float(spec["confirm_timeout_s"])):
            self.log("launch not confirmed (no handle.json with our pid): starting nothing")
            self._write_exit(_v(None, None, "launch was not confirmed by the service"))
            return 1
        if not self.stop_signals:
            self._spawn(spec)
        self._supervise(grace_s)
        self._kill_stragglers()
        self._drain_logs()
        v = self.verdict(grace_s)
        self._write_exit(v)
        self.log(f"done: {v['detail']}")
        return 0

    def _write_exit(self, v: dict[str, Any]) -> None:
        write_json_atomic(
            self.files.exit,
            {
                **v,
                "ranks": [{"rank": r.rank, "pid": r.pid, "status": r.status} for r in self.ranks],
                "stop_signal": self.stop_signals[0][0] if self.stop_signals else None,
                # Every rank had exited before the stop came, and all with 0: completed.
                "ended_before_stop": bool(self.ranks)
                and all(r.rank in self.ended_before_stop and r.status == 0 for r in self.ranks),
                "killed_after_grace": self.killed_after_grace,
                "runner_pid": self.me,
                "started_at": self.started_at,
                "finished_at": time.time(),
            },
        )

    def fail(self, err: BaseException) -> None:
        """Last resort for a bug in the runner: leave nothing running, and say what happened."""
        with contextlib.suppress(Exception):
            self._signal_job(signal.SIGKILL)
            self._kill_stragglers()
        with contextlib.suppress(Exception):
            self._write_exit(_v(None, None, f"runner error: {err!r}"))


def read_env(stream: Any) -> dict[str, str] | None:
    """The env object the executor wrote into our stdin, or None if it is not whole (the
    service died while writing it) or not a str-to-str object."""
    try:
        data = json.loads(stream.read())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return None
    return data


def copy_capped(rd: int, path: Path, cap_bytes: int, keep: int) -> None:
    """Copy a pipe into `path` until EOF. When the file reaches `cap_bytes`, it is rotated
    like logrotate does: path.1 becomes path.2 (up to `keep` parts, the oldest dropped), path
    becomes path.1, and a new path starts (keep 0: the file starts over)."""
    f = open(path, "ab")  # noqa: SIM115 - reopened at every rotation
    size = f.tell()
    try:
        while True:
            try:
                data = os.read(rd, 65536)
            except InterruptedError:
                continue
            if not data:
                return
            # Fill the file to the cap, then rotate: how the job's writes were batched into
            # reads (which depends on load) must not change what the parts hold.
            while data:
                if size >= cap_bytes:
                    f.close()
                    _rotate(path, keep)
                    f = open(path, "wb")  # noqa: SIM115
                    size = 0
                piece, data = data[: cap_bytes - size], data[cap_bytes - size :]
                f.write(piece)
                size += len(piece)
            f.flush()
    finally:
        f.close()
        os.close(rd)


def _rotate(path: Path, keep: int) -> None:
    if keep <= 0:
        return
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    os.replace(path, path.with_name(f"{path.name}.1"))


def _split(status: int | None) -> tuple[int | None, int | None]:
    if status is None:
        return None, None
    return (status, None) if status >= 0 else (None, -status)


def _describe(status: int | None) -> str:
    if status is None:
        return "did not exit"
    if status >= 0:
        return f"exited with code {status}"
    return f"was killed by {signal_name(-status)}"


def _v(code: int | None, sig: int | None, detail: str) -> dict[str, Any]:
    return {"exit_code": code, "signal": sig, "detail": detail}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m cortex.executors.local.runner RUN_DIR", file=sys.stderr)
        return 2
    runner = Runner(RunFiles(Path(args[0])))
    try:
        return runner.run()
    except Exception as e:
        runner.fail(e)
        raise


if __name__ == "__main__":
    sys.exit(main())
