"""cortex.cli.http (the standard library client for plain HTTP) sends what httpx sends and reads
answers as httpx reads them: both against the same real server on loopback (the standard
library's http.server in a thread, echoing each request)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from cortex.cli import http


class Echo(BaseHTTPRequestHandler):
    """Answers with what it received; `/status/N` answers N, `/text` a latin-1 body, `/stream`
    chunked bytes with a UTF-8 character split across two chunks."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        route = self.path.removeprefix("/prefix")
        if route.startswith("/status/"):
            code = int(route.rsplit("/", 1)[1])
            payload = json.dumps({"detail": f"refused {code}"}).encode()
            self._send(code, payload, "application/json")
        elif route == "/text":
            self._send(200, "café\n".encode("latin-1"), "text/plain; charset=latin-1")
        elif route == "/stream":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"line 1\n\xc3", b"\xa9 line 2\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            seen = {
                "method": self.command,
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "auth": self.headers.get("Authorization"),
                "key": self.headers.get("Idempotency-Key"),
                "body": body,
            }
            self._send(200, json.dumps(seen).encode(), "application/json")

    def _send(self, code: int, payload: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815  (http.server's names)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prefix/"
    server.shutdown()
    server.server_close()


def _both(base: str) -> list[Any]:
    h = {"Authorization": "Bearer t0k"}
    return [
        http.Client(base_url=base.rstrip("/"), headers=h, timeout=10),
        httpx.Client(base_url=base.rstrip("/"), headers=h, timeout=10),
    ]


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/jobs", {"params": {"limit": 5, "state": "queued", "start": True}}),
    ("GET", "/v1/jobs", {"params": {"all": False, "team": None, "q": "a b&c=d/é"}}),
    ("GET", "/v1/jobs/7/why", {"params": {}}),
    ("POST", "/v1/jobs/7/cancel", {"json": {"ids": [1, 2], "reason": 'é "quoted"'}}),
    (
        "POST",
        "/v1/jobs",
        {
            "content": b'{"name":"x"}',
            "headers": {"Content-Type": "application/json", "Idempotency-Key": "k-1"},
        },
    ),
    ("DELETE", "/v1/tokens/3", {}),
    ("GET", "/status/422", {}),
    ("GET", "/status/404", {}),
    ("GET", "/text", {}),
]


@pytest.mark.parametrize(("method", "path", "kw"), REQUESTS)
def test_same_request_same_answer(base: str, method: str, path: str, kw: dict[str, Any]) -> None:
    got = []
    for c in _both(base):
        with c:
            r = c.request(method, path, **kw)
            ctype = r.headers.get("content-type", "")
            got.append(
                (r.status_code, ctype, r.text, r.json() if "json" in ctype else None,
                 r.reason_phrase)
            )  # fmt: skip
    assert got[0] == got[1]
    if got[0][3] is not None and "method" in got[0][3]:
        assert got[0][3]["path"].startswith("/prefix/v1/")  # the base URL's path is kept
        assert got[0][3]["auth"] == "Bearer t0k"


def test_stream_reads_the_same_bytes(base: str) -> None:
    out = []
    for c in _both(base):
        with c, c.stream("GET", "/stream") as r:
            out.append((r.status_code, b"".join(r.iter_bytes())))
    assert out[0] == out[1] == (200, "line 1\né line 2\n".encode())


def test_a_closed_port_is_a_transport_error() -> None:
    with socket.socket() as s:  # a port just freed: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mine = http.Client(base_url=f"http://127.0.0.1:{port}", headers={}, timeout=5)
    with pytest.raises(http.TransportError) as err:
        mine.request("GET", "/healthz")
    with pytest.raises(httpx.TransportError) as theirs:
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5).get("/healthz")
    assert str(err.value) == str(theirs.value)  # the line `cortex` prints names the cause alike
    assert issubclass(http.TransportError, http.transport_errors())


@pytest.mark.parametrize(
    ("url", "env", "plain"),
    [
        ("http://127.0.0.1:8080", {}, True),
        ("https://cortex.example:8443", {}, False),  # TLS: httpx
        ("http://cortex.example:8080", {"HTTPS_PROXY": "http://proxy:3128"}, False),
        ("http://cortex.example:8080", {"http_proxy": "http://proxy:3128"}, False),
    ],
)
def test_plain_http_only_without_proxy(
    url: str, env: dict[str, str], plain: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert http.plain(url) is plain


def test_client_picks_the_standard_library_for_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    from cortex.cli import client

    for k in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("CORTEX_URL", "http://127.0.0.1:8080")
    assert isinstance(client._client(), http.Client)
    monkeypatch.setenv("CORTEX_URL", "https://127.0.0.1:8443")
    with client._client() as c:
        assert isinstance(c, httpx.Client)
