"""The per-node agent of a gang on Ray: one detached, named Ray actor per node of a placement,
inside that node's bundle. It starts the node's ranks as processes (the job's own command,
with torchrun's variables), sends their output to per-rank log files, waits for them, stops
the rest of the node's ranks when one fails, and keeps the verdict until the executor reads
it (also written to `node-<i>.exit.json` in the run dir, for a service that comes back after
the agent is gone).

Why an agent per node, not an actor per rank: torch's convention is that the ranks of a node
see all its GPUs and pick theirs by LOCAL_RANK; an actor holding the node's whole bundle gets
those GPUs from Ray (its CUDA_VISIBLE_DEVICES) and hands them to its ranks, as torchrun would.

The ranks die with the agent: they are spawned from the agent's watcher thread with
PR_SET_PDEATHSIG, so a killed agent (or a lost node's worker) leaves no rank training on
unallocated GPUs. That thread lives until every rank has exited."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from cortex.jobproto import EXIT_OK, EXIT_PREEMPTED

POLL_S = 0.05
PR_SET_PDEATHSIG = 1


def rank_log_paths(run_dir: Path, rank: int) -> tuple[Path, Path]:
    """Rank 0 writes stdout.log / stderr.log (what `cortex logs` shows by default, the local
    executor's names); rank R > 0 writes rank-R.stdout.log / rank-R.stderr.log."""
    if rank == 0:
        return run_dir / "stdout.log", run_dir / "stderr.log"
    return run_dir / f"rank-{rank}.stdout.log", run_dir / f"rank-{rank}.stderr.log"


def verdict_path(run_dir: Path, index: int) -> Path:
    return run_dir / f"node-{index}.exit.json"


# Looked up once here: the child between fork and exec only calls it (no dlopen, no malloc of
# ours), which is what keeps preexec_fn safe enough in a threaded process such as a Ray worker.
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _describe(rank: int, code: int | None) -> tuple[int | None, str]:
    if code is not None and code < 0:  # Popen: -N for a signal
        return None, f"rank {rank} was killed by {signal.Signals(-code).name}"
    return code, f"rank {rank} exited with code {code}"


def summarize(codes: dict[int, int | None], failed_first: int | None) -> tuple[int | None, str]:
    """One exit code for the node: 0 when every rank exited 0; the first failing rank's code
    (None for a signal) when one failed on its own; 75 when every rank that did not exit 0
    exited 75; else the lowest failing rank's."""
    if failed_first is not None:
        code, detail = _describe(failed_first, codes.get(failed_first))
        if len(codes) > 1:
            detail += "; stopped the other ranks"
        return code, detail
    if all(c == EXIT_OK for c in codes.values()):
        return EXIT_OK, ""
    if all(c in (EXIT_OK, EXIT_PREEMPTED) for c in codes.values()):
        return EXIT_PREEMPTED, "checkpointed (exit 75)"
    rank = min(r for r, c in codes.items() if c not in (EXIT_OK, EXIT_PREEMPTED))
    return _describe(rank, codes[rank])


class NodeAgent:
    def __init__(
        self, job_id: int, attempt: int, index: int, node: str, ranks: list[int], run_dir: str
    ) -> None:
        self.job_id, self.attempt, self.index, self.node = job_id, attempt, index, node
        self.ranks = list(ranks)
        self.run_dir = Path(run_dir)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.codes: dict[int, int | None] = {}
        self.failed_first: int | None = None
        self.stop_at: float | None = None  # wall time of the SIGTERM
        self.kill_at: float | None = None  # monotonic SIGKILL deadline
        self.verdict: dict[str, Any] | None = None
        self.started = threading.Event()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.peer_failed = False  # stopped because another node of the gang failed

    # -- identity --------------------------------------------------------------------------
    def where(self) -> dict[str, Any]:
        import ray

        return {
            "node": self.node,
            "ip": ray.util.get_node_ip_address(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "pid": os.getpid(),
        }

    def master(self) -> tuple[str, int]:
        """This node's address and a port free on it now: rank 0's rendezvous point."""
        import ray

        ip = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((ip, 0))
            return ip, int(s.getsockname()[1])

    # -- running ---------------------------------------------------------------------------
    def start(
        self, command: list[str], env: dict[str, str], cwd: str | None, rendezvous: dict[str, Any]
    ) -> list[int]:
        """Start this node's ranks (once: a second call returns the same pids)."""
        with self.lock:
            if not self.started.is_set() and self.stop_at is not None:
                # A stop overtook the start (an actor runs concurrent calls in any order): no
                # rank starts, and the node reports a checkpointed exit (75), none lost.
                self.codes = dict.fromkeys(self.ranks, EXIT_PREEMPTED)
                self._finish()
                self.started.set()
            elif not self.started.is_set():
                ready = threading.Event()
                args = (command, env, cwd, rendezvous, ready)
                threading.Thread(target=self._watch, args=args, daemon=True).start()
                ready.wait()
                self.started.set()
        return [p.pid for p in self.procs.values()]

    def _rank_env(self, env: dict[str, str], rdv: dict[str, Any], local: int) -> dict[str, str]:
        import ray

        out = dict(env)
        gpus = [str(g) for g in ray.get_gpu_ids()]
        if gpus:  # the GPUs Ray gave this node's bundle: the node's allocation
            out["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        out.update(
            MASTER_ADDR=str(rdv["master_addr"]),
            MASTER_PORT=str(rdv["master_port"]),
            WORLD_SIZE=str(rdv["world_size"]),
            RANK=str(self.ranks[local]),
            LOCAL_RANK=str(local),
            LOCAL_WORLD_SIZE=str(len(self.ranks)),
            GROUP_RANK=str(self.index),
            CORTEX_NODE=self.node,
        )
        return out

    def _spawn(self, command: list[str], env: dict[str, str], cwd: str | None, rdv: Any) -> None:
        for local, rank in enumerate(self.ranks):
            out, err = rank_log_paths(self.run_dir, rank)
            try:  # the log files too: a run dir this node cannot write fails the rank
                fo, fe = out.open("ab"), err.open("ab")
            except OSError:
                self.codes[rank] = 127
                self.failed_first = rank if self.failed_first is None else self.failed_first
                continue
            with fo, fe:
                try:
                    self.procs[rank] = subprocess.Popen(
                        command,
                        env=self._rank_env(env, rdv, local),
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=fo,
                        stderr=fe,
                        start_new_session=True,
                        # No subprocess option sets the parent-death signal (see above).
                        preexec_fn=_die_with_parent,  # noqa: PLW1509
                    )
                except OSError as e:
                    fe.write(f"[cortex agent] could not start rank {rank}: {e}\n".encode())
                    self.codes[rank] = 127
                    self.failed_first = rank if self.failed_first is None else self.failed_first

    def _watch(
        self,
        command: list[str],
        env: dict[str, str],
        cwd: str | None,
        rdv: Any,
        ready: threading.Event,
    ) -> None:
        try:
            try:
                self._spawn(command, env, cwd, rdv)
            finally:
                ready.set()
            self._reap(rdv)
        finally:
            if not self.done.is_set():  # whatever went wrong, the node reports a verdict
                self._signal(signal.SIGKILL)  # and leaves no rank behind
                for rank in self.ranks:
                    self.codes.setdefault(rank, None)
                self._finish()

    def _reap(self, rdv: Any) -> None:
        """Collect the ranks' exits; a rank failing on its own stops the node's others."""
        if self.failed_first is not None:
            self.stop(float(rdv.get("grace_s", 30.0)), gang=True)
        while len(self.codes) < len(self.ranks):
            for rank, p in self.procs.items():
                if rank not in self.codes and p.poll() is not None:
                    self.codes[rank] = p.returncode
                    failed = p.returncode not in (EXIT_OK, EXIT_PREEMPTED)
                    # A rank that dies of the stop we were asked for has not failed.
                    asked = self.stop_at is not None or self.peer_failed
                    if failed and self.failed_first is None and not asked:
                        self.failed_first = rank
                        self.stop(float(rdv.get("grace_s", 30.0)), gang=True)
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                self._signal(signal.SIGKILL)
            time.sleep(POLL_S)

    def _finish(self) -> None:
        code, detail = summarize(self.codes, self.failed_first)
        self.verdict = {
            "node": self.node,
            "index": self.index,
            "codes": {str(r): c for r, c in sorted(self.codes.items())},
            "exit_code": code,
            "detail": detail,
            "stop_signal": self.stop_at,
            "failed_rank": self.failed_first,  # a rank of this node failed on its own
        }
        path = verdict_path(self.run_dir, self.index)
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(self.verdict))
            os.replace(tmp, path)
        self.done.set()

    # -- stopping --------------------------------------------------------------------------
    def _signal(self, sig: int) -> None:
        for rank, p in self.procs.items():
            if rank not in self.codes:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)

    def stop(self, grace_s: float, gang: bool = False) -> bool:
        """SIGTERM every rank still running (once), SIGKILL after `grace_s`; a later request
        never extends the deadline. `gang`: the agent's own stop after a rank failed."""
        with self.lock:
            deadline = time.monotonic() + max(0.0, grace_s)
            self.kill_at = deadline if self.kill_at is None else min(self.kill_at, deadline)
            if self.stop_at is None and not gang:
                self.stop_at = time.time()
                self._signal(signal.SIGTERM)
            elif gang:
                self._signal(signal.SIGTERM)
        return not self.done.is_set()

    def stop_gang(self, grace_s: float) -> bool:
        """Another node of the gang failed: stop this node's ranks; their exits are not
        failures of their own."""
        self.peer_failed = True
        return self.stop(grace_s, gang=True)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    # -- reading ---------------------------------------------------------------------------
    def wait(self, timeout_s: float) -> dict[str, Any] | None:
        """The verdict once every rank of this node has exited (None after `timeout_s`)."""
        if not self.started.wait(timeout_s):
            return None
        self.done.wait(timeout_s)
        return self.verdict

    def status(self) -> dict[str, Any]:
        return {
            "started": self.started.is_set(),
            "done": self.done.is_set(),
            "stopping": self.stop_at is not None,
        }
