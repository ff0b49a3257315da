"""Service settings: environment variables with defaults that need no configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _default_home() -> Path:
    return Path(os.environ.get("CORTEX_HOME", Path.home() / ".cortex"))


@dataclass(frozen=True)
class Settings:
    """What `cortex serve` needs. `database_url` None means an SQLite file under `home`."""

    home: Path = field(default_factory=_default_home)
    database_url: str | None = None
    slots: int | None = None  # CPU slots when the machine has no GPU (None: executor's default)
    grace_s: float = 30.0  # SIGTERM -> SIGKILL for preemption and cancel
    tick_s: float = 0.2  # periodic fallback between event-driven ticks
    policy: str = "priority"
    min_runtime_s: float = 60.0  # a job is not preempted before it has run this long
    max_retries: int = 2  # failed runs requeued at most this many times
    max_body_bytes: int = 256 * 1024
    admin_token: str | None = None  # CORTEX_ADMIN_TOKEN: the admin token at first start
    # Issue 9 (core): who jobs run as, retries and log caps. None: the executor's and loop's
    # defaults (cortex.control.exec_users, loop_exits, executor).
    run_as: str | None = None  # CORTEX_RUN_AS: "team=user,team2=user2" ("*=user": any team)
    allow_same_user: bool | None = None  # CORTEX_ALLOW_SAME_USER: jobs as the service's user

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'cortex.db'}"

    @property
    def run_dir(self) -> Path:
        return self.home / "runs"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read CORTEX_* variables; explicit overrides (CLI options) win."""
        env = os.environ
        vals: dict[str, object] = {}
        if "CORTEX_DATABASE_URL" in env:
            vals["database_url"] = env["CORTEX_DATABASE_URL"]
        if "CORTEX_SLOTS" in env:
            vals["slots"] = int(env["CORTEX_SLOTS"])
        for key, name in (
            ("grace_s", "CORTEX_GRACE_S"),
            ("tick_s", "CORTEX_TICK_S"),
            ("min_runtime_s", "CORTEX_MIN_RUNTIME_S"),
        ):
            if name in env:
                vals[key] = float(env[name])
        if "CORTEX_MAX_RETRIES" in env:
            vals["max_retries"] = int(env["CORTEX_MAX_RETRIES"])
        if "CORTEX_POLICY" in env:
            vals["policy"] = env["CORTEX_POLICY"]
        if env.get("CORTEX_RUN_AS"):
            vals["run_as"] = env["CORTEX_RUN_AS"]
        if env.get("CORTEX_ALLOW_SAME_USER"):
            vals["allow_same_user"] = env["CORTEX_ALLOW_SAME_USER"].lower() in ("1", "true", "yes")
        if env.get("CORTEX_ADMIN_TOKEN"):
            vals["admin_token"] = env["CORTEX_ADMIN_TOKEN"]
        vals.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**vals)  # type: ignore[arg-type]
