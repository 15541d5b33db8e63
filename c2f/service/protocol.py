"""uvicorn's HTTP protocol with JSON errors for what it answers itself.

uvicorn answers some requests before the app sees them. With these protocol classes (``c2f serve`` uses them):

* a request the parser rejects (a malformed request line, a bad header, a header block over h11's 16 KB): 400
  ``{"error": {"code": "bad_request", ...}}`` instead of uvicorn's plain-text 400; the connection closes.

The httptools protocol also coalesces a response's writes (:class:`CoalescingWriter`): uvicorn writes the header
block and the body separately, two ``send`` system calls per response, and on loopback the kernel's delivery to
the client runs inside the sender's call: the header write alone was 26% of the server's CPU samples (py-spy, a
Gowalla artifact under wrk), the body write 8%.

What still is not the app's (and is documented in docs/api.md): a connection that sends nothing or only part of
its header block is closed by uvicorn's ``timeout_keep_alive`` only between requests, so a proxy in front should
bound header read time; with ``limit_concurrency`` set, uvicorn's own 503 is plain text (``c2f serve`` leaves it
unset).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from c2f.service.encoding import dumps
from c2f.service.errors import error_body

BAD_REQUEST_BODY = dumps(error_body("bad_request", "malformed HTTP request"))


class CoalescingWriter:
    """A connection's transport as a response cycle sees it: ``write`` collects the bytes and sends them in one
    ``transport.write`` at the end of the event loop's current step, so a response written as header block + body
    within one step (every non-streaming response) is one system call. Anything else the cycle asks of the transport
    (``close``, ``is_closing``, ...) sends what is pending first, so bytes never reorder or get lost at close."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._transport, name)


class JsonHttpToolsProtocol(HttpToolsProtocol):
    """httptools (the fast parser) with a JSON 400, each response sent in one write (:class:`CoalescingWriter`)."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None and not isinstance(self.cycle.transport, CoalescingWriter):
            self.cycle.transport = CoalescingWriter(self.transport, self.loop)  # type: ignore[assignment]

    def send_400_response(self, msg: str) -> None:
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(BAD_REQUEST_BODY)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                BAD_REQUEST_BODY,
            ]
        )
        if self.cycle is not None and isinstance(self.cycle.transport, CoalescingWriter):
            self.cycle.transport.flush()  # a response still pending goes out before the 400
        self.transport.write(b"".join(head))
        self.transport.close()


class JsonH11Protocol(H11Protocol):
    """h11 (pure Python, used when httptools is missing) with a JSON 400."""

    def send_400_response(self, msg: str) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BAD_REQUEST_BODY)).encode("ascii")),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=BAD_REQUEST_BODY),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


HTTP_PROTOCOL = f"{JsonHttpToolsProtocol.__module__}:{JsonHttpToolsProtocol.__name__}"
"""The ``http=`` value for uvicorn (an import string, so that ``--workers`` processes can load it)."""
