"""Per-request bounds enforced before any route runs: request-target length, body size and body read time.

* a request target (path and query) longer than ``max_url_bytes``: 414 ``uri_too_long``;
* headers over ``max_header_bytes`` in all: 431 ``headers_too_large``;
* a body over ``max_body_bytes``: 413 ``payload_too_large``, from ``Content-Length`` before anything is read, or
  while reading a chunked body (the read stops there);
* a body that has not fully arrived ``body_read_seconds`` after the request started: 408 ``request_timeout``
  and the connection is closed (a client that sends ``Content-Length: 100`` and 27 bytes no longer holds it).

Everything is a JSON error. What the HTTP server cuts off before the app sees a request (malformed request lines,
oversized header blocks) is answered by :mod:`service.protocol`.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from c2f.service.encoding import dumps
from c2f.service.errors import HEADERS_TOO_LARGE, PAYLOAD_TOO_LARGE, REQUEST_TIMEOUT, URI_TOO_LONG, error_body


class _Refused(HTTPException):
    """Raised from ``receive``: an HTTPException so that FastAPI's body parsing passes it on (it turns any other
    exception into a 400) and the app's handler answers it as JSON; the connection is closed after it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, {"code": code, "message": message}, headers={"Connection": "close"})
        self.status, self.code, self.message = status, code, message


async def send_error(send: Send, status: int, code: str, message: str, *, close: bool = False) -> None:
    """A complete JSON error response sent straight on the ASGI channel."""
    body = dumps(error_body(code, message))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Pure ASGI middleware bounding the request target, the body size and the time to receive the body."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_url_bytes: int,
        max_header_bytes: int,
        max_body_bytes: int,
        body_read_seconds: float,
    ) -> None:
        self.app = app
        self.max_url_bytes = max_url_bytes
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.body_read_seconds = body_read_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = len(scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass"))
        target += len(scope.get("query_string", b""))
        if target > self.max_url_bytes:
            await send_error(send, 414, URI_TOO_LONG, f"request target is over {self.max_url_bytes} bytes")
            return
        if sum(len(k) + len(v) for k, v in scope.get("headers", ())) > self.max_header_bytes:
            msg = f"request headers are over {self.max_header_bytes} bytes"
            await send_error(send, 431, HEADERS_TOO_LARGE, msg, close=True)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            msg = f"request body is {declared} bytes, over the limit of {self.max_body_bytes} bytes"
            await send_error(send, 413, PAYLOAD_TOO_LARGE, msg, close=True)
            return

        deadline = time.monotonic() + self.body_read_seconds
        received = 0
        body_done = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body only http.disconnect can come: no deadline on waiting for it
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise _Refused(
                    408, REQUEST_TIMEOUT, f"request body not received within {self.body_read_seconds:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _Refused(413, PAYLOAD_TOO_LARGE, f"request body is over {self.max_body_bytes} bytes")
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _Refused as refused:
            if started:
                raise
            await send_error(send, refused.status, refused.code, refused.message, close=True)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
