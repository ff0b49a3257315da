"""uvicorn's httptools protocol with a cap on the bytes of a request's head (request line and
headers). llhttp, under httptools, buffers a header of any size, and uvicorn sets no limit of
its own for it (only its h11 protocol has one, and h11 costs a third more CPU per request):
without this, one client could hold an unbounded header in the service's memory. Bytes are
counted as they arrive, before parsing, and a head past the limit gets 431 and a closed
connection. Subclassing is the least code: the protocol has no hook for it."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def capped_protocol(max_head_bytes: int) -> type[HttpToolsProtocol]:
    class CappedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_head = True

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > max_head_bytes:
                    self._refuse()
                    return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes = True, 0
            super().on_message_complete()

        def _refuse(self) -> None:
            msg = b'{"detail":[{"loc":["header"],"msg":"request head over the limit"}]}'
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(msg)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + msg
            )
            self.transport.close()

    return CappedHttpToolsProtocol
