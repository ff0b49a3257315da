"""The client commands' HTTP: the standard library's `http.client` for a plain `http://` API
without a proxy (the common case, a cluster's or a laptop's control plane), httpx for anything
else (TLS, proxies from the environment).

Why not httpx everywhere: importing httpx and building its Client (httpcore, h11, its URL and
cookie modules, an SSL context with the CA bundle even for plain HTTP) is about 40% of a client
command's start; `http.client` is already half-loaded by the interpreter's own modules. The
subset here is what `cortex` asks of httpx (one request per connection, no redirects followed,
params and JSON encoded as httpx encodes them) and answers in httpx's shape (`status_code`,
`headers`, `text`, `json()`, `iter_bytes()`), so the commands and the tests' in-process
clients work alike. tests/cli/test_cli_http.py compares the two against a real server."""

from __future__ import annotations

import importlib
import json as jsonlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    import http.client

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


class HTTPError(Exception):
    """A request that got no usable answer (httpx.HTTPError's role)."""


class TransportError(HTTPError):
    """No connection, or it broke: the request may not have reached the server."""


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a transport failure can be raised as: ours, and httpx's when a client came from it."""
    httpx = sys.modules.get("httpx")
    return (TransportError, httpx.TransportError) if httpx else (TransportError,)


def http_errors() -> tuple[type[BaseException], ...]:
    httpx = sys.modules.get("httpx")
    return (HTTPError, httpx.HTTPError) if httpx else (HTTPError,)


def _io_errors() -> tuple[type[BaseException], ...]:
    """http.client's and the socket's errors. http.client (with the email parser under it) is
    imported by the first request, not with this module: `CMD --help` makes none."""
    import http.client

    return (OSError, http.client.HTTPException)


def import_httpx() -> Any:
    """httpx, imported when a command needs it (TLS or a proxy): most commands never do."""
    return importlib.import_module("httpx")


def plain(url: str) -> bool:
    """True when the standard library client serves `url` as httpx would: plain HTTP, no proxy
    variable in the environment (httpx honours them)."""
    return urlsplit(url).scheme == "http" and not any(k.lower() in PROXY_VARS for k in os.environ)


def _param(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    return "" if v is None else str(v)


class Response:
    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> None:
        self._raw, self._conn = raw, conn
        self.status_code = raw.status
        self.headers = raw.headers
        self._content: bytes | None = None

    @property
    def reason_phrase(self) -> str:
        try:
            return HTTPStatus(self.status_code).phrase
        except ValueError:
            return ""

    def read(self) -> bytes:
        if self._content is None:
            try:
                self._content = self._raw.read()
            except _io_errors() as err:
                raise TransportError(str(err) or type(err).__name__) from err
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        charset = self.headers.get_content_charset() or "utf-8"
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def iter_bytes(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._raw.read1(65536)
            except _io_errors() as err:
                raise TransportError(str(err) or type(err).__name__) from err
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._conn.close()


class Client:
    """`httpx.Client(base_url=..., headers=..., timeout=...)` for the calls `cortex` makes."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float | None) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._prefix = parts.path.rstrip("/")
        self._headers = {"Accept": "*/*", "User-Agent": "cortex-cli", **headers}
        self._timeout = timeout

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        url = self._prefix + path
        if params:
            url += "?" + urlencode([(k, _param(v)) for k, v in params.items()])
        body = content
        sent = {**self._headers, **(headers or {})}
        if json is not None:
            body = jsonlib.dumps(
                json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            sent["Content-Type"] = "application/json"
        import http.client

        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.request(method, url, body=body, headers=sent)
            return Response(conn.getresponse(), conn)
        except _io_errors() as err:
            conn.close()
            raise TransportError(str(err) or type(err).__name__) from err

    def request(self, method: str, path: str, **kw: Any) -> Response:
        resp = self._send(method, path, **kw)
        try:
            resp.read()
        finally:
            resp.close()
        return resp

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    @contextmanager
    def stream(self, method: str, path: str, **kw: Any) -> Iterator[Response]:
        resp = self._send(method, path, **kw)
        try:
            yield resp
        finally:
            resp.close()
