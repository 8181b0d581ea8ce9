"""Every HTTP request: a request id, a span, metrics and one access log line.

``X-Request-Id``: the client's (if it is a plain token of at most 128 characters) or a new one;
echoed in the response's header and in error bodies (``api.errors``), and in the access line,
so a report of a failed call can be found in the log. The access line names the route template
(``/api/v1/sessions/{session_id}``), never the path with ids or the query string; the caller's
organization once authenticated (``api.deps.caller`` notes it on the request). Health probes and
metric scrapes log at DEBUG: they come every few seconds.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from everloop.telemetry import metrics, tracing

log = logging.getLogger("everloop.access")

REQUEST_ID: ContextVar[str | None] = ContextVar("everloop_request_id", default=None)
_VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})


def current_request_id() -> str | None:
    """The id of the request being answered (None outside one)."""
    return REQUEST_ID.get()


class Observe:
    """The outermost middleware of the app (see the module docstring)."""

    def __init__(self, app: ASGIApp, unexpected: Callable[[BaseException], ASGIApp]) -> None:
        self.app = app
        self.unexpected = unexpected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        valid = _VALID_ID.fullmatch(given)
        request_id = given.decode() if valid else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        method = scope["method"]
        status, route = 500, "unmatched"
        started = time.perf_counter()

        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                responded = True
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        try:
            with tracing.server_span(
                method,
                {"http.request.method": method, "everloop.request_id": request_id},
                _headers(scope) if tracing.enabled() else {},
            ) as span:
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception as exc:
                    if responded:
                        raise
                    # Answered here, not by Starlette's outer handler: the id is still known.
                    await self.unexpected(exc)(scope, receive, send_with_id)
                finally:
                    route = _route(scope)
                    if span is not None:
                        span.update_name(f"{method} {route}")
                        span.set_attributes(
                            {"http.route": route, "http.response.status_code": status}
                        )
                        if status >= 500:
                            span.set_status(tracing.error_status(f"HTTP {status}"))
        finally:
            REQUEST_ID.reset(token)
            seconds = time.perf_counter() - started
            metrics.child(metrics.HTTP_REQUESTS, method, route, str(status)).inc()
            metrics.child(metrics.HTTP_DURATION, method, route).observe(seconds)
            org = (scope.get("state") or {}).get("org_id")
            log.log(
                logging.DEBUG if route in _QUIET else logging.INFO,
                "%s %s %d %.0fms",
                method,
                route,
                status,
                seconds * 1000,
                extra={
                    "fields": {
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 1),
                        "org": org,
                        "request_id": request_id,
                    }
                },
            )


def _route(scope: Scope) -> str:
    """The template of the route that answered: FastAPI nests included routers, and the route
    a request ends at knows its path below their prefixes only; the prefixes are the request
    path's leading segments (static: the routers' prefixes have no parameters)."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "unmatched"
    path = scope.get("path", "")
    if template.endswith(":path}") or not path.endswith(template.rsplit("}", 1)[-1]):
        return template
    prefix = path.split("/")[: path.count("/") - template.count("/") + 1]
    return "/".join(prefix) + template if len(prefix) > 1 else template


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
