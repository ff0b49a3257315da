"""Liveness, readiness, /metrics and /docs access, local Swagger assets, and `logs` following
a job across attempts (issue 9)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import ADMIN, fake_service, job_body

from cortex.control.service import Service

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


class _Follower:
    """What a `logs --follow` stream has delivered so far, for a thread that writes the logs
    to wait on: a fixed sleep for the follower to catch up lost to a loaded machine now and
    then (the follower had not read attempt 1, or the part before a rotation, in time)."""

    WAIT_S = 60.0  # generous; on a timeout the writer goes on and the test's assert fails

    def __init__(self) -> None:
        self.got = b""
        self.changed = threading.Condition()

    def read_all(self, r: Any) -> bytes:
        for chunk in r.iter_bytes():
            with self.changed:
                self.got += chunk
                self.changed.notify_all()
        return self.got

    def until(self, prefix: bytes) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.got.startswith(prefix), timeout=self.WAIT_S)


def sqlite_service(tmp_path: Path, **kw: object) -> Service:
    return fake_service(f"sqlite:///{tmp_path / 'ops.db'}", tmp_path, **kw)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    service = sqlite_service(tmp_path, retry_backoff_base_s=0.0, retry_backoff_max_s=0.0)
    yield service
    service.close()


def test_healthz_is_503_when_the_loop_stops_ticking(svc: Service) -> None:
    c = TestClient(svc.app)
    svc.loop.tick()
    r = c.get("/healthz")
    assert r.status_code == 200 and r.json()["last_tick_age_s"] < svc.settings.health_stale_s
    # As if every tick since had raised (what an unusable queue row once caused).
    svc.loop.last_tick_monotonic = time.monotonic() - svc.settings.health_stale_s - 1
    r = c.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "stale"
    svc.loop.tick()
    assert c.get("/healthz").status_code == 200
    svc.loop.healthy = False  # what the loop sets after several failed ticks in a row
    assert c.get("/healthz").json()["status"] == "failing"
    assert c.get("/healthz").status_code == 503
    svc.loop.tick()  # a tick that succeeds makes it healthy again
    assert c.get("/readyz").json() == {"ready": True, "store": "ok", "executor": "ok"}


def test_readyz_is_503_when_the_store_is_gone(svc: Service) -> None:
    svc.engine.dispose()
    (Path(svc.settings.home) / "ops.db").unlink()
    (Path(svc.settings.home) / "ops.db").mkdir()  # a path SQLite cannot open
    r = TestClient(svc.app).get("/readyz")
    assert r.status_code == 503 and r.json()["store"].startswith("error")


def test_metrics_and_docs_are_open_on_loopback_and_need_a_token_otherwise(
    tmp_path: Path,
) -> None:
    local = sqlite_service(tmp_path / "a")
    public = sqlite_service(tmp_path / "b", host="0.0.0.0")
    try:
        lc, pc = TestClient(local.app), TestClient(public.app)
        for path in ("/metrics", "/docs", "/openapi.json"):
            assert lc.get(path).status_code == 200, path
            assert pc.get(path, headers=ADMIN_H).status_code == 200, path
        for path in ("/metrics", "/openapi.json"):
            assert pc.get(path).status_code == 401, path
        # /docs without a token: the page that asks for one, holding nothing of the API.
        page = pc.get("/docs")
        assert page.status_code == 200 and "/v1/jobs" not in page.text
        bad = {"Authorization": "Bearer ctx_not-a-token-0123456789"}
        assert pc.get("/docs", headers=bad).status_code == 401
    finally:
        local.close()
        public.close()


def test_docs_work_for_a_browser_with_a_token_when_ops_need_one(tmp_path: Path) -> None:
    """Issue 9 leftover: with ops access `token`, a browser opening /docs sends no header, so
    the old page was a 401, and the stock Swagger page (had it loaded) fetched /openapi.json
    without the token: a 401 again. The page now asks for the token and sends it as a header
    on the schema request and on every "try it out" request; the schema itself stays
    token-only. (No browser here: the test checks the page's requests the way it makes
    them.)"""
    public = sqlite_service(tmp_path, ops_access="token")
    try:
        c = TestClient(public.app)
        page = c.get("/docs")  # a browser's navigation: no Authorization header
        assert page.status_code == 200, page.text
        html = page.text
        assert 'fetch("/openapi.json", {headers: auth})' in html
        assert 'Authorization: "Bearer " + token' in html
        assert "requestInterceptor" in html and "spec: await r.json()" in html
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert f"/docs/assets/{asset}" in html
            assert c.get(f"/docs/assets/{asset}").status_code == 200
        # What the page's fetch sends: the schema with the token, a 401 without.
        assert c.get("/openapi.json").status_code == 401
        schema = c.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN}"})
        assert schema.status_code == 200 and "/v1/jobs" in schema.json()["paths"]
    finally:
        public.close()


def test_docs_load_their_assets_from_the_service(svc: Service) -> None:
    c = TestClient(svc.app)
    html = c.get("/docs").text
    assert "cdn" not in html.lower() and "/docs/assets/swagger-ui-bundle.js" in html
    js = c.get("/docs/assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000  # the real bundle, ~1 MB


def test_logs_follow_crosses_attempts_until_the_job_is_final(svc: Service) -> None:
    c = TestClient(svc.app)
    token = c.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    svc.loop.tick()
    job_id = c.post("/v1/jobs", json=job_body(), headers=h).json()["id"]
    ex = svc.executor

    def write(attempt: int, text: str) -> None:
        out, _ = ex.log_paths(job_id, attempt)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)

    def attempt_now() -> int:
        return int(c.get(f"/v1/jobs/{job_id}", headers=h).json()["attempt"])

    follower = _Follower()

    def drive() -> None:
        svc.loop.tick()  # attempt 1 starts
        write(1, "one\n")
        follower.until(b"one\n")  # the follower reads attempt 1 while it runs
        ex.finish(job_id, "preempted", 75)  # requeued: the job is not final
        for _ in range(50):  # a bounded number of ticks until attempt 2 runs
            svc.loop.tick()
            if attempt_now() == 2:
                break
        write(2, "two\n")
        follower.until(b"one\ntwo\n")
        ex.finish(job_id, "completed", 0)
        svc.loop.tick()

    t = threading.Thread(target=drive)
    t.start()
    try:
        with c.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": True}, headers=h) as r:
            text = follower.read_all(r).decode()
    finally:
        t.join(timeout=180)
    assert text == "one\ntwo\n"  # the old follow ended with attempt 1
    assert c.get(f"/v1/jobs/{job_id}", headers=h).json()["state"] == "completed"


def test_serve_with_tls_caps_the_request_head(tmp_path: Path) -> None:
    """A real `cortex serve` over TLS: HTTPS answers, and a 100 KB header is refused with 431
    as it arrives (httptools alone would buffer it whole)."""
    import contextlib
    import os
    import shutil
    import socket
    import ssl
    import subprocess
    import sys

    import httpx

    from cortex.control.devpg import free_port

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    env = {**os.environ, "CORTEX_ADMIN_TOKEN": ADMIN, "CORTEX_HOME": str(tmp_path / "home")}
    # Tests run as root (CI too): a root service needs a team -> user map or this explicit flag.
    env["CORTEX_ALLOW_SAME_USER"] = "1"
    args = ["serve", "--port", str(port), "--slots", "1", "--tls-cert", str(cert)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cortex.cli.main", *args, "--tls-key", str(key)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):  # bounded: up to 60 s for the server to come up
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("cortex serve did not answer over TLS")
        assert r.status_code == 200
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"y" * 100_000 + b"\r\n\r\n"
            with contextlib.suppress(OSError):  # the server may close before reading it all
                tls.sendall(head)
            answer = tls.recv(200)
        assert answer.startswith(b"HTTP/1.1 431"), answer
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_logs_follow_restarts_at_0_after_the_log_is_rotated(svc: Service) -> None:
    """The runner rotates a log at its cap (stdout.log -> stdout.log.1, a new stdout.log).
    A follower at offset 100 in the old part must get the old part's last bytes and then the
    new part from 0. The old follow kept its offset: the new part had 300 bytes >= 100, so it
    went on at byte 100 of it and lost the old part's tail and the new part's first 100 bytes."""
    from cortex.executors.local.runner import _rotate

    c = TestClient(svc.app)
    token = c.post("/v1/tokens", json={"team": "fsd"}, headers=ADMIN_H).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    svc.loop.tick()
    job_id = c.post("/v1/jobs", json=job_body(), headers=h).json()["id"]
    ex = svc.executor

    follower = _Follower()

    def drive() -> None:
        svc.loop.tick()  # attempt 1 starts
        out, _ = ex.log_paths(job_id, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"A" * 100)
        follower.until(b"A" * 100)  # the follower is at offset 100 of the old part
        with out.open("ab") as f:
            f.write(b"B" * 20)  # written to the old part just before the cap
        _rotate(out, 2)  # what the runner's copier does at the cap
        out.write_bytes(b"C" * 300)
        follower.until(b"A" * 100 + b"B" * 20 + b"C" * 300)  # read while the job runs
        ex.finish(job_id, "completed", 0)
        svc.loop.tick()

    t = threading.Thread(target=drive)
    t.start()
    try:
        with c.stream("GET", f"/v1/jobs/{job_id}/logs", params={"follow": True}, headers=h) as r:
            got = follower.read_all(r)
    finally:
        t.join(timeout=180)
    assert got == b"A" * 100 + b"B" * 20 + b"C" * 300


def test_log_follower_reads_across_rotations_and_truncation(tmp_path: Path) -> None:
    """The follower itself, step by step (no timing): rename rotation twice, then a file cut
    short in place (rotation keeping no parts), then a file that is not there yet."""
    from cortex.control.api.logs import LogFollower
    from cortex.executors.local.runner import _rotate

    log = tmp_path / "stdout.log"
    f = LogFollower(log)
    assert f.read() == b""  # not created yet
    log.write_bytes(b"1" * 10)
    assert f.read() == b"1" * 10
    with log.open("ab") as fh:
        fh.write(b"2" * 5)
    _rotate(log, 2)
    assert f.read() == b"2" * 5  # the old part's end; the new part is not there yet
    log.write_bytes(b"3" * 40)
    assert f.read() == b"3" * 40
    _rotate(log, 2)
    log.write_bytes(b"4" * 50)  # more than our offset (40): an offset check alone misses it
    assert f.read() == b"4" * 50
    assert (tmp_path / "stdout.log.1").read_bytes() == b"3" * 40
    log.write_bytes(b"5" * 7)  # truncated in place and rewritten, shorter than our offset
    assert f.read() == b"5" * 7
    assert f.read() == b""
    f.close()
    tailed = LogFollower(log, tail_lines=1)
    log.write_bytes(b"x\ny\nz\n")
    assert tailed.read() == b"z\n"
    with log.open("ab") as fh:
        fh.write(b"w\n")
    assert tailed.read() == b"w\n"
    tailed.close()


NODE_HARNESS = """
const calls = [];
let onSubmit = null;
const els = {
  "cortex-login": {hidden: false, addEventListener: (ev, fn) => { onSubmit = fn; }},
  "cortex-token": {value: process.env.TOKEN},
  "cortex-msg": {textContent: ""},
};
global.document = {getElementById: (id) => els[id]};
global.fetch = async (url, opts) => {
  calls.push([url, opts.headers.Authorization]);
  const ok = opts.headers.Authorization === "Bearer " + process.env.GOOD;
  return {ok, status: ok ? 200 : 401, json: async () => ({paths: {"/v1/jobs": {}}})};
};
global.SwaggerUIBundle = (cfg) => {
  const tried = cfg.requestInterceptor({url: "/v1/jobs", headers: {}});
  console.log(JSON.stringify({calls, spec: cfg.spec, auth: tried.headers.Authorization,
                              hidden: els["cortex-login"].hidden}));
};
PAGE_SCRIPT
onSubmit({preventDefault() {}});
setTimeout(() => { if (els["cortex-msg"].textContent)
  console.log(JSON.stringify({calls, msg: els["cortex-msg"].textContent})); }, 50);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
@pytest.mark.parametrize("good", [True, False])
def test_the_token_docs_page_script_sends_the_token(tmp_path: Path, good: bool) -> None:
    """The page's own script, run in node with a stand-in DOM, fetch and Swagger UI: the token
    typed in goes as a header with the schema request and with every "try it out" request;
    a refused token leaves the form up with the status."""
    import json
    import re
    import subprocess

    public = sqlite_service(tmp_path, ops_access="token")
    try:
        html = TestClient(public.app).get("/docs").text
    finally:
        public.close()
    inline = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(inline) == 1
    script = NODE_HARNESS.replace("PAGE_SCRIPT", inline[0])
    env = {"PATH": os.environ["PATH"], "TOKEN": " ctx_typed-token ", "GOOD": "ctx_typed-token"}
    if not good:
        env["GOOD"] = "ctx_another-token"
    out = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=60, env=env, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["calls"] == [["/openapi.json", "Bearer ctx_typed-token"]]  # trimmed, as a header
    if good:
        assert got["spec"] == {"paths": {"/v1/jobs": {}}}
        assert got["auth"] == "Bearer ctx_typed-token" and got["hidden"] is True
    else:
        assert got["msg"] == "the service refused it (401)"
