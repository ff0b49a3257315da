"""Issue 9, defect 1: a team's job must not become admin. A live `cortex serve` (root) maps two
teams to two fresh Unix users; one team's job then tries what the audit did: read the service's
/proc/<pid>/environ (admin token, database URL), open the SQLite store to read it and to insert
an admin token, read the other team's spec (its env secrets) and checkpoints, list CORTEX_HOME.
Every attempt must be denied, and the token it tried to mint must not work.

Needs root (to create users and to run jobs as them), as in CI; skipped otherwise."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live import ADMIN, LiveServer, wait_for

from cortex.control.auth import hash_token

USERS = {"red": "cortex-test-red", "blue": "cortex-test-blue"}
SECRET = "blue-team-secret-4c1d"
MINTED = "ctx_minted-by-the-attack"
JOB_PY = "/usr/bin/python3"  # readable by any user (the venv's may live under /root)

ATTACK = r"""
import json, os, sqlite3, sys
pid, db, blue, home, minted_hash = sys.argv[1:6]
out = {"uid": os.getuid(), "env_leak": [k for k in os.environ if k.startswith("CORTEX_ADMIN")
       or "DATABASE" in k]}
def attempt(name, fn):
    try:
        out[name] = "READ " + repr(fn())[:300]
    except Exception as e:
        out[name] = "denied " + type(e).__name__
attempt("service_environ", lambda: open(f"/proc/{pid}/environ", "rb").read())
attempt("store_read", lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        .execute("select env from jobs").fetchall())
def mint():
    con = sqlite3.connect(db)
    con.execute("insert into tokens (team_id, admin, token_hash, label, created_at) "
                "values (null, 1, ?, 'pwned', 0)", (minted_hash,))
    con.commit()
    return "inserted"
attempt("store_write", mint)
attempt("blue_spec", lambda: open(f"{blue}/attempts/1/spec.json").read())
attempt("blue_checkpoint", lambda: open(f"{blue}/checkpoints/ckpt").read())
attempt("blue_checkpoints_list", lambda: os.listdir(f"{blue}/checkpoints"))
attempt("blue_attempts_list", lambda: os.listdir(f"{blue}/attempts"))
attempt("home_list", lambda: os.listdir(home))
print(json.dumps(out), flush=True)
"""

BLUE = r"""
import os, time
with open(os.path.join(os.environ["CORTEX_CHECKPOINT_DIR"], "ckpt"), "w") as f:
    f.write(os.environ["BLUE_SECRET"])
print("ready", flush=True)
time.sleep(120)
"""


def _make_users() -> None:
    for name in USERS.values():
        r = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode not in (0, 9):  # 9: the user exists already
            pytest.fail(f"useradd {name}: {r.stderr}")


@pytest.fixture
def server() -> Iterator[LiveServer]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates Unix users and runs jobs as them (CI runs as root)")
    if shutil.which("useradd") is None or not os.access(JOB_PY, os.X_OK):
        pytest.skip("needs useradd and /usr/bin/python3")
    _make_users()
    # Not under pytest's tmp dir: that is 0700 root, and jobs must reach their checkpoints.
    base = Path(tempfile.mkdtemp(prefix="cortex-priv-", dir="/tmp"))
    os.chmod(base, 0o711)
    srv = LiveServer(base / "home", f"sqlite:///{base / 'home' / 'cortex.db'}", slots=2)
    srv.extra_env = {
        "CORTEX_RUN_AS": ",".join(f"{t}={u}" for t, u in USERS.items()),
        "CORTEX_ALLOW_SAME_USER": "0",
    }
    srv.home.mkdir()
    srv.start()
    yield srv
    srv.stop()
    srv.cleanup_runs()
    shutil.rmtree(base, ignore_errors=True)


def _job(c: httpx.Client, job_id: int) -> dict:
    return dict(c.get(f"/v1/jobs/{job_id}").json())


def test_a_job_cannot_read_the_service_the_store_or_another_team(server: LiveServer) -> None:
    red = server.client(server.team_token("red"))
    blue = server.client(server.team_token("blue"))
    admin = server.client(ADMIN)
    r = blue.post(
        "/v1/jobs",
        json={
            "name": "blue",
            "gpus": 1,
            "duration_s": 60,
            "command": [JOB_PY, "-c", BLUE],
            "env": {"BLUE_SECRET": SECRET},
        },
    )
    assert r.status_code == 201, r.text
    b = r.json()["id"]
    wait_for(lambda: "ready" in admin.get(f"/v1/jobs/{b}/logs").text, "blue's job to start")
    blue_dir = server.home / "runs" / "jobs" / str(b)
    assert server.proc is not None
    args = [str(server.proc.pid), str(server.home / "cortex.db"), str(blue_dir)]
    args += [str(server.home), hash_token(MINTED)]
    body = {"name": "attack", "gpus": 1, "duration_s": 60, "command": [JOB_PY, "-c", ATTACK]}
    body["command"] += args
    r = red.post("/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    a = r.json()["id"]
    done = wait_for(
        lambda: (j := _job(red, a))["state"] in ("completed", "failed") and j, "the attack job"
    )
    log = admin.get(f"/v1/jobs/{a}/logs").text
    assert done["state"] == "completed", (done, log, admin.get(f"/v1/jobs/{a}/logs?stream=stderr"))
    got = json.loads(log.strip().splitlines()[-1])
    assert got["uid"] == pwd.getpwnam(USERS["red"]).pw_uid  # not root, not blue
    assert got["env_leak"] == []
    for name, result in got.items():
        if name not in ("uid", "env_leak"):
            assert result.startswith("denied"), (name, result)
    assert SECRET not in log and ADMIN not in log
    # Nothing was minted: the token the job tried to insert is unknown to the service.
    minted = httpx.get(f"{server.base}/v1/jobs", headers={"Authorization": f"Bearer {MINTED}"})
    assert minted.status_code == 401
    # The store and CORTEX_HOME are the service's alone.
    assert stat.S_IMODE((server.home / "cortex.db").stat().st_mode) == 0o600
    for side in ("cortex.db-wal", "cortex.db-shm"):
        p = server.home / side
        if p.exists():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, side
    assert stat.S_IMODE(server.home.stat().st_mode) & 0o066 == 0  # no read/write for others
    admin.post(f"/v1/jobs/{b}/cancel")
