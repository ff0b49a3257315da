"""The Ray executor after a restart of the service: the gangs it finds by name (detached
placement groups and agents keyed by job id and attempt) and adopts or leaves to be killed.
A mixin of `RayExecutor` (executor.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray.exceptions import GetTimeoutError, RayError

from cortex.executors.local.rundir import read_json, run_dir
from cortex.executors.ray import gang as g
from cortex.executors.ray.agent import rank_log_paths
from cortex.executors.ray.runs import Gang, adopted, read_verdict
from cortex.executors.spec import GangHandle

KIND = "ray"
CALL_TIMEOUT_S = 10.0  # a blocking call to an agent (adoption only)
WAIT_S = 3600.0  # one agent.wait() call; re-issued while the ranks run


class AdoptionMixin:
    # Owned by RayExecutor (declared here for the type checker).
    root: Path
    namespace: str
    connected: bool
    _gangs: dict[tuple[int, int], Gang]
    _unverified: dict[tuple[int, int], Gang]

    if TYPE_CHECKING:

        def _teardown(self, h: GangHandle) -> None: ...

    # -- after a restart -------------------------------------------------------------------
    def find_run(self, job_id: int, attempt: int) -> GangHandle | None:
        """The handle in this attempt's run dir (written before anything was asked of Ray)."""
        try:
            data = read_json(run_dir(self.root, job_id, attempt) / "handle.json")
            h = GangHandle.from_dict(data) if data is not None else None
        except ValueError:
            return None
        if h is None or h.kind != KIND or (h.job_id, h.attempt) != (job_id, attempt):
            return None
        return h

    def live_handles(self) -> list[GangHandle]:
        """Every gang of ours Ray still holds (named agents or placement groups), whether or
        not the store knows it: adopt() those it wants, kill() the rest."""
        if not self.connected:
            return []
        keys: set[tuple[int, int]] = set()
        for name in ray.util.list_named_actors():
            parsed = g.parse_name(name)
            if parsed is not None:
                keys.add(parsed[:2])
        for info in ray.util.placement_group_table().values():
            parsed = g.parse_name(str(info.get("name", "")))
            if parsed is not None and info.get("state") != "REMOVED":
                keys.add(parsed[:2])
        out = []
        for job_id, attempt in sorted(keys):
            h = self.find_run(job_id, attempt) or self._bare_handle(job_id, attempt)
            out.append(h)
        return out

    def _bare_handle(self, job_id: int, attempt: int) -> GangHandle:
        """A handle from names alone (its run dir lost): enough to kill the gang."""
        rdir = run_dir(self.root, job_id, attempt)
        out, err = rank_log_paths(rdir, 0)
        names = [
            n
            for n in ray.util.list_named_actors()
            if (g.parse_name(n) or (0, 0))[:2] == (job_id, attempt)
        ]
        payload = {"namespace": self.namespace, "pg": g.pg_name(job_id, attempt), "agents": names}
        return GangHandle(job_id, attempt, KIND, str(rdir), str(out), str(err), (), payload)

    def adopt(self, h: Any) -> bool:
        """Watch a gang an earlier service started. True when every node's agent still runs
        its ranks (or left its verdict): poll() reports its end. False otherwise: whatever is
        left of it is killed first, so the requeued job cannot run beside it (a gang whose
        ranks had not all started is never started now: the job's env is not kept)."""
        if not isinstance(h, GangHandle) or h.kind != KIND:
            return False
        key = (h.job_id, h.attempt)
        if key in self._gangs or key in self._unverified:
            return True
        gang = adopted(h)
        if gang is not None and not self.connected:
            # Taken on trust until the cluster answers: requeuing it now could run the
            # attempt twice once Ray is back (its detached gang runs on meanwhile).
            self._unverified[key] = gang
            return True
        if gang is None or not self._reattach(gang):
            self._teardown(h)
            return False
        self._gangs[key] = gang
        return True

    def _reattach(self, gang: Gang) -> bool:
        h = gang.handle
        ns = str(h.payload.get("namespace", self.namespace))
        for p in gang.parts:
            saved = read_verdict(gang, p.index)
            if saved is not None:
                gang.verdicts[p.index] = saved
                continue
            try:
                agent = ray.get_actor(g.agent_name(h.job_id, h.attempt, p.index), namespace=ns)
                status: Any = ray.get(agent.status.remote(), timeout=CALL_TIMEOUT_S)
            except (ValueError, RayError, GetTimeoutError):
                return False
            if not status.get("started"):
                return False
            gang.agents[p.index] = agent
            gang.waits[p.index] = agent.wait.remote(WAIT_S).future()
        try:
            req = read_json(Path(h.run_dir) / "terminate.json")
        except ValueError:
            req = None
        if req is not None and req.get("reason") in ("preempt", "cancel"):
            gang.stop = req["reason"]
            remaining = float(req.get("kill_at_wall", 0.0)) - time.time()
            gang.kill_at = time.monotonic() + max(0.0, remaining)
            # The stop may never have reached the agents (asked while the cluster was away):
            # sent again, it is a no-op for an agent that had it (SIGTERM once, the deadline
            # never extended), and a SIGTERM with its grace for one that had not.
            for i, agent in gang.agents.items():
                if i not in gang.verdicts:
                    agent.stop.remote(max(0.0, remaining))
        gang.phase, gang.running_at = "running", time.monotonic()
        return True
