"""The one place where errors become HTTP responses.

Body of every 4xx/5xx: ``{"error": {"code": "<snake_case>", "message": "...", "field"?: "..."}}``;
a validation error (422) also lists every problem in ``details: [{"field", "message"}, ...]``
(``field`` names the first; ``message`` up to ten); ``request_id`` is the request's
``X-Request-Id`` (``api.observe``), as in the server's access log. A body not sent as JSON
(no ``Content-Type``, or another than ``application/json``) to a route that takes JSON is a
415 saying to send it.
Unexpected exceptions are a 500 with a generic message; the detail goes to the server log only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from everloop.api.json_values import printable
from everloop.api.observe import current_request_id
from everloop.api.schemas import ErrorResponse
from everloop.errors import (
    Conflict,
    EngineUnavailable,
    EverloopError,
    Forbidden,
    InvalidInput,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
    UnsupportedMedia,
)

log = logging.getLogger("everloop.api")

STATUS_BY_ERROR: dict[type[EverloopError], int] = {
    MalformedInput: 400,
    InvalidInput: 422,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMedia: 415,
    TooManyRequests: 429,
    EngineUnavailable: 503,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    details: list[dict[str, str]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field:
        body["field"] = field
    if details is not None:
        body["details"] = details
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def status_of(exc: EverloopError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


async def _everloop_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EverloopError)
    status = status_of(exc)
    if status == 500:
        log.error("unmapped everloop error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error")
    response = error_response(status, exc.code, exc.message, exc.field)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _location(loc: tuple[Any, ...]) -> str:
    # A part may be a key the client sent, of any length: shortened.
    parts = [printable(str(p)) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


_PROBLEMS_IN_MESSAGE = 10


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            return error_response(400, "malformed_json", "the request body is not valid JSON")
    content_type = request.headers.get("content-type")
    if not _is_json(content_type) and _about_body(errors):
        # FastAPI hands any other body to the model as bytes, which then fails as "not a valid
        # dictionary": say what is actually wrong.
        sent = f"as {printable(content_type)!r}" if content_type else "with no Content-Type"
        return error_response(
            415,
            "unsupported_media_type",
            "the request body must be JSON sent with the header "
            f"'Content-Type: application/json' (it came {sent})",
        )
    details = [
        {"field": _location(tuple(err.get("loc", ()))), "message": str(err.get("msg", "invalid"))}
        for err in errors
    ] or [{"field": "body", "message": "invalid request"}]
    # The message names the problems too (a client may show only it), up to a readable few.
    shown = "; ".join(f"{d['field']}: {d['message']}" for d in details[:_PROBLEMS_IN_MESSAGE])
    hidden = len(details) - _PROBLEMS_IN_MESSAGE
    message = shown + (f"; and {hidden} more (see details)" if hidden > 0 else "")
    return error_response(422, "validation_error", message, details[0]["field"], details)


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _about_body(errors: Sequence[Any]) -> bool:
    # A body was sent and refused; one not sent at all ("body: Field required") is its own error.
    return any(
        tuple(err.get("loc", ()))[:1] == ("body",)
        and not (err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",))
        for err in errors
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such route; the API lives under /api/v1 (see /api/docs)"
    if exc.status_code == 405:
        detail = "this route does not accept that method"
    return error_response(exc.status_code, code, detail)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    return unexpected_error(exc)


def unexpected_error(exc: BaseException) -> JSONResponse:
    """The 500 of an exception nothing handled; its detail goes to the log only."""
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


_DESCRIPTIONS = {
    400: "Malformed request (the body is not valid JSON)",
    401: "Missing or unrecognised token",
    404: "No such object in the caller's organization",
    409: "Conflicts with the current state (a duplicate name, a read-only object)",
    413: "Request body over the size limit",
    415: "The body was not sent as JSON (Content-Type other than application/json)",
    422: "Invalid value; the error names the field",
    429: "Too many failed authentications from this address; see Retry-After",
    500: "Unexpected server error (details only in the server log)",
    503: "The durable engine cannot accept the work right now",
}


def document_errors(app: FastAPI) -> None:
    """Declare in the OpenAPI schema the error responses each ``/api/v1`` operation can give.

    Derived from the operation's shape, so a new route is documented without repeating itself:
    every one can answer 401, 422, 429 and 500; one with a path parameter 400 and 404; one with a
    body 400, 413 and 404 (the body may name another object); one that writes 409 and 503. The
    body is
    always ``ErrorResponse``: FastAPI's own 422 schema (``HTTPValidationError``) is not what
    ``_validation_error`` sends.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(error_schema.pop("$defs", {}))
        components["ErrorResponse"] = error_schema
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/api/v1/"):
                continue
            for method, operation in operations.items():
                for status in _error_statuses(method, operation):
                    operation["responses"][str(status)] = {
                        "description": _DESCRIPTIONS[status],
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                            }
                        },
                    }
                operation["responses"] = dict(sorted(operation["responses"].items()))
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error_statuses(method: str, operation: dict[str, Any]) -> list[int]:
    statuses = {401, 422, 429, 500}
    if any(p.get("in") == "path" for p in operation.get("parameters", [])):
        # 400: a path value that can never be valid (a file path with a NUL, say).
        statuses.update((400, 404))
    if "requestBody" in operation:
        statuses |= {400, 404, 413, 415}
    if method in ("post", "put", "patch", "delete"):
        statuses |= {409, 503}
    return sorted(statuses)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(EverloopError, _everloop_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
