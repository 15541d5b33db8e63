"""uvicorn's HTTP protocol with JSON errors for what it answers itself.

uvicorn answers some requests before the app sees them. With these protocol classes (``c2f serve`` uses them):

* a request the parser rejects (a malformed request line, a bad header, a header block over h11's 16 KB): 400
  ``{"error": {"code": "bad_request", ...}}`` instead of uvicorn's plain-text 400; the connection closes.

What still is not the app's (and is documented in the README): a connection that sends nothing or only part of
its header block is closed by uvicorn's ``timeout_keep_alive`` only between requests, so a proxy in front should
bound header read time; with ``limit_concurrency`` set, uvicorn's own 503 is plain text (``c2f serve`` leaves it
unset).
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.encoding import dumps
from service.errors import error_body

BAD_REQUEST_BODY = dumps(error_body("bad_request", "malformed HTTP request"))


class JsonHttpToolsProtocol(HttpToolsProtocol):
    """httptools (the fast parser) with a JSON 400."""

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
