"""Logging of the service: level and timestamp on every line, optional JSON lines, one line per request.

:func:`configure_logging` gives the ``c2f`` loggers (and uvicorn's error logger) one handler: text
(``2025-01-01T12:00:00.123Z INFO c2f.service: message key=value``) or, with ``log_format="json"``, one JSON object
per line (``ts``, ``level``, ``logger``, ``message`` and the record's fields). Fields are passed as
``logger.info(msg, extra={"fields": {...}})``.

:class:`RequestLog` tags every HTTP request with an id (the client's ``X-Request-ID`` when it is a short token,
else a new one; echoed in the response) and, when ``access_log`` is on, logs method, route, status, latency and
the model version that answered.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from c2f.service.encoding import dumps
from c2f.service.metrics import METHODS

LOGGERS = ("c2f", "uvicorn.error")
ACCESS_LOGGER = "c2f.access"
_REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return dumps(entry).decode()


class _C2FHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed (replaced, never duplicated, on reconfiguration)."""


def configure_logging(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Route the c2f and uvicorn error loggers to one handler on ``stream`` (stderr) in format ``fmt``."""
    handler = _C2FHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _C2FHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level.upper())
        logger.propagate = False


class RequestLog:
    """Pure ASGI middleware: request id in and out (``X-Request-ID``), and an access log line per request."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log
        self.logger = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log and self.logger.isEnabledFor(logging.INFO):
                route = getattr(scope.get("route"), "path", None)
                method = scope.get("method", "")
                fields = {
                    "request_id": request_id,
                    "method": method if method in METHODS else "other",
                    "route": route or "unmatched",
                    "status": status,
                    "latency_ms": round((time.perf_counter() - start) * 1000, 3),
                    "model_version": state.get("model_version"),
                }
                self.logger.info("request", extra={"fields": fields})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _REQUEST_ID_RE.fullmatch(value):
            return value.decode()
    return os.urandom(8).hex()
