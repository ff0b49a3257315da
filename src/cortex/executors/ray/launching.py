"""A gang's launch on Ray: a mixin of `RayExecutor` (executor.py).

launch() does only what is local and must be durable before anything exists on Ray: the run
dir (made exclusively: an attempt is launched once), the rank log files, the handle
(`handle.json`, so a service killed from here on finds the run and tears down whatever Ray
then holds for it). The Ray calls that register the placement group and the named, detached
agents with the GCS (tens of ms each, more on a loaded machine) run on the executor's worker
thread (worker.py); launch() returns the handle at once and the gang is "launching" until the
next poll() that finds the worker done:
- created: the gang goes on to "placing" (executor.py) as before;
- the creation raised: whatever it made is removed (on the worker, before its Future is
  done), the gang is reported failed, "launch failed: <why>", and the loop requeues the job
  under its retry rules, as it does when a blocking launch raises;
- a stop (preempt or cancel) that came while it was queued: the worker creates nothing, and
  poll() reports the gang stopped before it started; one that came while it was being created
  is honoured once it is (the gang is torn down before any rank starts);
- the worker still busy with it `pg_timeout_s` after it began (the GCS not answering):
  reported failed, the teardown queued behind the creation. A launch waiting in the worker's
  queue is timed only against a stuck worker (QUEUED_TIMEOUTS): a burst of launches queues."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.util.placement_group import PlacementGroup, placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from cortex.executors.local.rundir import run_dir, write_json_atomic
from cortex.executors.local.users import DEFAULT_PATH, INHERITED_ENV
from cortex.executors.ray import gang as g
from cortex.executors.ray.agent import rank_log_paths
from cortex.executors.ray.fleet import LABEL_NODE
from cortex.executors.ray.runs import Gang, short
from cortex.executors.ray.worker import RayWorker
from cortex.executors.spec import ExitRecord, GangHandle, LaunchSpec, StopReason, job_env

log = logging.getLogger(__name__)

KIND = "ray"
QUEUED_TIMEOUTS = 10  # a launch may wait this many pg_timeout_s in the worker's queue
# What the worker makes for a gang: its placement group, its agents by bundle index, and the
# Future of agent 0's rendezvous address. None: a stop came first, nothing was made.
Created = tuple[PlacementGroup, dict[int, Any], "Future[Any]"] | None


class LaunchMixin:
    # Owned by RayExecutor (declared here for the type checker).
    root: Path
    address: str | None
    namespace: str
    connected: bool
    pg_timeout_s: float
    _gangs: dict[tuple[int, int], Gang]
    _agent_cls: Any
    _worker: RayWorker

    if TYPE_CHECKING:

        def checkpoint_dir(self, job_id: int) -> Path: ...
        def metrics_file(self, job_id: int) -> Path: ...
        def _teardown(self, h: GangHandle) -> None: ...
        def _teardown_now(self, h: GangHandle) -> None: ...
        def _placing(self, gang: Gang, now: float) -> ExitRecord | None: ...
        def _end(
            self,
            gang: Gang,
            code: int | None,
            detail: str,
            *,
            stop: StopReason | None = None,
            own_stop: bool = False,
        ) -> ExitRecord: ...

    def launch(self, spec: LaunchSpec) -> GangHandle:
        """Make the run durable and hand its Ray calls to the worker; the outcome (started,
        or failed to start) comes through poll(). An attempt is launched once (its run dir
        is made exclusively)."""
        spec.validate()
        if not self.connected:
            raise ConnectionError(f"ray: cluster {self.address or 'auto'} not connected")
        parts = g.split(spec.nodes, spec.nprocs)
        key = (spec.job_id, spec.attempt)
        if key in self._gangs:
            raise ValueError(f"attempt: job {spec.job_id} attempt {spec.attempt} is running")
        rdir = run_dir(self.root, spec.job_id, spec.attempt)
        rdir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            rdir.mkdir(mode=0o700)
        except FileExistsError:
            raise ValueError(
                f"attempt: job {spec.job_id} attempt {spec.attempt} was already launched "
                f"({rdir} exists); use a new attempt number"
            ) from None
        try:
            gang = self._prepare(rdir, spec, parts)
        except BaseException:
            shutil.rmtree(rdir, ignore_errors=True)  # nothing was asked of Ray yet
            raise
        stopped = stopped_check(gang)
        gang.launch = self._worker.submit(self._create, gang.handle, parts, stopped)
        self._gangs[key] = gang
        return gang.handle

    def _prepare(self, rdir: Path, spec: LaunchSpec, parts: list[g.NodePart]) -> Gang:
        ckpt = Path(spec.checkpoint_dir or self.checkpoint_dir(spec.job_id))
        ckpt.mkdir(parents=True, exist_ok=True, mode=0o700)
        metrics = self.metrics_file(spec.job_id)
        metrics.touch(mode=0o600)
        base = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
        base.setdefault("PATH", DEFAULT_PATH)
        env = job_env(spec, base=base, checkpoint_dir=ckpt.resolve(), metrics_file=metrics)
        for r in range(spec.nprocs):
            for p in rank_log_paths(rdir, r):
                p.touch(mode=0o600)
        handle = self._handle_of(spec, rdir, parts)
        # Durable before anything exists on Ray: a service killed after this finds the run.
        write_json_atomic(rdir / "handle.json", handle.to_dict(), durable=False)
        return Gang(handle=handle, parts=parts, pg=None, spec=spec, env=env, phase="launching")

    def _handle_of(self, spec: LaunchSpec, rdir: Path, parts: list[g.NodePart]) -> GangHandle:
        out, err = rank_log_paths(rdir, 0)
        return GangHandle(
            job_id=spec.job_id,
            attempt=spec.attempt,
            kind=KIND,
            run_dir=str(rdir),
            stdout_path=str(out),
            stderr_path=str(err),
            devices=tuple(spec.devices),
            payload={
                "namespace": self.namespace,
                "pg": g.pg_name(spec.job_id, spec.attempt),
                "agents": [g.agent_name(spec.job_id, spec.attempt, p.index) for p in parts],
                "nodes": [[p.node, list(p.devices), list(p.ranks)] for p in parts],
                "uses_gpus": spec.uses_gpus,
            },
        )

    # -- on the worker thread: touches nothing of the executor's but what it is given -------
    def _create(
        self, h: GangHandle, parts: list[g.NodePart], stopped: Callable[[], bool]
    ) -> Created:
        if stopped():
            return None
        try:
            pg = placement_group(
                [p.bundle(bool(h.payload.get("uses_gpus"))) for p in parts],
                strategy="PACK",
                name=g.pg_name(h.job_id, h.attempt),
                lifetime="detached",
                bundle_label_selector=[{LABEL_NODE: p.node} for p in parts],
            )
            # Requested now, not once the group exists: Ray starts them (a worker process
            # each, the slow part of a gang start) as soon as their bundles are there.
            agents = self._create_agents(h, parts, pg)
            master = agents[0].master.remote().future()
        except BaseException:
            # A detached group or agent left behind would hold its GPUs until a restart.
            try:
                self._teardown_now(h)
            except Exception:
                log.exception("job %s attempt %s: teardown after a failed launch", *g_key(h))
            raise
        if stopped():
            # Given up while Ray was making it (a stop, a kill, a lost head, the launch timed
            # out): undone here at once, before anything could start on it.
            self._teardown_now(h)
            return None
        log.info("job %s attempt %s: placement group on %s", h.job_id, h.attempt,
                 [p.node for p in parts])  # fmt: skip
        return pg, agents, master

    def _create_agents(
        self, h: GangHandle, parts: list[g.NodePart], pg: PlacementGroup
    ) -> dict[int, Any]:
        uses_gpus = bool(h.payload.get("uses_gpus"))
        agents = {}
        for p in parts:
            gpus = float(len(p.devices)) if uses_gpus else 0.0
            agents[p.index] = self._agent_cls.options(
                name=g.agent_name(h.job_id, h.attempt, p.index),
                namespace=self.namespace,
                lifetime="detached",
                num_cpus=g.CPU_PER_RANK * len(p.ranks),
                num_gpus=gpus,
                max_concurrency=8,
                max_restarts=0,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    pg, placement_group_bundle_index=p.index
                ),
            ).remote(h.job_id, h.attempt, p.index, p.node, list(p.ranks), h.run_dir)
        return agents

    # -- on the tick thread, from poll() -----------------------------------------------------
    def _launching(self, gang: Gang, now: float) -> ExitRecord | None:
        fut = gang.launch
        assert fut is not None
        if not fut.done():
            # Timed from when the worker took it up, not from launch(): a burst of launches
            # queues (40-90 ms each here), and the last of a few hundred would time out while
            # Ray answers every call. A queued one is bounded only against a worker stuck on
            # an earlier call (a lost head drops the queue first: headloss.py).
            if not fut.running():
                if now - gang.since < QUEUED_TIMEOUTS * self.pg_timeout_s:
                    return None
                gang.launch, gang.abandoned = None, True  # never created when its turn comes
                waited = now - gang.since
                return self._end(
                    gang, None, f"launch failed: still queued after {waited:.0f} s (the "
                    "executor's worker thread is held by an earlier Ray call)"
                )  # fmt: skip
            if gang.created_at is None:
                gang.created_at = now
            if now - gang.created_at < self.pg_timeout_s:
                return None
            gang.launch = None  # its teardown is queued behind it, so runs once it is done
            gang.abandoned = True  # and the creation undoes itself if it ever returns
            return self._end(
                gang, None, f"launch failed: Ray did not answer within {self.pg_timeout_s:g} s"
            )
        gang.launch = None
        if fut.cancelled():  # dropped from the worker's queue (a lost head fails it first)
            return self._end(gang, None, "launch failed: dropped before Ray was asked")
        err = fut.exception()
        if err is not None:
            return self._end(gang, None, f"launch failed: {short(err)}")
        created = fut.result()
        if created is None:
            return self._end(gang, None, "stopped before the job started")
        gang.pg, gang.agents, gang.master = created
        gang.phase, gang.since = "placing", now
        return self._placing(gang, now)


def g_key(h: GangHandle) -> tuple[int, int]:
    return h.job_id, h.attempt


def stopped_check(gang: Gang) -> Callable[[], bool]:
    # Read on the worker and calls threads: attributes set once on the tick thread.
    return lambda: gang.stop is not None or gang.abandoned
