"""uvicorn's httptools protocol with a cap on the bytes of a request's head (request line and
headers). llhttp, under httptools, buffers a header of any size, and uvicorn sets no limit of
its own for it (only its h11 protocol has one, and h11 costs a third more CPU per request):
without this, one client could hold an unbounded header in the service's memory. Bytes are
counted as they arrive, before parsing, and a head past the limit gets 431 and a closed
connection. Only the head's bytes count: a read that holds the end of the head and the start
of the body (a client that writes both at once, as http.client does) counts up to the blank
line that ends the head. Subclassing is the least code: the protocol has no hook for it."""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def capped_protocol(max_head_bytes: int) -> type[HttpToolsProtocol]:
    class CappedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_head = True
            self._tail = b""  # the last 3 bytes of the head so far: its end may span reads

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                seen = self._tail + data
                end = seen.find(b"\r\n\r\n")
                # A read of 64 KiB at most: the search is bounded, like the parser's work.
                self._head_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
                self._tail = seen[-3:]
                if self._head_bytes > max_head_bytes:
                    self._refuse()
                    return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head, self._head_bytes, self._tail = True, 0, b""
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
