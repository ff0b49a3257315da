"""Every setting of `cortex serve` in one pydantic-settings model: a CORTEX_<FIELD> variable per
field, a `serve` flag for the common ones (flags win). Bounds live here, so a bad value is one
line naming the variable and exit 2, never a traceback or a service that misbehaves later."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from cortex.drive.runs import MAX_RETRIES_LIMIT, rules
from cortex.errors import InputError

ENV_PREFIX = "CORTEX_"
# Every integer that reaches the store must fit PostgreSQL's int4 (SQLite would take more).
INT4_MAX = 2**31 - 1
TeamKey = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^(\*|[a-z0-9][a-z0-9_-]*)$")]
RootDir = Annotated[str, Field(min_length=1, max_length=4096)]
ClassName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
_RULES = rules("control")


def _default_home() -> Path:
    return Path.home() / ".cortex"


@dataclass(frozen=True)
class FileSecret:
    """A secret read from a file (a `*_FILE` setting): the path and what it held."""

    path: Path
    value: str

    def __repr__(self) -> str:  # never the value, in a log or a traceback
        return f"FileSecret({str(self.path)!r})"


def _file_secret(v: object) -> FileSecret:
    # Files, not variables, keep a secret out of /proc/<pid>/environ; a file that group or
    # others can read would only move the leak, so it is refused (read_secret_file).
    if isinstance(v, FileSecret):
        return v
    from cortex.executors.local.users import PrivilegeError, read_secret_file

    path = Path(str(v))
    try:
        value = read_secret_file(path)
    except (OSError, PrivilegeError) as err:
        raise ValueError(str(err)) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    if not value or len(value) > 4096 or "\x00" in value:
        raise ValueError(f"{path}: must hold 1 to 4096 characters, no NUL")
    return FileSecret(path, value)


SecretFile = Annotated[FileSecret, PlainValidator(_file_secret)]


class Settings(BaseSettings):
    """What `cortex serve` needs. `database_url` None means an SQLite file under `home`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", allow_inf_nan=False
    )

    home: Path = Field(default_factory=_default_home, description="state dir (SQLite, runs)")
    database_url: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    # The longest wait for a PostgreSQL connection (libpq's connect_timeout; a connect_timeout
    # in the URL wins). Without it a service pointed at a host that never answers hung at start
    # (psycopg's own limit is 130 s, libpq's none). A server on the network answers a connect
    # in milliseconds; 10 s leaves room for a slow DNS answer or a loaded server. libpq's
    # floor is 2 s.
    db_connect_timeout_s: Annotated[int, Field(ge=2, le=3600)] = 10
    admin_token: Annotated[str, Field(min_length=12, max_length=512)] | None = Field(
        default=None,
        description="the admin token; when it changes, every other admin token is revoked",
    )
    # The same two secrets from files only the service's user can read (0600 or stricter).
    admin_token_file: SecretFile | None = None
    database_url_file: SecretFile | None = None
    # ---- serving
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object a line (control/logfmt.py)
    # ---- the scheduler loop and the executor
    slots: Annotated[int, Field(ge=1, le=4096)] | None = None  # CPU slots on a GPU-less machine
    # SIGTERM -> SIGKILL; the twin's grace too (drive/data/run_rules.csv, shared.preempt_grace_s)
    grace_s: Annotated[float, Field(ge=0, le=86400)] = _RULES.preempt_grace_s
    tick_s: Annotated[float, Field(gt=0, le=60)] = 0.2  # fallback between event-driven ticks
    policy: Annotated[str, Field(min_length=1, max_length=64)] = "priority"
    # The preemption floor; not the fleet files' 600 s (run_rules.csv says why they differ).
    min_runtime_s: Annotated[float, Field(ge=0, le=365 * 86400)] = _RULES.min_runtime_s
    # Failed runs of the job's own requeued at most, in a row without a checkpoint (drive/runs.py
    # judge_exit: a failure blamed on a node spends none); the default is
    # drive/data/run_rules.csv's, shared with the twin.
    max_retries: Annotated[int, Field(ge=0, le=MAX_RETRIES_LIMIT)] = _RULES.max_retries
    # Nodes of each pod held as hot spares (drive/spares.py): a gang that loses a node takes one.
    hot_spares: Annotated[int, Field(ge=0, le=1024)] = 0
    # Burn-in (control/loop_burnin.py): a node whose drain ends runs a diagnostic job first and
    # returns only if it exits 0 within burn_in_timeout_s; off: it returns when its hold ends.
    burn_in: bool = False
    burn_in_timeout_s: Annotated[float, Field(ge=5, le=86400)] = 300.0
    burn_in_check_s: Annotated[float, Field(gt=0, le=3600)] = 5.0  # the built-in check's load
    # An operator's own diagnostic instead of the built-in (e.g. "dcgmi diag -r 2"): split as a
    # shell splits words, run without a shell, as a job runs.
    burn_in_command: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    # Defaults: drive/data/run_rules.csv, with their sources.
    retry_backoff_base_s: Annotated[float, Field(ge=0, le=86400)] = _RULES.retry_backoff_base_s
    retry_backoff_max_s: Annotated[float, Field(ge=0, le=7 * 86400)] = _RULES.retry_backoff_max_s
    max_exit75_requeues: Annotated[int, Field(ge=0, le=INT4_MAX)] = _RULES.max_exit75_requeues
    log_cap_bytes: Annotated[int, Field(ge=4096, le=2**40)] = 64 * 1024 * 1024
    log_keep: Annotated[int, Field(ge=0, le=100)] = 2  # rotated log files kept per attempt
    # Team -> Unix user its jobs run as: "team=user,team2=user2" ("*=user": any other team).
    run_as: Annotated[str, Field(max_length=65536)] | None = None
    # Jobs as the service's own user. None: allowed, with a warning, only for a non-root
    # service with no run_as mapping (a laptop); refused otherwise (exec_users).
    allow_same_user: bool | None = None
    # ---- the executor: local (this machine, the default) or ray (a Ray cluster whose nodes
    # carry cortex.node labels; docs/executor.md, "The Ray executor")
    executor: Literal["local", "ray"] = "local"
    # None: Ray's own default (RAY_ADDRESS, else a cluster started on this machine).
    ray_address: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    # A placement group Ray has not created by then is removed and the job requeued.
    ray_pg_timeout_s: Annotated[float, Field(gt=0, le=86400)] = 30.0
    # A node the executor drains with no deadline (Ray keeps it until it is idle): its jobs are
    # checkpointed and requeued elsewhere this long after the drain is first seen (0: at once).
    drain_evacuate_after_s: Annotated[float, Field(ge=0, le=7 * 86400)] = 600.0
    # ---- the API's edge
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 256 * 1024
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 16 * 1024
    max_depth: Annotated[int, Field(ge=4, le=256)] = 32  # JSON/YAML nesting
    max_jobs_per_submit: Annotated[int, Field(ge=1, le=10000)] = 1000
    token_cache_s: Annotated[float, Field(ge=0, le=1)] = 1.0  # a revoked token lives this long
    max_token_ttl_s: Annotated[float, Field(gt=0, le=10 * 365 * 86400)] = 365 * 86400.0
    health_stale_s: Annotated[float, Field(gt=0, le=3600)] = 30.0  # /healthz 503 past this
    # Roots a job's working_dir may lie under: team -> roots ("*" for every team); "{team}" in
    # a root is the team's name, "{home}" the state dir.
    workdir_roots: dict[TeamKey, list[RootDir]] = Field(
        default_factory=lambda: {"*": ["{home}/work/{team}"]}
    )
    # The runtime estimate of a job submitted with neither duration_s nor work_gpu_hours (nor a
    # time_limit_s, which is used first, as Slurm does): queue (team) -> seconds, "*" for every
    # queue. So a quick job needs no estimate; backfill then trusts this guess.
    default_duration_s: dict[TeamKey, Annotated[float, Field(gt=0, le=1e9)]] = Field(
        default_factory=lambda: {"*": 3600.0}
    )
    # The priority classes each team may submit with (Slurm's QOS allowed per association):
    # team -> classes, "*" for every team not named. A team with no entry (and no "*") may use
    # every class the fleet defines: the default, so a first run needs no entry.
    team_priority_classes: dict[
        TeamKey, Annotated[list[ClassName], Field(min_length=1, max_length=64)]
    ] = Field(default_factory=dict)
    # DCGM-style per-GPU metrics name the job holding each GPU (a `job` label). Off by default:
    # /metrics may be open without a token, and a job id there tells every reader which job
    # runs where (tests/control/test_isolation.py); on where the scrape endpoint is protected.
    metrics_job_label: bool = False
    # /metrics and /docs: "auto" is open when listening on loopback only, else token-protected.
    ops_access: Literal["auto", "open", "token"] = "auto"
    # The dashboard's login cookie is Secure (HTTPS, or http://127.0.0.1 and localhost); off
    # only to serve it over plain HTTP off loopback, which sends the token in the clear.
    ui_cookie_secure: bool = True
    # ---- power (docs/power.md, "Power in the live cluster")
    # none | admit | cap: the twin's policies (scheduler/registry.py POWER_PROFILES), run on
    # the machine's modelled or measured draw against a facility cap of site_cap_kw.
    power_policy: Annotated[str, Field(min_length=1, max_length=32)] = "none"
    site_cap_kw: Annotated[float, Field(gt=0, le=1e9)] | None = None
    # Who sets per-GPU limits: auto (NVML on GPUs, none on CPU slots), nvml, none, record:PATH.
    power_actuator: Annotated[str, Field(min_length=1, max_length=4096)] = "auto"
    # CPU slots draw nothing in the catalog: model each slot as one GPU of this flavor.
    power_model_flavor: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    # IT power cap per rack (bounds every GPU's limit on a node of that rack), as in the twin.
    rack_cap_kw: Annotated[float, Field(gt=0, le=1e6)] | None = None
    # Outdoor temperature the cooling model starts at (None: its design temperature); a weather
    # or building-management feed updates it through PUT /v1/power.
    outdoor_temp_c: Annotated[float, Field(ge=-60, le=70)] | None = None
    # A site battery (control/live_battery.py): its charge is modelled with the twin's dispatch
    # on the live facility draw. Efficiency: power/data/battery_units.csv's Megapack unless
    # given; the grid ramp limit it buffers: power/data/grid.csv's unless given.
    battery_mwh: Annotated[float, Field(gt=0, le=1e6)] | None = None
    battery_mw: Annotated[float, Field(gt=0, le=1e6)] | None = None
    battery_efficiency: Annotated[float, Field(gt=0, le=1)] | None = None
    grid_ramp_mw_per_min: Annotated[float, Field(gt=0, le=1e6)] | None = None

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        from cortex.scheduler.registry import PROFILES

        if v not in PROFILES:
            raise ValueError(f"unknown policy {v!r}; known: {', '.join(PROFILES)}")
        return v

    @field_validator("power_policy")
    @classmethod
    def _known_power_policy(cls, v: str) -> str:
        from cortex.scheduler.registry import power_profile

        try:
            power_profile(v, live=True)
        except KeyError as err:
            raise ValueError(err.args[0]) from None
        return v

    @model_validator(mode="after")
    def _power_cap_given(self) -> Settings:
        from cortex.scheduler.registry import power_profile

        if power_profile(self.power_policy).needs_site_cap and self.site_cap_kw is None:
            raise ValueError(f"site_cap_kw: power policy {self.power_policy} needs a site cap")
        return self

    @model_validator(mode="after")
    def _battery_whole(self) -> Settings:
        from cortex.scheduler.registry import power_profile

        if (self.battery_mwh is None) != (self.battery_mw is None):
            raise ValueError("battery_mw: give battery_mwh and battery_mw together")
        live = power_profile(self.power_policy).make is not None or self.site_cap_kw is not None
        if self.battery_mwh is not None and not live:
            raise ValueError(
                "battery_mwh: a battery needs a power policy or site_cap_kw "
                "(its charge follows the power books' facility draw)"
            )
        return self

    @field_validator("team_priority_classes")
    @classmethod
    def _known_classes(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        # The control plane's classes are the fleet's defaults (control/fleet.queues_spec): a
        # misspelt one here took away a team's class at every submit, with no word at start.
        from cortex.scheduler.queues import DEFAULT_PRIORITY_CLASSES

        for team, classes in v.items():
            for c in classes:
                if c not in DEFAULT_PRIORITY_CLASSES:
                    raise ValueError(
                        f"{team}: unknown priority class {c[:64]!r}; "
                        f"known: {', '.join(DEFAULT_PRIORITY_CLASSES)}"
                    )
        return v

    @field_validator("workdir_roots")
    @classmethod
    def _absolute_roots(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for team, roots in v.items():
            for r in roots:
                if not r.startswith(("/", "{home}")) or ".." in r.split("/"):
                    raise ValueError(f"{team}: root {r!r} must be an absolute path without '..'")
        return v

    @field_validator("run_as")
    @classmethod
    def _known_users(cls, v: str | None) -> str | None:
        # Checked here, not at first launch, so a typo stops `cortex serve` naming this field.
        if v:
            from cortex.executors.local.users import PrivilegeError, RunAs, parse_run_as

            try:
                for user in parse_run_as(v).values():
                    RunAs.named(user)
            except PrivilegeError as err:
                raise ValueError(str(err)) from None
        return v

    @model_validator(mode="after")
    def _secrets_from_files(self) -> Settings:
        for name, lo, hi in (("admin_token", 12, 512), ("database_url", 1, 4096)):
            got: FileSecret | None = getattr(self, f"{name}_file")
            if got is None:
                continue
            if getattr(self, name) is not None:
                raise ValueError(f"{name}_file: give {name} or {name}_file, not both")
            if not lo <= len(got.value) <= hi:
                raise ValueError(f"{name}_file: {got.path}: must hold {lo} to {hi} characters")
            # Frozen model: the value read is set once here, so every reader of admin_token
            # or database_url sees it whichever way it was given.
            object.__setattr__(self, name, got.value)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if self.retry_backoff_max_s < self.retry_backoff_base_s:
            raise ValueError("retry_backoff_max_s must not be below retry_backoff_base_s")
        if self.burn_in_check_s >= self.burn_in_timeout_s:
            raise ValueError("burn_in_check_s: must be below burn_in_timeout_s")
        return self

    @field_validator("burn_in_command")
    @classmethod
    def _command_words(cls, v: str | None) -> str | None:
        if v is not None:
            import shlex

            try:
                words = shlex.split(v)
            except ValueError as err:
                raise ValueError(f"cannot split into words: {err}") from None
            if not words or any("\x00" in w for w in words):
                raise ValueError("must name a command, without NUL characters")
        return v

    @property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'cortex.db'}"

    @property
    def connect_url(self) -> str:
        """`url` with the connect timeout, for every connection the service opens."""
        from cortex.control.db import with_connect_timeout

        return with_connect_timeout(self.url, self.db_connect_timeout_s)

    @property
    def run_dir(self) -> Path:
        return self.home / "runs"

    @property
    def loopback_only(self) -> bool:
        return self.host in ("127.0.0.1", "::1", "localhost")

    def workdir_roots_for(self, team: str) -> list[PurePosixPath]:
        roots = self.workdir_roots.get(team, self.workdir_roots.get("*", []))
        return [
            PurePosixPath(r.replace("{home}", str(self.home)).replace("{team}", team))
            for r in roots
        ]

    def priority_classes_for(self, team: str) -> list[str] | None:
        """The classes `team` may use; None: every class (no entry for it, nor a "*")."""
        got = self.team_priority_classes
        return got.get(team, got.get("*"))

    @property
    def job_users(self) -> dict[str, str]:
        from cortex.executors.local.users import parse_run_as

        return parse_run_as(self.run_as) if self.run_as else {}

    def job_user_for(self, team: str) -> str | None:
        users = self.job_users
        return users.get(team, users.get("*"))

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """CORTEX_* variables; explicit overrides (CLI options) win. Bad values raise
        InputError naming the variable (or the flag) and the reason."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**given)  # type: ignore[arg-type]
        except ValidationError as err:
            raise settings_error(err, given) from None
        except SettingsError as err:  # a variable of JSON (a map) that does not parse
            field = re.search(r'field "(\w+)"', str(err))
            source = ENV_PREFIX + field.group(1).upper() if field else "settings"
            raise InputError(source, "value", f"not valid JSON: {err.__cause__}") from None
        except RecursionError:  # JSON nested past the parser's depth: not a ValueError
            raise InputError(_too_deep(), "value", "not valid JSON: nested too deeply") from None


def _too_deep() -> str:
    """The CORTEX_* variable whose JSON nests past the parser's depth (pydantic-settings lets
    json.loads's RecursionError through, naming no field: it was a traceback, exit 1)."""
    import json
    import os

    for name, value in sorted(os.environ.items()):
        if name.startswith(ENV_PREFIX) and value.lstrip()[:1] in ("[", "{"):
            try:
                json.loads(value)
            except RecursionError:
                return name
            except ValueError:
                continue
    return "settings"


def settings_error(err: ValidationError, flags: dict[str, Any]) -> InputError:
    first = err.errors(include_url=False)[0]
    loc = [str(x) for x in first.get("loc", ())]
    msg = str(first.get("msg", "invalid value"))
    if not loc:
        # A check across fields names its field first: "Value error, admin_token_file: ..."
        head, _, rest = msg.removeprefix("Value error, ").partition(": ")
        if head in Settings.model_fields and rest:
            loc, msg = [head], rest
    field = loc[0] if loc else ""
    if field in flags:
        source = "--" + field.replace("_", "-")
    elif field:
        source = ENV_PREFIX + field.upper()
    else:
        source = "settings"
    rest = ".".join(loc[1:])
    return InputError(source, rest or "value", msg)
