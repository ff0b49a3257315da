"""Wire-up for `cortex serve`: migrate the store, discover the machine, recover, then run the
scheduler loop beside the API."""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session

from cortex.control import db, store
from cortex.control import models as m
from cortex.control.auth import TokenCache
from cortex.control.batcher import SubmitBatcher
from cortex.control.clock import SYSTEM, Clock
from cortex.control.envcrypt import EnvBox
from cortex.control.homelock import hold_database
from cortex.control.loop import SchedulerLoop
from cortex.control.metrics import Metrics
from cortex.control.schemas import FlavorQuotaIn
from cortex.control.settings import Settings
from cortex.executors.local.users import scrub_environ

log = logging.getLogger("cortex.control")


def _bad_share(x: float | None, top: float) -> bool:
    return x is not None and not (math.isfinite(x) and 0.0 <= x <= top)


def _good_flavor_quotas(raw: object) -> bool:
    if not isinstance(raw, dict):
        return False
    try:
        for v in raw.values():
            FlavorQuotaIn.model_validate(v)
    except ValueError:  # pydantic's ValidationError is one
        return False
    return True


def repair_queues(s: Session, at: float) -> int:
    """Reset quota values no tick can use (infinite, NaN, out of range: written before the API
    bounded them, or by hand) to the defaults, with a warning and an event, so that one bad
    row cannot keep the service from starting. Returns how many rows were repaired. The rows
    are locked as a quota edit locks them: an edit committed meanwhile is read, not reset."""
    return repair_rows(s, store.lock_queues(s), at)


def repair_rows(s: Session, rows: Iterable[m.Queue], at: float) -> int:
    """`repair_queues` on rows the caller has locked (a quota edit repairs what it checks)."""
    fixed = 0
    for q in rows:
        bad: list[str] = []
        if _bad_share(q.nominal_share, 1.0):
            q.nominal_share, bad = 0.0, [*bad, "nominal_share"]
        if _bad_share(q.borrowing_limit_share, 1.0):
            q.borrowing_limit_share, bad = None, [*bad, "borrowing_limit_share"]
        if _bad_share(q.weight, 1e6) or q.weight == 0:
            q.weight, bad = 1.0, [*bad, "weight"]
        if q.flavor_quotas is not None and not _good_flavor_quotas(q.flavor_quotas):
            q.flavor_quotas, bad = None, [*bad, "flavor_quotas"]
        if bad:
            fixed += 1
            msg = f"queue {q.name}: unusable {', '.join(bad)} reset to the default"
            log.warning(msg)
            store.event(s, "queue", msg, team=q.name, at=at)
    return fixed


def local_executor(settings: Settings) -> tuple[Any, Any]:
    """The real executor and the machine's inventory, with the job-user policy resolved:
    refuses to start (PrivilegeError, a ValueError) when every launch would be refused."""
    from cortex.executors.local.executor import LocalExecutor
    from cortex.executors.local.users import PrivilegeError, parse_run_as, resolve_allow_same_user

    run_as = getattr(settings, "run_as", None)
    if isinstance(run_as, str):
        run_as = parse_run_as(run_as)
    allow = resolve_allow_same_user(getattr(settings, "allow_same_user", None), run_as)
    logs = {k: getattr(settings, k) for k in ("log_cap_bytes", "log_keep") if hasattr(settings, k)}
    executor = LocalExecutor(
        settings.run_dir, grace_s=settings.grace_s, run_as=run_as, allow_same_user=allow, **logs
    )
    why = executor.users.refusal()
    if why is not None:
        raise PrivilegeError(why)
    return executor, LocalExecutor.discover(slots=settings.slots)


def ray_executor(settings: Settings) -> tuple[Any, Any]:
    """The Ray executor and its fleet, read from the cluster's node labels. The service
    serves at once either way: a cluster that cannot be reached is one line in the log, and
    the executor reconnects from its polls with backoff (1 s doubling to 30 s, a line per
    try). Meanwhile the fleet saved by an earlier start stands in with every node down
    (adopted gangs are checked once Ray answers); without one, the fleet is pending: jobs
    stay queued until the first node is seen (control/loop_fleet.py)."""
    from cortex.executors.local.users import PrivilegeError
    from cortex.executors.nodes import pending_fleet
    from cortex.executors.ray.executor import RayExecutor

    if getattr(settings, "run_as", None):
        # Ranks run as the Ray workers' user: a mapping silently dropped would run every
        # team's jobs as one user that the operator believes is split.
        raise PrivilegeError(
            "run_as: not applied by the Ray executor (ranks run as the Ray workers' user); "
            "drop --run-as, or use the local executor"
        )

    executor = RayExecutor(
        settings.run_dir,
        settings.ray_address,
        grace_s=settings.grace_s,
        pg_timeout_s=settings.ray_pg_timeout_s,
        connect=False,
    )
    where = settings.ray_address or "auto"
    try:
        executor.connect()
    except (ConnectionError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        executor.retry_later()
        fleet = executor.start_offline()
        if fleet is not None:
            log.error(
                "ray: cluster %s not usable: %s; serving with the last fleet (%d nodes) down, "
                "reconnecting in the background",
                where,
                first,
                len(fleet.nodes),
            )
            return executor, fleet
        log.error(
            "ray: cluster %s not usable: %s; serving with no fleet yet (jobs stay queued), "
            "reconnecting in the background",
            where,
            first,
        )
        return executor, pending_fleet(executor.default_flavor, "ray")
    fleet = executor.current_fleet()
    if fleet is None:
        log.error("ray: cluster %s has no usable node yet; jobs stay queued until one joins", where)
        return executor, pending_fleet(executor.default_flavor, "ray")
    return executor, fleet


def loop_options(settings: Settings) -> dict[str, Any]:
    """The loop's retry parameters the settings model sets (the loop's defaults otherwise)."""
    names = ("retry_backoff_base_s", "retry_backoff_max_s", "max_exit75_requeues")
    return {k: getattr(settings, k) for k in names if getattr(settings, k, None) is not None}


class Service:
    """Everything one `cortex serve` process owns. `executor` may be injected (tests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        executor: Any = None,
        inventory: Any = None,
        node_name: str | None = None,
        launch_spec: Any = None,
        handle_from_dict: Any = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.settings = settings
        self.clock = clock  # the loop's, recovery's and the API's (tests pass a fake one)
        # Everything the service creates is its own alone: the store and its -wal/-shm, run
        # dirs, spec files holding job env (issue 9, defect 1).
        os.umask(0o077)
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Before anything touches the store: a second service on the same PostgreSQL database
        # (another home) stops here, naming the database (control/homelock.py).
        self.db_lock = hold_database(settings.connect_url)
        try:
            self._wire(settings, executor, inventory, node_name, launch_spec, handle_from_dict)
        except BaseException:
            self.release_database()
            raise

    def _wire(
        self,
        settings: Settings,
        executor: Any,
        inventory: Any,
        node_name: str | None,
        launch_spec: Any,
        handle_from_dict: Any,
    ) -> None:
        clock = self.clock
        if executor is None and settings.executor == "ray":
            executor, inventory = ray_executor(settings)
        elif executor is None:
            executor, inventory = local_executor(settings)
        # Jobs of other users traverse (never list) CORTEX_HOME to their checkpoint dirs.
        users = getattr(executor, "users", None)
        db.secure_dir(settings.home, traversable=bool(getattr(users, "isolated", False)))
        db.upgrade(settings.connect_url)
        self.engine = db.make_engine(settings.connect_url)
        self.sessions = db.sessions(self.engine)
        self.executor = executor
        self.env_box = EnvBox.at(settings.home)
        self.inventory = inventory
        self.metrics = Metrics()
        self.token_cache = TokenCache(settings.token_cache_s)
        self.loop = SchedulerLoop(
            settings,
            self.sessions,
            executor,
            flavor=inventory.flavor,
            devices=list(inventory.devices),
            uses_gpus=inventory.kind == "gpu",
            node_name=node_name or socket.gethostname() or "local",
            metrics=self.metrics,
            launch_spec=launch_spec,
            handle_from_dict=handle_from_dict,
            # A multi-node executor's fleet (the Ray executor's); None: this machine alone.
            fleet=getattr(inventory, "spec", None),
            node_names=getattr(inventory, "names", None),
            clock=clock,
            **loop_options(settings),
        )
        self.loop.env_box = self.env_box
        with self.sessions.begin() as s:
            repair_queues(s, clock.time())
            self.loop.register_node(s, inventory.kind)
            self.new_admin_token = store.bootstrap_admin(s, settings.admin_token, clock.time())
            if self.loop.power is not None:
                for line in self.loop.power.restore(store.site_settings(s), clock.time()):
                    log.info("power: %s", line)
        self.recovered = self.loop.recover()
        # Read once above; no child may inherit them (see exec_users.scrub_environ).
        scrub_environ()
        self.loop.on_error = self._resync
        if self.db_lock is not None:
            self.loop.db_lock_check = self.db_lock.check
        self.metrics.attach(self._job_counts, self.loop.gpus_by_flavor, self._node_health)
        self.batcher = SubmitBatcher(
            self.sessions, self.loop.wake_event, box=self.env_box, clock=clock
        )
        from cortex.control.api import build_app  # the API's modules import this one

        self.app: FastAPI = build_app(self)

    def release_database(self) -> None:
        """Let another service take this database (idempotent)."""
        if self.db_lock is not None:
            self.db_lock.release()

    def _resync(self) -> None:
        """After a failed tick: repair quota rows no tick can use (a hand edit while running),
        then rebuild the loop's mirror from the store."""
        with self.sessions.begin() as s:
            if repair_queues(s, self.clock.time()):
                self.loop.queues_dirty = True
        self.loop.recover()

    def _job_counts(self) -> list[tuple[str, str, int]]:
        with self.sessions() as s:
            return store.job_counts(s)

    def _node_health(self) -> list[tuple[str, bool]]:
        with self.sessions() as s:
            return [(n.name, n.healthy) for n in store.nodes(s)]

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        self.loop.start()
        try:
            yield
        finally:
            self.loop.stop()
            self.batcher.close()

    def close(self) -> None:
        self.batcher.close()
        self.loop.stop()
        self.engine.dispose()
        self.release_database()
