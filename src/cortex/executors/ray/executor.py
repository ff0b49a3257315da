"""The Ray executor: the executor interface (executors/base.py) on a Ray cluster.

A launch is a detached, named placement group with one bundle per node of the scheduler's
placement, pinned by the `cortex.node` label; once Ray has created it, one detached, named
agent actor per bundle (agent.py) starts that node's ranks. Nothing here blocks on Ray:
launch() returns once the handle is on disk, and the calls that wait for the GCS (creating
the group and agents, tearing a gang down) run on a worker thread (worker.py, launching.py),
the group's state at its placement timeout on a reads thread (a hung read holds no launch),
the calls to the agents (start, wait, stop) on a thread of their own, in order; poll() moves
each gang on (launching -> placing -> starting -> running -> ended) with non-blocking waits,
so a slow or full cluster never stalls the loop.

- A placement group Ray has not created within `pg_timeout_s` is removed and the run reported
  failed with that reason (Ray itself would leave it pending forever); the loop requeues it.
  A launch whose Ray calls raised is reported failed the same way ("launch failed: ...").
- terminate(): every agent SIGTERMs its ranks and SIGKILLs them after the grace period (the
  agent enforces it, so it holds while the service is down); poll() then kills the actors and
  removes the placement group. Exit 75 from the ranks is "checkpointed": preempted. A gang
  stopped while it is still launching is torn down before any rank starts.
- A lost node (its agent dies with it) ends the run as failed, naming the node.
- Names carry job id and attempt (gang.py), so after a kill -9 of the service, live_handles()
  and adopt() find the gangs by name; the run dir is created exclusively, so an attempt is
  launched once.

The run dirs (logs, checkpoints, verdicts) must be on a file system every Ray node shares, as
a job's checkpoints must be for it to resume on another node."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.placement_group import remove_placement_group

from cortex.executors.local.rundir import job_dir, run_dir, write_json_atomic
from cortex.executors.nodes import NodeInfo
from cortex.executors.ray import gang as g
from cortex.executors.ray.adoption import AdoptionMixin
from cortex.executors.ray.agent import NodeAgent, rank_log_paths
from cortex.executors.ray.fleet import DEFAULT_FLAVOR, IgnoredLog
from cortex.executors.ray.headloss import HeadMixin
from cortex.executors.ray.launching import LaunchMixin, stopped_check
from cortex.executors.ray.membership import MembershipMixin
from cortex.executors.ray.offline import Backoff
from cortex.executors.ray.runs import Gang, named_pg, probe, read_verdict, short
from cortex.executors.ray.worker import RayWorker
from cortex.executors.spec import (
    ExitRecord,
    GangHandle,
    StopReason,
    outcome_for,
)
from cortex.jobproto import EXIT_OK, EXIT_PREEMPTED

log = logging.getLogger(__name__)

KIND = "ray"
NAMESPACE = "cortex"
PG_TIMEOUT_S = 30.0
BACKSTOP_S = 1.0  # poll() kills the actors this long after the agents should have
WAIT_S = 3600.0  # one agent.wait() call; re-issued while the ranks run
CALL_TIMEOUT_S = 10.0  # a blocking call to an agent (adoption only)
# From a placed group to its agents answering: a Ray worker process per agent has to start.
START_TIMEOUT_S = 120.0


class RayExecutor(LaunchMixin, AdoptionMixin, MembershipMixin, HeadMixin):
    def __init__(
        self,
        root_dir: Path,
        address: str | None,
        *,
        grace_s: float = 30.0,
        pg_timeout_s: float = PG_TIMEOUT_S,
        namespace: str = NAMESPACE,
        default_flavor: str = DEFAULT_FLAVOR,
        connect: bool = True,
        inline_calls: bool = False,
    ) -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s: must be >= 0, got {grace_s}")
        if pg_timeout_s <= 0:
            raise ValueError(f"pg_timeout_s: must be > 0, got {pg_timeout_s}")
        self.root = Path(root_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.address = address
        self.grace_s = float(grace_s)
        self.pg_timeout_s = float(pg_timeout_s)
        self.namespace = namespace
        self.default_flavor = default_flavor
        self._gangs: dict[tuple[int, int], Gang] = {}
        self._alive: dict[str, bool] = {}  # node name -> last seen alive
        self._ray_ids: dict[str, str] = {}  # node name -> its Ray node id at the last read
        # Nodes a gang lost, with the Ray id they had: down at once, and up again only under a
        # new Ray id (Ray marks a node dead seconds after its actors died with it).
        # An actor can also die alone (its worker killed): after LOST_HOLD_S with Ray still
        # calling the same node alive, the node is taken back.
        self._lost: dict[str, tuple[str | None, float]] = {}
        self._changes: list[tuple[str, bool]] = []
        # Adopted while the cluster was unreachable: checked once it is back (see adopt()).
        self._unverified: dict[tuple[int, int], Gang] = {}
        self._fleet: list[NodeInfo] | None = None  # membership.py; None: no node seen yet
        self.fleet_version = 0
        self._fleet_read = float("-inf")
        self._head_probed = float("-inf")
        self._orphans: list[GangHandle] = []  # failed by a head loss; torn down on reconnection
        self._lost_exits: list[ExitRecord] = []  # their records, for the next poll()
        self._shutdown: threading.Thread | None = None
        self._ignored = IgnoredLog()
        self._agent_cls = ray.remote(NodeAgent)
        # The GCS calls of launches and teardowns (worker.py); inline_calls makes them block
        # in launch() and poll() as they did before (benchmarks' before/after).
        self._worker = RayWorker(inline=inline_calls)
        # The calls to the agents (start, wait, stop: task submissions, ~1.5 ms a gang start)
        # on a thread of their own, in order: never behind a slow GCS call on the worker.
        self._calls = RayWorker(inline=inline_calls, name="ray-calls")
        # The GCS reads (a placing group's state) on a third: a read the GCS leaves hanging
        # holds only the reads behind it, never a launch or a teardown.
        self._reads = RayWorker(inline=inline_calls, name="ray-reads")
        self.connected = False
        self._backoff = Backoff()
        self._joining: Future[None] | None = None  # ray.init on its thread (_reconnect)
        if connect:
            self.connect()

    # -- connection and fleet --------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster as a driver (raises ConnectionError when it is unreachable)."""
        self._join()
        self.connected = True

    def _join(self) -> None:
        probe(self.address)
        if not ray.is_initialized():
            ray.init(
                address=self.address,
                namespace=self.namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )

    def retry_later(self) -> None:
        """connect() failed (the caller logged it): poll() tries again after the backoff."""
        self._backoff.later()

    def _reconnect(self) -> bool:
        """Connected, or a reconnection attempt moved on (with backoff). The probe runs here (it
        fails at once while nothing listens); `ray.init` runs on a thread of its own once the
        head answers: it held the tick 30-36 s while a cluster was still starting."""
        if self.connected or self._shutting_down():
            return self.connected
        joining = self._joining
        if joining is None:
            if not self._backoff.due():
                return False
            try:
                probe(self.address)
            except ConnectionError as err:
                self._backoff.failed(self.address, err)
                return False
            self._joining = joining = RayWorker(name="ray-connect").submit(self._join)
        if not joining.done():
            return False
        self._joining = None
        failure = joining.exception()
        if failure is not None:  # whatever it was: tried again after the backoff
            self._backoff.failed(self.address, failure)
            return False
        self.connected = True
        log.warning("ray: connected to %s", self.address or "auto")
        self._backoff = Backoff()  # a later loss starts again from the first delay
        self._clear_orphans()
        self._fleet_read = float("-inf")  # read the nodes at the next node_changes()
        return True

    def _verify_adopted(self) -> list[ExitRecord]:
        """Gangs adopted while the cluster was unreachable: watched if they still run (or left
        their verdicts), else torn down and reported failed, so the loop requeues them."""
        out = []
        for key, gang in list(self._unverified.items()):
            del self._unverified[key]
            if self._reattach(gang):
                self._gangs[key] = gang
                continue
            self._teardown(gang.handle)
            why = "lost while the Ray cluster was unreachable"
            # The cluster lost it (no verdict left): not the job's failure, as a head loss.
            rec = ExitRecord(key[0], key[1], outcome_for(gang.stop, None), None, why, True)
            out.append(rec)
        return out

    # -- paths -----------------------------------------------------------------------------
    def log_paths(self, job_id: int, attempt: int) -> tuple[Path, Path]:
        """Rank 0's stdout and stderr (rank_log_paths for the others)."""
        return rank_log_paths(run_dir(self.root, job_id, attempt), 0)

    def rank_log_paths(self, job_id: int, attempt: int, rank: int) -> tuple[Path, Path]:
        return rank_log_paths(run_dir(self.root, job_id, attempt), rank)

    def checkpoint_dir(self, job_id: int) -> Path:
        return job_dir(self.root, job_id) / "checkpoints"

    def metrics_file(self, job_id: int) -> Path:
        return job_dir(self.root, job_id) / "metrics.jsonl"

    def is_running(self, job_id: int, attempt: int) -> bool:
        """Every rank of the run has started (benchmarks and tests)."""
        gang = self._gangs.get((job_id, attempt))
        return gang is not None and gang.running_at is not None

    # -- watching --------------------------------------------------------------------------
    def poll(self) -> list[ExitRecord]:
        """Runs that ended since the last call, each once; moves every gang on, never blocks
        (but for a reconnection attempt while the cluster is unreachable)."""
        if self._gangs or self._unverified:
            gone = self._head_verdict()
            if gone is not None:
                self._head_lost(gone)
        out, self._lost_exits = self._lost_exits, []  # failed by a head loss (headloss.py)
        if not self._reconnect():
            return out
        if self._unverified:
            out += self._verify_adopted()
        for key, gang in list(self._gangs.items()):
            try:
                rec = self._advance(gang)
            except RayError as e:  # the cluster itself failing: the next poll retries
                log.warning("job %s attempt %s: Ray: %s", *key, str(e).splitlines()[0][:200])
                rec = None
            if rec is not None:
                del self._gangs[key]
                out.append(rec)
        return out

    def _advance(self, gang: Gang) -> ExitRecord | None:
        now = time.monotonic()
        if gang.phase == "launching":
            return self._launching(gang, now)
        if gang.phase == "placing":
            return self._placing(gang, now)
        if gang.phase == "starting":
            return self._starting(gang, now)
        return self._running(gang, now)

    def _placing(self, gang: Gang, now: float) -> ExitRecord | None:
        assert gang.pg is not None
        # Agent 0 answers once the group is placed and its worker runs: a local check.
        # The GCS is asked for the group's state only when the timeout is up (a read per
        # placing gang per tick held the loop 10+ ms each; RESULTS section 28).
        if gang.master is not None and gang.master.done():
            gang.phase, gang.since = "starting", now
            return self._starting(gang, now)
        if gang.stop is not None:
            return self._end(gang, None, "stopped before the job started")
        if now - gang.since < self.pg_timeout_s:
            return None
        # The GCS's word, not pg.ready(): that runs a task in the group, which needs a worker
        # process of its own (seconds to start) and a new one per call. Read on the reads
        # thread, never on the tick nor ahead of launches; without an answer for another
        # timeout, the group is given up.
        asked = gang.pg_state
        if asked is None:
            gang.pg_state = self._reads.submit(_pg_state, gang.pg)
            return None
        late = now - gang.since >= 2 * self.pg_timeout_s
        if not asked.done() and not late:
            return None
        gang.pg_state = None
        state = _answer(asked)
        if state == "CREATED":  # placed; its agents are slow to start (START_TIMEOUT_S)
            gang.phase, gang.since = "starting", now
            return None
        if state is None and not late:  # the read failed: asked again at the next poll
            return None
        nodes = ", ".join(p.node for p in gang.parts)
        return self._end(
            gang,
            None,
            f"placement group not created within {self.pg_timeout_s:g} s on {nodes}: "
            "Ray cannot place it (a node full, gone or short of resources); removed",
        )

    def _starting(self, gang: Gang, now: float) -> ExitRecord | None:
        assert gang.master is not None
        if not gang.master.done():
            if gang.stop is not None or now - gang.since > START_TIMEOUT_S:
                why = "stopped before the job started" if gang.stop else "agents did not start"
                return self._end(gang, None, f"{why} (within {now - gang.since:.1f} s)")
            return None
        try:
            addr, port = gang.master.result()
        except RayError as e:  # the agent died with its node, or the call broke
            return self._end(gang, None, f"node {gang.parts[0].node} lost before start: {short(e)}")
        if gang.stop is not None:
            return self._end(gang, None, "stopped before the job started")
        spec, env = gang.spec, gang.env
        assert spec is not None and env is not None
        rdv = {
            "master_addr": addr,
            "master_port": port,
            "world_size": spec.nprocs,
            "grace_s": self.grace_s,
        }
        call = (list(spec.command), env, spec.working_dir, rdv)
        gang.sending = self._calls.submit(_send_start, dict(gang.agents), call, stopped_check(gang))
        gang.spec = gang.env = None  # the job's secrets are the agents' now
        gang.phase = "running"
        return None

    def _sent(self, gang: Gang, now: float) -> ExitRecord | None:
        """The start calls went out (the agents' Futures are the gang's now), or why not."""
        fut = gang.sending
        assert fut is not None
        if not fut.done():
            if gang.kill_at is not None and now >= gang.kill_at:  # the calls thread is stuck
                gang.sending = None
                return self._end(gang, None, "stopped before the job started")
            return None
        gang.sending = None
        if fut.cancelled():  # dropped with a lost head (which fails the gang first)
            return self._end(gang, None, "ranks not started: the call was dropped")
        err = fut.exception()
        if err is not None:
            return self._end(gang, None, f"ranks not started: {short(err)}")
        sent = fut.result()
        if sent is None:  # a stop came before the start was sent: nothing started
            return self._end(gang, None, "stopped before the job started")
        for i, (start, wait) in sent.items():
            gang.started[i], gang.waits[i] = start, wait
        return None

    def _running(self, gang: Gang, now: float) -> ExitRecord | None:
        # Futures Ray completes from its own threads: no call into Ray from the tick here
        # (a ray.wait per gang per tick waited for Ray's event loop, 2.5 ms at p90 on the
        # loaded machine; RESULTS section 37).
        if gang.sending is not None:
            rec = self._sent(gang, now)
            if rec is not None or gang.sending is not None:
                return rec
        started = gang.started.values()
        if gang.running_at is None and started and all(f.done() for f in started):
            gang.running_at = now
        for i, fut in list(gang.waits.items()):
            if i not in gang.verdicts and i not in gang.lost and fut.done():
                self._collect(gang, i, fut)
        self._gang_rule(gang, now)
        if gang.kill_at is not None and now >= gang.kill_at:
            for i in gang.waits:
                if i not in gang.verdicts and i not in gang.lost:
                    gang.lost[i] = "still running after the grace period: killed"
        if len(gang.verdicts) + len(gang.lost) == len(gang.parts):
            return self._finish(gang)
        return None

    def _collect(self, gang: Gang, i: int, fut: Future[Any]) -> None:
        try:
            verdict = fut.result()
        except RayError as e:  # the agent died (with its node, mostly) or its call broke
            saved = read_verdict(gang, i)  # written just before the node went, perhaps
            if saved is not None:
                gang.verdicts[i] = saved
            else:
                gang.lost[i] = f"node {gang.parts[i].node} lost: {short(e)}"
                self._node_lost(gang.parts[i].node)
            return
        if verdict is None:  # the wait timed out with the ranks still running: wait again
            again: Future[Any] = Future()
            self._calls.submit(_send_wait, gang.agents[i], again)
            gang.waits[i] = again
        else:
            gang.verdicts[i] = verdict

    def _gang_rule(self, gang: Gang, now: float) -> None:
        """A node whose ranks failed, or that is gone, ends the gang: the other nodes' ranks
        are stopped (SIGTERM, grace, SIGKILL), as the local runner does for a failed rank."""
        if gang.gang_stopped or gang.stop is not None:
            return
        failed = bool(gang.lost) or any(
            v.get("exit_code") not in (EXIT_OK, EXIT_PREEMPTED) for v in gang.verdicts.values()
        )
        if not failed:
            return
        gang.gang_stopped = True
        self._calls.submit(_send, _unfinished(gang), "stop_gang", self.grace_s)
        gang.kill_at = now + self.grace_s + BACKSTOP_S

    def _finish(self, gang: Gang) -> ExitRecord:
        codes = [v.get("exit_code") for v in gang.verdicts.values()]
        if gang.lost:  # the first loss is the cause; later ones follow from it
            return self._end(gang, None, next(iter(gang.lost.values())))
        bad = [
            v for v in gang.verdicts.values() if v.get("exit_code") not in (EXIT_OK, EXIT_PREEMPTED)
        ]
        if bad:
            # The node whose rank failed on its own, not one stopped because of it.
            own = [v for v in bad if v.get("failed_rank") is not None]
            first = min(own or bad, key=lambda v: int(v.get("index", 0)))
            detail = f"node {first.get('node')}: {first.get('detail')}"
            return self._end(gang, first.get("exit_code"), detail)
        code = EXIT_OK if all(c == EXIT_OK for c in codes) else EXIT_PREEMPTED
        stop = gang.stop
        stopped = any(v.get("stop_signal") is not None for v in gang.verdicts.values())
        if stop == "preempt" and code == EXIT_OK and not stopped:
            stop = None  # finished before the SIGTERM reached it: do not run it again
        detail = "" if code == EXIT_OK else "checkpointed (exit 75)"
        return self._end(gang, code, detail, stop=stop, own_stop=True)

    def _end(
        self,
        gang: Gang,
        code: int | None,
        detail: str,
        *,
        stop: StopReason | None = None,
        own_stop: bool = False,
    ) -> ExitRecord:
        """Tear the gang down and say how it ended; the stop request decides (outcome_for),
        unless `own_stop` gives the stop that counts."""
        self._teardown(gang.handle)
        if not own_stop:
            stop = gang.stop
        if gang.stop is not None:
            detail = f"{gang.stop} requested; {detail}"
        outcome = outcome_for(stop, code)
        job_id, attempt = gang.key
        log.info("job %s attempt %s: %s (%s)", job_id, attempt, outcome, detail)
        return ExitRecord(job_id, attempt, outcome, code, detail)

    # -- stopping --------------------------------------------------------------------------
    def terminate(
        self, job_id: int, attempt: int, reason: str, *, grace_s: float | None = None
    ) -> bool:
        """SIGTERM every rank (each agent once), SIGKILL after the grace period. A cancel after
        a preempt makes it a cancel; a later request never extends the deadline. False when
        there is nothing to stop under this executor."""
        if reason not in ("preempt", "cancel"):
            raise ValueError(f"reason: must be 'preempt' or 'cancel', got {reason!r}")
        grace = self.grace_s if grace_s is None else float(grace_s)
        if grace < 0:
            raise ValueError(f"grace_s: must be >= 0, got {grace_s}")
        gang = self._gangs.get((job_id, attempt)) or self._unverified.get((job_id, attempt))
        if gang is None:
            return False
        gang.stop = "cancel" if "cancel" in (reason, gang.stop) else "preempt"
        kill_at = time.monotonic() + grace + BACKSTOP_S
        gang.kill_at = kill_at if gang.kill_at is None else min(gang.kill_at, kill_at)
        write_json_atomic(
            Path(gang.handle.run_dir) / "terminate.json",
            {"reason": gang.stop, "kill_at_wall": time.time() + (gang.kill_at - time.monotonic())},
            durable=False,
        )
        # After the start on the calls thread (in order); an agent enforces its grace period
        # from when the stop reaches it, the backstop above from now.
        self._calls.submit(_send, _unfinished(gang), "stop", grace)
        log.info("job %s attempt %s: %s, grace %g s", job_id, attempt, gang.stop, grace)
        return True

    def kill(self, h: Any) -> None:
        """Kill a run now and forget it (a run the store does not want); no ExitRecord."""
        gang = self._gangs.pop((h.job_id, h.attempt), None)
        if gang is not None and gang.stop is None:
            gang.stop = "cancel"  # a launch still queued on the worker creates nothing
        self._unverified.pop((h.job_id, h.attempt), None)
        if not self.connected:
            log.warning("ray: cannot kill job %s attempt %s: not connected", h.job_id, h.attempt)
            return
        self._teardown(h)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until the calls to the agents, launches and teardowns handed to the threads
        so far have run."""
        return self._calls.drain(timeout_s) and self._worker.drain(timeout_s)

    def _teardown(self, h: GangHandle) -> None:
        """_teardown_now on the worker thread, after whatever was queued before (a gang's
        creation, so nothing it makes is left behind)."""
        self._worker.submit(self._teardown_logged, h)

    def _teardown_logged(self, h: GangHandle) -> None:
        try:
            self._teardown_now(h)
        except Exception:
            log.exception("job %s attempt %s: teardown", h.job_id, h.attempt)

    def _teardown_now(self, h: GangHandle) -> None:
        """SIGKILL the ranks, kill the agents, remove the placement group; what is already
        gone is skipped."""
        payload = h.payload if isinstance(h, GangHandle) else {}
        ns = str(payload.get("namespace", self.namespace))
        agents = []
        for name in payload.get("agents", []):
            try:
                agents.append(ray.get_actor(name, namespace=ns))
            except ValueError:
                continue
        for a in agents:
            a.kill.remote()  # the ranks die with their agent too (PDEATHSIG); this is quicker
        for a in agents:
            try:
                ray.kill(a, no_restart=True)
            except RayError:
                continue
        pg = named_pg(str(payload.get("pg", g.pg_name(h.job_id, h.attempt))))
        if pg is not None:
            try:
                remove_placement_group(pg)
            except RayError as e:
                log.warning("removing placement group of job %s: %s", h.job_id, short(e))


# -- on the calls thread and the worker: they touch only what they are given -----------------
def _send_start(
    agents: dict[int, Any], call: tuple[Any, ...], stopped: Callable[[], bool]
) -> dict[int, tuple[Future[Any], Future[Any]]] | None:
    """Each agent's start() and first wait(), as Futures; None (nothing sent) once stopped."""
    if stopped():
        return None
    return {
        i: (agent.start.remote(*call).future(), agent.wait.remote(WAIT_S).future())
        for i, agent in agents.items()
    }


def _send_wait(agent: Any, out: Future[Any]) -> None:
    """agent.wait() sent from the calls thread; its answer (or failure) lands in `out`."""
    try:
        ref = agent.wait.remote(WAIT_S).future()
    except BaseException as err:
        out.set_exception(err)
        raise
    ref.add_done_callback(lambda done: _copy(done, out))


def _copy(src: Future[Any], dst: Future[Any]) -> None:
    if src.cancelled():  # read as a broken call (poll() catches RayError, not cancellation)
        dst.set_exception(RayError("the agent's wait() was cancelled"))
        return
    err = src.exception()
    if err is not None:
        dst.set_exception(err)
    else:
        dst.set_result(src.result())


def _send(agents: list[Any], method: str, grace_s: float) -> None:
    for agent in agents:
        getattr(agent, method).remote(grace_s)


def _pg_state(pg: Any) -> str | None:
    return ray.util.placement_group_table(pg).get("state")


def _answer(fut: Future[Any]) -> Any:
    """A read's result, or None if it failed (logged), was dropped or has not answered: this
    never waits (Future.exception() would, on a read the GCS left hanging)."""
    if not fut.done() or fut.cancelled():
        return None
    err = fut.exception()
    if err is not None:
        log.warning("Ray: %s", short(err))
        return None
    return fut.result()


def _unfinished(gang: Gang) -> list[Any]:
    """The agents whose ranks have not reported their end."""
    return [a for i, a in gang.agents.items() if i not in gang.verdicts and i not in gang.lost]
