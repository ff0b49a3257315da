"""Who jobs run as (executors/local/users.py): the refusals, the mapping syntax, secret files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cortex.control.config import Settings
from cortex.control.service import local_executor
from cortex.executors.local.executor import LocalExecutor
from cortex.executors.local.users import (
    PrivilegeError,
    UserMap,
    base_env,
    parse_run_as,
    read_secret_file,
    resolve_allow_same_user,
    scrub_environ,
)
from cortex.executors.spec import LaunchSpec


def test_parse_run_as() -> None:
    assert parse_run_as("red=alice, blue=bob,*=nobody") == {
        "red": "alice",
        "blue": "bob",
        "*": "nobody",
    }
    for bad in ("red", "=alice", "red=", "red=alice,blue"):
        with pytest.raises(PrivilegeError, match="run_as: expected team=user"):
            parse_run_as(bad)


def test_jobs_as_the_service_user_are_refused_unless_allowed(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "runs")  # allow_same_user defaults to False
    spec = LaunchSpec(1, 1, ["true"], {}, None, [0], team="red")
    with pytest.raises(PrivilegeError, match="service's own user"):
        ex.launch(spec)
    assert not (tmp_path / "runs" / "jobs" / "1" / "attempts" / "1").exists()
    assert UserMap(None, False).refusal() is not None
    assert UserMap(None, True).refusal() is None


def test_unmapped_team_and_unknown_user_are_refused() -> None:
    me = UserMap(None, True).me.name
    users = UserMap({"red": me}, True)
    assert users.for_team("red").name == me
    with pytest.raises(PrivilegeError, match="team 'blue' has no Unix user"):
        users.for_team("blue")
    with pytest.raises(PrivilegeError, match="no Unix user named"):
        UserMap({"red": "no-such-user-cortex"}, True)


def test_default_policy_root_refuses_a_laptop_runs_as_itself(tmp_path: Path) -> None:
    # Explicit settings win; with nothing set, only a non-root service without a mapping
    # runs jobs as itself.
    assert resolve_allow_same_user(True, {"a": "b"}) is True
    assert resolve_allow_same_user(False, None) is False
    assert resolve_allow_same_user(None, {"a": "b"}) is False
    assert resolve_allow_same_user(None, None) is (os.geteuid() != 0)
    if os.geteuid() == 0:
        with pytest.raises(PrivilegeError, match="allow_same_user"):
            local_executor(Settings(home=tmp_path, slots=1))


def test_job_env_starts_from_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORTEX_ADMIN_TOKEN", "admin-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "service-cloud-key")
    monkeypatch.setenv("PATH", "/opt/bin:/usr/bin")
    me = UserMap(None, True).me
    env = base_env(me, os.environ)
    assert env["PATH"] == "/opt/bin:/usr/bin" and env["USER"] == me.name
    assert "CORTEX_ADMIN_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert scrub_environ() == ["CORTEX_ADMIN_TOKEN"]
    assert "CORTEX_ADMIN_TOKEN" not in os.environ


def test_secret_files_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "admin-token"
    f.write_text("ctx_from-a-file\n")
    os.chmod(f, 0o644)
    with pytest.raises(PrivilegeError, match="readable by others"):
        read_secret_file(f)
    os.chmod(f, 0o600)
    assert read_secret_file(f) == "ctx_from-a-file"


def test_env_sealed_under_another_key_fails_naming_the_variable(tmp_path: Path) -> None:
    from cortex.control.envcrypt import EnvBox, EnvBoxError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = EnvBox.at(tmp_path / "a"), EnvBox.at(tmp_path / "b")
    sealed = a.seal({"TOKEN": "t0p"})
    assert sealed["TOKEN"] != "t0p" and a.open(sealed) == {"TOKEN": "t0p"}
    assert EnvBox.at(tmp_path / "a").open(sealed) == {"TOKEN": "t0p"}  # the key persists
    assert a.open({"OLD": "plain"}) == {"OLD": "plain"}  # stored before encryption
    with pytest.raises(EnvBoxError, match=r"env\.TOKEN"):
        b.open(sealed)
