"""Who a job runs as, and what it may inherit from the service.

A job runs as the Unix user its team maps to (like Slurm running a job as its submitter), never
with the service's privileges: the service's user can read the store, the admin token and every
team's run dirs, so a job running as that user could make itself admin (issue 9, defect 1).
The runner (root, when users are mapped) starts the job's processes with the mapped uid and gid
and no supplementary groups, an explicit minimal environment plus the job's own, and umask 077.

Running a job as the service's own user is refused unless asked for (`allow_same_user`). The
default when nothing is configured: a service that is not root and has no mapping is one person
on a laptop, who already owns the store; it runs jobs as itself with a warning. A root service
with no mapping refuses (jobs as root would be the worst case)."""

from __future__ import annotations

import logging
import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("cortex.control")

# What a job inherits from the service's environment: where programs are and how text is
# encoded. Nothing else: the service's environment holds its secrets.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# The service's own secrets: read at start, then removed from os.environ (so that no child
# inherits them, even by mistake).
SERVICE_SECRET_ENV = ("CORTEX_ADMIN_TOKEN", "CORTEX_DATABASE_URL")
ANY_TEAM = "*"


class PrivilegeError(ValueError):
    """A job would run with privileges it must not have, or a mapping cannot be honoured."""


@dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def named(cls, name: str) -> RunAs:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise PrivilegeError(f"run_as: no Unix user named {name!r}") from None
        return cls(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)

    @classmethod
    def current(cls) -> RunAs:
        uid = os.geteuid()
        try:
            pw = pwd.getpwuid(uid)
        except KeyError:  # a container user with no passwd entry
            return cls(str(uid), uid, os.getegid(), os.environ.get("HOME", "/"))
        return cls(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def base_env(user: RunAs, service_env: Mapping[str, str]) -> dict[str, str]:
    """The environment a job (or the runner) starts from: an allow-list, plus who it is."""
    env = {k: service_env[k] for k in INHERITED_ENV if k in service_env}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    return env


def resolve_allow_same_user(setting: bool | None, run_as: Mapping[str, str] | None) -> bool:
    """The setting if given; else allowed only for a non-root service with no mapping (a
    laptop), with a warning."""
    if setting is not None:
        return bool(setting)
    if run_as or os.geteuid() == 0:
        return False
    log.warning(
        "jobs run as this service's own user (%s): any job can read the store and the admin "
        "token. Map teams to Unix users (run_as) when more than one person submits jobs.",
        RunAs.current().name,
    )
    return True


class UserMap:
    """Team -> Unix user, checked once at start; `for_team` at every launch."""

    def __init__(self, run_as: Mapping[str, str] | None, allow_same_user: bool) -> None:
        self.me = RunAs.current()
        self.allow_same_user = bool(allow_same_user)
        self.users = {team: RunAs.named(user) for team, user in (run_as or {}).items()}
        others = [u for u in self.users.values() if u.uid != self.me.uid]
        if others and os.geteuid() != 0:
            raise PrivilegeError(
                f"run_as: running jobs as other users ({others[0].name}) needs a root service"
            )
        # Jobs of other users must traverse CORTEX_HOME to reach their own checkpoint dir.
        self.isolated = bool(others)

    def refusal(self) -> str | None:
        """Why every launch would be refused, if it would (checked at start)."""
        if self.users or self.allow_same_user:
            return None
        return (
            f"allow_same_user: no team-to-user mapping (run_as) and jobs would run as the "
            f"service's own user {self.me.name}; map teams to Unix users, or allow it "
            f"explicitly (--allow-same-user)"
        )

    def for_team(self, team: str | None) -> RunAs:
        user = self.users.get(team or "") or self.users.get(ANY_TEAM)
        if user is None and self.users:
            raise PrivilegeError(f"run_as: team {team!r} has no Unix user in the mapping")
        user = user or self.me
        if user.uid == self.me.uid and not self.allow_same_user:
            raise PrivilegeError(
                f"run_as: refusing to run team {team!r}'s job as the service's own user "
                f"{user.name} (allow_same_user is off)"
            )
        return user


def parse_run_as(text: str) -> dict[str, str]:
    """`team=user,team2=user2` (`*=user` for every other team) -> a mapping."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        team, sep, user = part.partition("=")
        if not sep or not team.strip() or not user.strip():
            raise PrivilegeError(f"run_as: expected team=user, got {part!r}")
        out[team.strip()] = user.strip()
    return out


def read_secret_file(path: Path) -> str:
    """A secret the service needs (admin token, database URL), from a file only its user can
    read: refused when the file is open to group or others, or owned by someone else."""
    st = os.stat(path)
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PrivilegeError(
            f"{path}: readable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it"
        )
    if st.st_uid != os.geteuid():
        raise PrivilegeError(f"{path}: owned by uid {st.st_uid}, not by this service's user")
    return Path(path).read_text().strip()


def scrub_environ(names: tuple[str, ...] = SERVICE_SECRET_ENV) -> list[str]:
    """Remove the service's secrets from os.environ once read (children inherit nothing of
    them). /proc/<pid>/environ still shows the environment the process started with, which
    only its own user (and root) can read: give secrets as files (`*_FILE`) to keep them out
    of it too."""
    gone = [n for n in names if n in os.environ]
    for n in gone:
        del os.environ[n]
    return gone
