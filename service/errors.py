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
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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

_STATUS_CODES = {
    400: "bad_request",
    401: UNAUTHORIZED,
    403: "forbidden",
    404: NOT_FOUND,
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: VALIDATION_ERROR,
    429: "too_many_requests",
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
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status_code, headers=headers)


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
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        details = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in errors]
        return error_response(422, VALIDATION_ERROR, _validation_message(errors), details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        headers = getattr(exc, "headers", None)
        if isinstance(detail, dict) and "code" in detail and "message" in detail:
            return error_response(
                exc.status_code, str(detail["code"]), str(detail["message"]), detail.get("details"), headers
            )
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, INTERNAL_ERROR, "internal server error")
