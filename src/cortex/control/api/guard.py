"""Limits every request meets before any route runs: header size (431), body size (413), JSON
nesting depth (422). Pure ASGI, so a refused body is never buffered past its limit and the
routes FastAPI parses itself (queues, tokens) get the same caps as the submit route."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cortex.control.bodies import json_depth_ok


class RequestGuard:
    def __init__(
        self, app: ASGIApp, *, max_header_bytes: int, max_body_bytes: int, max_depth: int
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        size += sum(len(k) + len(v) + 4 for k, v in headers)
        if size > self.max_header_bytes:
            await _reply(
                send, 431, "header", f"headers over the {self.max_header_bytes}-byte limit"
            )
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in headers if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _reply(send, 413, "body", f"body over the {self.max_body_bytes}-byte limit")
            return
        body = bytearray()
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await _reply(send, 413, "body", f"body over the {self.max_body_bytes}-byte limit")
                return
        ctype = next((v for k, v in headers if k == b"content-type"), b"")
        if b"yaml" not in ctype and not json_depth_ok(bytes(body), self.max_depth):
            await _reply(send, 422, "body", f"nested deeper than {self.max_depth} levels")
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def inner() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return inner


async def _reply(send: Send, status: int, where: str, msg: str) -> None:
    kind = {413: "too_large", 431: "too_large", 422: "too_deep"}[status]
    payload = json.dumps({"detail": [{"loc": [where], "msg": msg, "type": kind}]}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
