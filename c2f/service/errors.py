"""JSON errors for every failure: ``{"error": {"code": "...", "message": "...", "details": ...}}``.

Raise :class:`ApiError` from routes and dependencies; ``install_error_handlers`` also converts FastAPI's request
validation errors (422), Starlette's HTTP exceptions (404 for unknown routes, 405, ...) and unexpected exceptions
(500) into the same shape.  ``HTTPException(detail={"code": ..., "message": ...})`` keeps the given code.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from c2f.service.encoding import FastJSONResponse
from c2f.service.redact import scrub

logger = logging.getLogger("c2f.service")

# Error codes (stable; clients may switch on them).
NO_MODEL = "no_model"
UNKNOWN_USER = "unknown_user"
UNKNOWN_ITEM = "unknown_item"
VALIDATION_ERROR = "validation_error"
UNAUTHORIZED = "unauthorized"
RELOAD_FAILED = "reload_failed"
NOT_FOUND = "not_found"
INTERNAL_ERROR = "internal_error"
UNSAFE_DATASET_URI = "unsafe_dataset_uri"
JOB_NOT_FOUND = "job_not_found"
JOB_ENDED = "job_ended"
QUEUE_UNAVAILABLE = "queue_unavailable"
PAYLOAD_TOO_LARGE = "payload_too_large"
URI_TOO_LONG = "uri_too_long"
REQUEST_TIMEOUT = "request_timeout"
HEADERS_TOO_LARGE = "headers_too_large"
CATALOG_UNAVAILABLE = "catalog_unavailable"
HIDDEN_ITEMS_FULL = "hidden_items_full"
NO_ITEM_ATTRIBUTES = "no_item_attributes"
UNKNOWN_ATTRIBUTE = "unknown_attribute"
EVENTS_UNAVAILABLE = "events_unavailable"
# per event of POST /interactions (the event is refused, the rest of the batch is recorded)
INVALID_TIMESTAMP = "invalid_timestamp"
FOLDED_USERS_FULL = "folded_users_full"
USER_HISTORY_FULL = "user_history_full"

_STATUS_CODES = {
    400: "bad_request",
    401: UNAUTHORIZED,
    403: "forbidden",
    404: NOT_FOUND,
    405: "method_not_allowed",
    408: REQUEST_TIMEOUT,
    409: "conflict",
    413: PAYLOAD_TOO_LARGE,
    414: URI_TOO_LONG,
    415: "unsupported_media_type",
    422: VALIDATION_ERROR,
    429: "too_many_requests",
    431: HEADERS_TOO_LARGE,
    500: INTERNAL_ERROR,
    503: "unavailable",
}


class ApiError(Exception):
    """An error response: HTTP status, a stable machine code and a human message."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = jsonable_encoder(details)
    return {"error": body}


def error_response(
    status_code: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> FastJSONResponse:
    return FastJSONResponse(error_body(code, message, details), status_code=status_code, headers=headers)


def _public(request: Request, message: str) -> str:
    """``message`` without server paths (see :mod:`service.redact`)."""
    settings = getattr(request.app.state, "settings", None)
    return scrub(message, settings) if settings is not None else message


_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (a path can have one route per method).

    A literal route (``/recommend/batch``) is the resource its path names, as in the OpenAPI schema, even where a
    template (``/recommend/{user_id}``) matches the same path too.
    """
    matching: dict[str, list[str]] = {}
    routes = getattr(request.app.state, "api_routes", None) or request.app.router.routes
    for method in _HTTP_METHODS:
        for route in routes:
            if route.matches({**request.scope, "method": method})[0] == Match.FULL:
                matching.setdefault(method, []).append(getattr(route, "path", ""))
    literal = any("{" not in path for paths in matching.values() for path in paths)
    return [m for m, paths in matching.items() if not literal or any("{" not in p for p in paths)]


def no_model() -> ApiError:
    return ApiError(503, NO_MODEL, "no model is loaded yet; publish an artifact or check GET /models")


def unknown_user(user_id: str) -> ApiError:
    return ApiError(404, UNKNOWN_USER, f"unknown user id {user_id!r}")


def unknown_item(item_id: str) -> ApiError:
    return ApiError(404, UNKNOWN_ITEM, f"unknown item id {item_id!r}")


def invalid(message: str, details: Any = None) -> ApiError:
    return ApiError(422, VALIDATION_ERROR, message, details=details)


def _validation_message(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",)) or "request"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> FastJSONResponse:
        return error_response(exc.status_code, exc.code, _public(request, exc.message), exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> FastJSONResponse:
        errors = list(exc.errors())
        details = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors]
        return error_response(422, VALIDATION_ERROR, _validation_message(errors), details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        detail = exc.detail
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Starlette names only the first matching route's methods
            headers["Allow"] = ", ".join(allowed_methods(request))
        if isinstance(detail, dict) and "code" in detail and "message" in detail:
            return error_response(
                exc.status_code, str(detail["code"]), str(detail["message"]), detail.get("details"), headers
            )
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(detail), headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> FastJSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, INTERNAL_ERROR, "internal server error")
