"""Issue 9 leftover: the service's secrets from files (`CORTEX_ADMIN_TOKEN_FILE`,
`CORTEX_DATABASE_URL_FILE`), so they stay out of /proc/<pid>/environ. A file that group or
others can read is refused, naming the setting; a private one works end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import fake_service

from cortex.control.settings import Settings
from cortex.errors import InputError


def secret_file(path: Path, text: str, mode: int) -> Path:
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("CORTEX_"):
            monkeypatch.delenv(name)
    yield


@pytest.mark.parametrize("var", ["CORTEX_ADMIN_TOKEN_FILE", "CORTEX_DATABASE_URL_FILE"])
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_a_secret_file_others_can_read_is_refused_naming_the_setting(
    tmp_path: Path, var: str, mode: int
) -> None:
    f = secret_file(tmp_path / "secret", "ctx_a-token-long-enough", mode)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_")} | {
        "CORTEX_HOME": str(tmp_path / "home"),
        var: str(f),
    }
    p = subprocess.run(
        [sys.executable, "-m", "cortex.cli.main", "serve"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"error: {var}: "), p.stderr
    assert f"mode {mode:o}" in p.stderr


def test_secret_files_give_the_admin_token_and_the_database_url(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "ctx_admin-from-a-file-0123456789"
    url = f"sqlite:///{tmp_path / 'from-file.db'}"
    monkeypatch.setenv("CORTEX_ADMIN_TOKEN_FILE", str(secret_file(tmp_path / "t", token, 0o600)))
    monkeypatch.setenv("CORTEX_DATABASE_URL_FILE", str(secret_file(tmp_path / "u", url, 0o400)))
    s = Settings.from_env(home=tmp_path)
    assert (s.admin_token, s.url) == (token, url)
    assert token not in repr(s.admin_token_file) and url not in repr(s.database_url_file)
    # The service built from them accepts the file's token and keeps its store at that URL.
    svc = fake_service(url, tmp_path, admin_token=None, database_url=None)
    try:
        assert svc.settings.admin_token == token
        with TestClient(svc.app) as c:
            ok = c.get("/v1/tokens", headers={"Authorization": f"Bearer {token}"})
            bad = c.get("/v1/tokens", headers={"Authorization": "Bearer ctx_wrong-0123456789"})
        assert (ok.status_code, bad.status_code) == (200, 401)
    finally:
        svc.close()
    assert (tmp_path / "from-file.db").exists()


@pytest.mark.parametrize(
    ("token_var", "text", "why"),
    [
        ("ctx_both-given-0123456789", "ctx_in-the-file-0123456789", "not both"),
        (None, "short", "12 to 512"),  # the file holds a token too short to be one
        (None, "", "1 to 4096"),
    ],
)
def test_secret_file_conflicts_and_bad_contents_name_the_setting(
    tmp_path: Path,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    token_var: str | None,
    text: str,
    why: str,
) -> None:
    monkeypatch.setenv("CORTEX_ADMIN_TOKEN_FILE", str(secret_file(tmp_path / "t", text, 0o600)))
    if token_var is not None:
        monkeypatch.setenv("CORTEX_ADMIN_TOKEN", token_var)
    with pytest.raises(InputError) as err:
        Settings.from_env(home=tmp_path)
    assert err.value.source == "CORTEX_ADMIN_TOKEN_FILE"
    assert why in err.value.reason
