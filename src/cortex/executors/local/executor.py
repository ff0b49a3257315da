"""The local executor: runs jobs as real processes on this machine, and finds them again after the
service restarts.

Each run (one attempt of one job) is a runner process (runner.py in this package, which says why it
exists) in its own session, with the job's processes under it in its process group. The run dir
(rundir.py) is the record: spec, handle, stop request, exit verdict, logs. This
object keeps no state that the run dirs do not also hold, so a kill -9 of the service at any time
loses nothing: a new executor adopt()s the handles the store kept, and live_handles() finds any
run the store never heard of.

No threads: the SIGKILL after a stop's grace period is enforced by the runner itself and, as a
backstop should the runner be gone, by later poll() calls. Call poll() at least every tick;
next_deadline_s() says when a call is due."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cortex
from cortex.executors.local import gpus as gpu_discovery
from cortex.executors.local.procfs import boot_id, job_running, proc_stat, same_process
from cortex.executors.local.rundir import (
    RunFiles,
    RunState,
    job_dir,
    read_json,
    run_dir,
    write_json_atomic,
)
from cortex.executors.local.users import RunAs, UserMap, base_env
from cortex.executors.spec import (
    CPU_FLAVOR,
    ENV_ATTEMPT,
    ENV_VISIBLE_SLOTS,
    RESERVED_ENV,
    TORCHRUN_ENV,
    ExitRecord,
    Handle,
    Inventory,
    LaunchSpec,
    Outcome,
    StopReason,
    job_env,
    outcome_for,
)
from cortex.jobproto import EXIT_OK

__all__ = [
    "CPU_FLAVOR",
    "ENV_ATTEMPT",
    "ENV_VISIBLE_SLOTS",
    "RESERVED_ENV",
    "TORCHRUN_ENV",
    "ExitRecord",
    "Handle",
    "Inventory",
    "LaunchSpec",
    "LocalExecutor",
    "Outcome",
    "StopReason",
    "job_env",
    "outcome_for",
]

log = logging.getLogger(__name__)

BACKSTOP_S = 1.0  # poll() SIGKILLs this long after the runner should have (runner gone or stuck)
EXITING_S = 5.0  # a runner that wrote its verdict but is still alive after this is killed
LOG_CAP_BYTES = 256 * 1024 * 1024  # per log file of an attempt, before rotation
LOG_KEEP = 2  # rotated parts kept: stdout.log.1, stdout.log.2
CONFIRM_TIMEOUT_S = 30.0  # a runner whose launch is not confirmed by then starts nothing


class LocalExecutor:
    def __init__(
        self,
        root_dir: Path,
        *,
        grace_s: float = 30.0,
        run_as: Mapping[str, str] | None = None,
        allow_same_user: bool = False,
        log_cap_bytes: int | None = LOG_CAP_BYTES,
        log_keep: int = LOG_KEEP,
    ) -> None:
        """`run_as` maps a team to the Unix user its jobs run as (`*`: any other team); a job
        that would run as this process's own user is refused unless `allow_same_user`
        (cortex.executors.local.users). `log_cap_bytes` caps each log file of an attempt; the
        runner rotates it, keeping `log_keep` older parts (None: no cap)."""
        if grace_s < 0:
            raise ValueError(f"grace_s: must be >= 0, got {grace_s}")
        if log_cap_bytes is not None and log_cap_bytes < 1024:
            raise ValueError(f"log_cap_bytes: must be at least 1024, got {log_cap_bytes}")
        if log_keep < 0:
            raise ValueError(f"log_keep: must be >= 0, got {log_keep}")
        self.users = UserMap(run_as, allow_same_user)
        self.log_cap_bytes, self.log_keep = log_cap_bytes, int(log_keep)
        # Absolute: handles name paths under it, and a restarted service may have another cwd.
        self.root = Path(root_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Only the service reads run dirs; jobs of other users may traverse (not list) the
        # way to their own checkpoint dir.
        self._dir_mode = 0o711 if self.users.isolated else 0o700
        os.chmod(self.root, self._dir_mode)
        self.grace_s = float(grace_s)
        self._runs: dict[tuple[int, int], RunState] = {}
        self._zombies: dict[int, int] = {}  # pid -> start_ticks: killed orphans still to reap
        _scrub_old_specs(self.root)

    # -- discovery -------------------------------------------------------------------------
    @staticmethod
    def discover(slots: int | None = None, *, gpus: bool = True) -> Inventory:
        """GPUs through NVML when there are any (and `gpus`), else `slots` CPU slots (default:
        the CPUs this process may run on)."""
        found = gpu_discovery.discover_gpus() if gpus else []
        if found:
            return Inventory(
                kind="gpu",
                flavor=gpu_discovery.flavor_for(found[0].name),
                count=len(found),
                devices=[g.index for g in found],
                memory_gb=min(g.memory_gb for g in found),
            )
        if slots is None:
            slots = len(os.sched_getaffinity(0)) or os.cpu_count() or 1
        if not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots: must be a positive integer, got {slots!r}")
        return Inventory(kind="cpu", flavor=CPU_FLAVOR, count=slots, devices=list(range(slots)))

    # -- paths -----------------------------------------------------------------------------
    def log_paths(self, job_id: int, attempt: int) -> tuple[Path, Path]:
        """stdout, stderr of one attempt. Each attempt has its own files (all ranks of a gang
        share them); the files exist from launch() on."""
        f = RunFiles(run_dir(self.root, job_id, attempt))
        return f.stdout, f.stderr

    def checkpoint_dir(self, job_id: int) -> Path:
        return job_dir(self.root, job_id) / "checkpoints"

    def metrics_file(self, job_id: int) -> Path:
        return job_dir(self.root, job_id) / "metrics.jsonl"

    # -- launch ----------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> Handle:
        """Start one attempt. Returns once the runner is running and its handle is on disk; the
        job's processes start a few tens of ms later. An attempt can be launched only once (its
        run dir is created exclusively), so a retry after a crash cannot run it twice."""
        spec.validate()
        user = self.users.for_team(spec.team)  # PrivilegeError before anything is made
        key = (spec.job_id, spec.attempt)
        if key in self._runs:
            raise ValueError(f"attempt: job {spec.job_id} attempt {spec.attempt} is running")
        files = RunFiles(run_dir(self.root, spec.job_id, spec.attempt))
        files.dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (self.root / "jobs", job_dir(self.root, spec.job_id)):
            os.chmod(d, self._dir_mode)
        try:
            files.dir.mkdir(mode=0o700)
        except FileExistsError:
            raise ValueError(
                f"attempt: job {spec.job_id} attempt {spec.attempt} was already launched "
                f"({files.dir} exists); use a new attempt number"
            ) from None
        try:
            return self._launch_in(files, spec, user)
        except BaseException:
            # Nothing started (or it was killed): leave no half-made run dir that would block
            # a retry of the same attempt or be mistaken for a run.
            shutil.rmtree(files.dir, ignore_errors=True)
            raise

    def _job_owned(self, spec: LaunchSpec, user: RunAs) -> tuple[Path, Path]:
        """The checkpoint dir and metrics file: the job's to write, no other user's to read."""
        ckpt = (
            Path(spec.checkpoint_dir) if spec.checkpoint_dir else self.checkpoint_dir(spec.job_id)
        )
        ckpt.mkdir(parents=True, exist_ok=True, mode=0o700)
        metrics = self.metrics_file(spec.job_id)
        if not metrics.exists():
            os.close(os.open(metrics, os.O_WRONLY | os.O_CREAT, 0o600))
        if user.uid != os.geteuid():
            for p in (ckpt, metrics):
                os.chown(p, user.uid, user.gid)
        return ckpt, metrics

    def _launch_in(self, files: RunFiles, spec: LaunchSpec, user: RunAs) -> Handle:
        ckpt, metrics = self._job_owned(spec, user)
        env = job_env(
            spec,
            base=base_env(user, os.environ),
            checkpoint_dir=ckpt.resolve(),
            metrics_file=metrics.resolve(),
        )
        write_json_atomic(
            files.spec,
            durable=False,
            data={
                "job_id": spec.job_id,
                "attempt": spec.attempt,
                "command": list(spec.command),
                # The env (the job's secrets among it) is not here: see _spawn_runner.
                "env_names": sorted(env),
                "working_dir": spec.working_dir,
                "nprocs": spec.nprocs,
                "grace_s": self.grace_s,
                "confirm_timeout_s": CONFIRM_TIMEOUT_S,
                # The runner starts the job's processes as this user (None: its own).
                "run_as": (
                    {"uid": user.uid, "gid": user.gid} if user.uid != os.geteuid() else None
                ),
                "log_cap_bytes": self.log_cap_bytes,
                "log_keep": self.log_keep,
            },
        )
        for p in (files.stdout, files.stderr):
            p.touch(mode=0o600)
        pid = self._spawn_runner(files, env)
        # Our child, not reaped yet: its /proc entry exists even if it has already exited.
        st = proc_stat(pid)
        if st is None:
            raise RuntimeError(f"runner {pid} vanished before it could be identified")
        handle = Handle(
            job_id=spec.job_id,
            attempt=spec.attempt,
            pid=pid,
            pgid=pid,
            start_ticks=st.start_ticks,
            boot_id=boot_id(),
            run_dir=str(files.dir),
            stdout_path=str(files.stdout),
            stderr_path=str(files.stderr),
            devices=tuple(spec.devices),
        )
        try:
            # The runner waits for this file before it starts the job (see runner.py).
            write_json_atomic(files.handle, handle.to_dict(), durable=False)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        self._runs[(spec.job_id, spec.attempt)] = RunState(handle=handle, files=files)
        log.info("launched job %s attempt %s: runner pid %s", spec.job_id, spec.attempt, pid)
        return handle

    def _spawn_runner(self, files: RunFiles, job_env: Mapping[str, str]) -> int:
        """Start the runner and hand it the job's env through a pipe on its stdin.

        Why a pipe: the env holds the job's secrets in the clear (decrypted from the store), and
        a file of them, however private, outlives the run on disk (run dirs are kept) and is one
        more place a backup or a mistake can leak. The pipe is never on disk, only the runner
        (root or the service's user) can read it, and its contents are gone once read; the
        runner hands the env only to the job's own processes. Also no key to manage, unlike an
        encrypted file. The write happens before handle.json confirms the launch, so a runner
        never starts a job with half an env (it reads to EOF and refuses a torn JSON). An env
        under the pipe's 64 KiB buffer is written at once; a larger one waits for the runner to
        read, which it does first thing (and a runner that died gives EPIPE, not a hang)."""
        # posix_spawn, not subprocess.Popen: a Popen object that is dropped while its child runs
        # warns, and dropping it is exactly what happens to every runner when the service
        # restarts. setsid: the runner leads a new session and process group, detached from the
        # service's terminal and signals.
        src = str(Path(cortex.__file__).resolve().parent.parent)
        env = base_env(self.users.me, os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        log_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        rd, wr = os.pipe()  # both close-on-exec: the runner gets rd only as its fd 0
        try:
            pid = self._posix_spawn(files, env, rd, log_flags)
        except BaseException:
            os.close(wr)
            raise
        finally:
            os.close(rd)
        try:
            with os.fdopen(wr, "wb") as pipe:
                pipe.write(json.dumps(dict(job_env)).encode())
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        return pid

    def _posix_spawn(self, files: RunFiles, env: dict[str, str], rd: int, log_flags: int) -> int:
        return os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "cortex.executors.local.runner", str(files.dir)],
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, rd, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(files.runner_log), log_flags, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
            # Python ignores SIGPIPE and SIGXFSZ, and a service may ignore or handle others;
            # the runner and the job start with the defaults, as from a shell.
            setsigdef=(
                signal.SIGPIPE,
                signal.SIGXFSZ,
                signal.SIGCHLD,
                signal.SIGTERM,
                signal.SIGINT,
                signal.SIGHUP,
                signal.SIGQUIT,
            ),
            # Blocked until the runner has its handlers (see Runner._install_handlers).
            setsigmask=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP),
        )

    # -- stopping --------------------------------------------------------------------------
    def terminate(
        self, job_id: int, attempt: int, reason: str, *, grace_s: float | None = None
    ) -> bool:
        """SIGTERM the run's whole process group; SIGKILL it after the grace period (`grace_s`,
        default the executor's). Idempotent, including across a restart: the group gets one
        SIGTERM per run, however often this is called (a second one could interrupt the job's
        checkpoint handler). A cancel after a preempt turns the stop into a cancel; a later
        request never extends the deadline. Returns False when there is nothing to stop: not
        running under this executor, or its verdict is already written (then poll() reports
        how it really ended)."""
        if reason not in ("preempt", "cancel"):
            raise ValueError(f"reason: must be 'preempt' or 'cancel', got {reason!r}")
        grace = self.grace_s if grace_s is None else float(grace_s)
        if grace < 0:
            raise ValueError(f"grace_s: must be >= 0, got {grace_s}")
        run = self._runs.get((job_id, attempt))
        if run is None or run.dead or run.files.exit.exists():
            return False
        stop: StopReason = "cancel" if "cancel" in (reason, run.stop) else "preempt"
        now_wall, now = time.time(), time.monotonic()
        kill_at = now + grace + BACKSTOP_S
        if run.kill_at is not None:
            kill_at = min(kill_at, run.kill_at)
        run.stop, run.kill_at = stop, kill_at
        # Written before the signal: the runner reads the grace from it, and a restarted
        # service reads the reason, the deadline and whether the SIGTERM went out.
        self._write_stop(run, grace, now_wall + (kill_at - now))
        if run.signalled_at is None:
            run.job_running = job_running(run.handle.pid, run.handle.pgid)
            self._signal_group(run.handle, signal.SIGTERM)
            run.signalled_at = time.time()
            self._write_stop(run, grace, now_wall + (kill_at - now))
        log.info("job %s attempt %s: %s, grace %g s", job_id, attempt, stop, grace)
        return True

    @staticmethod
    def _write_stop(run: RunState, grace_s: float, kill_at_wall: float) -> None:
        write_json_atomic(
            run.files.terminate,
            durable=False,
            data={
                "reason": run.stop,
                "grace_s": grace_s,
                "kill_at_wall": kill_at_wall,
                "signalled_at": run.signalled_at,
                "job_running": run.job_running,
            },
        )

    def kill(self, h: Handle) -> None:
        """SIGKILL the run's whole group now and forget it: for an orphan the store does not
        want. No ExitRecord follows."""
        self._runs.pop((h.job_id, h.attempt), None)
        self._signal_group(h, signal.SIGKILL)
        if same_process(h.pid, h.start_ticks) is not None:
            self._zombies[h.pid] = h.start_ticks
        self._reap_zombies()

    def _signal_group(self, h: Handle, sig: int) -> bool:
        """Signal the run's process group, if it is still this run's. The group id is the
        runner's pid; while any member lives, Linux does not hand that number to a new process,
        but once all are gone it may, and a new process can lead a group of that number. So:
        the runner alive (same start time) or no process at all with that pid - never a
        different process that now has it."""
        if h.boot_id != boot_id():
            return False
        st = proc_stat(h.pid)
        if st is not None and st.start_ticks != h.start_ticks:
            return False
        try:
            os.killpg(h.pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError as e:
            log.warning("cannot signal process group %s: %s", h.pgid, e)
            return False
        return True

    # -- watching --------------------------------------------------------------------------
    def poll(self) -> list[ExitRecord]:
        """Exits since the last call, each reported once by this executor (after a restart, a
        run adopted again reports again: the store must apply exits idempotently). Never
        blocks; also reaps our exited runners and enforces stop deadlines."""
        out: list[ExitRecord] = []
        now = time.monotonic()
        for key, run in list(self._runs.items()):
            rec = self._check(run, now)
            if rec is not None:
                del self._runs[key]
                out.append(rec)
        self._reap_zombies()
        return out

    def next_deadline_s(self) -> float | None:
        """Seconds until poll() next has a SIGKILL to enforce, for an event-driven loop."""
        times = [r.kill_at for r in self._runs.values() if r.kill_at is not None]
        return max(0.0, min(times) - time.monotonic()) if times else None

    def running(self) -> list[Handle]:
        """Handles of the runs this executor watches (launched or adopted, exit not reported)."""
        return [r.handle for r in self._runs.values()]

    def _alive(self, run: RunState) -> bool:
        """Is the runner still running? Reaps it if it is our exited child. The start time is
        checked first: waitpid() on a reused pid could reap a different child of ours."""
        if run.dead:
            return False
        h = run.handle
        st = same_process(h.pid, h.start_ticks) if h.boot_id == boot_id() else None
        if st is not None and not st.finished:
            return True
        if st is not None:  # a zombie: ours to reap, if we are its parent
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(h.pid, os.WNOHANG)
                if pid == h.pid:
                    run.runner_status = status
        run.dead = True
        return False

    def _check(self, run: RunState, now: float) -> ExitRecord | None:
        verdict = self._read_verdict(run)
        alive = self._alive(run)
        if alive:
            if verdict is not None:
                # The runner writes its verdict last and exits right after; give it a moment.
                run.verdict_seen_at = run.verdict_seen_at or now
                if now - run.verdict_seen_at > EXITING_S:
                    self._signal_group(run.handle, signal.SIGKILL)
            elif run.kill_at is not None and now >= run.kill_at:
                # Backstop: the runner should have done this at the end of the grace period.
                if "backstop" not in run.notes:
                    run.notes.append("backstop")
                    log.warning("job %s: runner did not stop it in time", run.handle.job_id)
                self._signal_group(run.handle, signal.SIGKILL)
            return None
        if verdict is None:
            verdict = self._read_verdict(run)  # it may have written it just before exiting
        h = run.handle
        if verdict is None:
            # The runner died without a verdict (SIGKILLed by our backstop or by the kernel's
            # OOM killer, say). Kill what it left, so the job cannot run on unallocated.
            self._signal_group(h, signal.SIGKILL)
            how = "the runner exited without recording how the job ended"
            if run.runner_status is not None:
                code = os.waitstatus_to_exitcode(run.runner_status)
                how += f" (runner status {code})"
            if "backstop" in run.notes:
                how = "still running after the grace period: killed with SIGKILL"
            return self._record(run, None, how, stop=run.stop)
        exit_code = verdict.get("exit_code")
        stop = run.stop
        # The runner sees which ranks had exited when its handler ran, which can be after a
        # rank that trapped the same group signal exited 0 on it: what we saw just before
        # signalling decides over that.
        ended = verdict.get("ended_before_stop") is True and run.job_running is not True
        if (
            stop == "preempt"
            and exit_code == EXIT_OK
            and (verdict.get("stop_signal") is None or ended)
        ):
            # The runner, in the same process group, never got the SIGTERM, or every rank had
            # exited 0 before it was sent: the job had finished before the preemption reached
            # it. Rerunning it would run it twice. (A cancel stays a cancel: the user asked.)
            stop = None
        return self._record(run, exit_code, str(verdict.get("detail", "")), stop=stop)

    def _record(
        self, run: RunState, exit_code: int | None, detail: str, *, stop: StopReason | None
    ) -> ExitRecord:
        h = run.handle
        if run.stop is not None:
            detail = f"{run.stop} requested; {detail}"
        outcome = outcome_for(stop, exit_code)
        log.info("job %s attempt %s: %s (%s)", h.job_id, h.attempt, outcome, detail)
        return ExitRecord(h.job_id, h.attempt, outcome, exit_code, detail)

    @staticmethod
    def _read_verdict(run: RunState) -> dict[str, Any] | None:
        try:
            return read_json(run.files.exit)
        except ValueError as e:  # not a verdict we wrote; report it rather than crash the loop
            return {"exit_code": None, "detail": f"unreadable exit record: {e}"}

    def _reap_zombies(self) -> None:
        for pid, ticks in list(self._zombies.items()):
            st = same_process(pid, ticks)
            if st is None:
                del self._zombies[pid]
            elif st.finished:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                del self._zombies[pid]

    # -- after a restart -------------------------------------------------------------------
    def adopt(self, h: Handle) -> bool:
        """Watch a run started by an earlier service (or an earlier executor object). True if
        its runner is still the process the handle names (pid and start time, same boot) or its
        verdict is on disk: poll() will report its exit. False if it is gone with no verdict:
        whatever it left running is killed, and the caller marks it failed and requeues it."""
        key = (h.job_id, h.attempt)
        if key in self._runs:
            return True
        files = RunFiles(Path(h.run_dir))
        run = RunState(handle=h, files=files)
        try:
            req = read_json(files.terminate)
        except ValueError:
            req = None
        if req is not None and req.get("reason") in ("preempt", "cancel"):
            run.stop = req["reason"]
            run.signalled_at, run.job_running = req.get("signalled_at"), req.get("job_running")
            if run.signalled_at is not None:
                # Not before: the grace period starts when the SIGTERM goes out (terminate()).
                remaining = float(req.get("kill_at_wall", 0.0)) - time.time()
                run.kill_at = time.monotonic() + max(0.0, remaining)
        if self._alive(run) or self._read_verdict(run) is not None:
            self._runs[key] = run
            return True
        # Gone without a verdict. Its group may still hold processes (a runner killed on its
        # own leaves its job running): they must not run on beside the requeued job.
        self._signal_group(h, signal.SIGKILL)
        return False

    def find_run(self, job_id: int, attempt: int) -> Handle | None:
        """The handle in this attempt's run dir, whether its runner still runs or has written
        its verdict and exited: recovery adopts it even when the store never got the handle
        (a service killed between launch() and its commit), so that how it ended is recorded
        and a finished run is not run again."""
        try:
            data = read_json(RunFiles(run_dir(self.root, job_id, attempt)).handle)
            h = Handle.from_dict(data) if data is not None else None
        except ValueError:
            return None
        if h is None or (h.job_id, h.attempt) != (job_id, attempt):
            return None
        return h

    def live_handles(self) -> list[Handle]:
        """Every run under root_dir whose runner is still running, whether or not the store
        knows it (a service killed between launch() and its commit leaves one it does not):
        adopt() those the store wants, kill() the rest."""
        out: list[Handle] = []
        for path in sorted(self.root.glob("jobs/*/attempts/*/handle.json")):
            try:
                data = read_json(path)
                h = Handle.from_dict(data) if data is not None else None
            except ValueError:
                continue
            if h is not None and h.boot_id == boot_id():
                st = same_process(h.pid, h.start_ticks)
                if st is not None and not st.finished:
                    out.append(h)
        return out


SCRUBBED_MARK = ".spec-env-scrubbed-v1"


def _scrub_old_specs(root: Path) -> None:
    """Run dirs from before the env went through the runner's stdin hold the job's decrypted
    env in spec.json. Once per executor root (a marker file), drop it from every spec.json,
    keeping only the names, so an upgrade leaves no secret on disk."""
    mark = root / SCRUBBED_MARK
    if mark.exists():
        return
    for path in root.glob("jobs/*/attempts/*/spec.json"):
        try:
            spec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(spec, dict) and isinstance(spec.get("env"), dict):
            spec["env_names"] = sorted(spec.pop("env"))
            write_json_atomic(path, spec)
    mark.touch(mode=0o600)
