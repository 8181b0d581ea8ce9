"""ASGI middleware for the ``Everruns-Change-Reason`` header: a valid reason is made the
request's change reason (``services.change_reasons``); an invalid one is a 400
``invalid_change_reason`` and the request does nothing."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from everloop.api.errors import error_response
from everloop.domain.change_reasons import HEADER, InvalidChangeReason, parse_change_reason
from everloop.services.change_reasons import current_change_reason

_HEADER = HEADER.encode()


class ChangeReason:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((value for name, value in scope.get("headers") or [] if name == _HEADER), None)
        if raw is None:
            await self.app(scope, receive, send)
            return
        try:
            reason = parse_change_reason(raw.decode("latin-1"))
        except InvalidChangeReason as exc:
            await error_response(400, "invalid_change_reason", str(exc))(scope, receive, send)
            return
        token = current_change_reason.set(reason)
        try:
            await self.app(scope, receive, send)
        finally:
            current_change_reason.reset(token)
