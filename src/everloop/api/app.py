"""The FastAPI application factory.

All routes live under ``/api``: ``/api/v1/...`` for the resources, ``/api/openapi.json`` and
``/api/docs`` (Swagger UI served from the local ``swagger-ui-bundle`` package: no CDN). The web
console (``everloop.console``) is served at ``/`` with its files under ``/console/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from os import PathLike
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from everloop import __version__
from everloop.api.change_reason import ChangeReason
from everloop.api.errors import (
    document_errors,
    error_response,
    install_error_handlers,
    unexpected_error,
)
from everloop.api.json_values import JsonLimits, JsonLimitsMiddleware
from everloop.api.observe import Observe
from everloop.api.routes import (
    agent_actions,
    agent_channels,
    agent_identities,
    agent_versions,
    api_keys,
    blueprints,
    budgets,
    capabilities,
    channels,
    config_resources,
    connections,
    debug,
    files,
    health_checks,
    human_input,
    mcp_servers,
    memories,
    models,
    operations,
    orgs,
    runtime_agents,
    schedules,
    session_databases,
    session_fork,
    session_storage,
    session_tasks,
    sessions,
    turns,
    workspaces,
)

if TYPE_CHECKING:
    from everloop.bootstrap import Services


class BodySizeLimit:
    """Refuse request bodies over ``limit`` bytes with a 413, whether or not they say their size."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = error_response(
            413, "payload_too_large", f"the request body is over the {self.limit} byte limit"
        )
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await too_large(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    # An HTTPException, so FastAPI's body parsing re-raises it (any other error there becomes
    # a 400) and the error handlers answer 413; the middleware catches it if nothing else did.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit} byte limit")


def create_app(
    services: Services,
    *,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    api: bool = True,
) -> FastAPI:
    """The HTTP application; ``api=False`` serves only the health endpoints (a worker)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_startup:
            await on_startup()
        try:
            yield
        finally:
            if on_shutdown:
                await on_shutdown()

    app = FastAPI(
        title="everloop",
        version=__version__,
        description="Durable agentic harness engine (Everruns v1 wire-compatible).",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(operations.router)
    app.add_middleware(BodySizeLimit, limit=services.settings.max_body_bytes)
    app.add_middleware(ChangeReason)
    app.add_middleware(JsonLimitsMiddleware, limits=JsonLimits.of(services.settings))
    # The outermost: it sees every answer, and answers an unhandled error with its request id.
    app.add_middleware(Observe, unexpected=unexpected_error)
    if not api:
        return app

    routes = APIRouter(prefix="/api")
    routes.include_router(runtime_agents.router)
    routes.include_router(agent_actions.router)
    routes.include_router(agent_versions.router)
    routes.include_router(health_checks.router)
    routes.include_router(blueprints.router)
    routes.include_router(config_resources.router)
    routes.include_router(sessions.router)
    routes.include_router(session_fork.router)
    routes.include_router(models.router)
    routes.include_router(turns.router)
    routes.include_router(human_input.router)
    routes.include_router(capabilities.router)
    routes.include_router(session_databases.router)
    routes.include_router(files.router)
    routes.include_router(workspaces.router)
    routes.include_router(session_storage.router)
    routes.include_router(session_tasks.router)
    routes.include_router(schedules.router)
    routes.include_router(mcp_servers.router)
    routes.include_router(memories.router)
    routes.include_router(agent_identities.router)
    routes.include_router(budgets.router)
    routes.include_router(api_keys.router)
    routes.include_router(orgs.router)
    routes.include_router(connections.router)
    routes.include_router(agent_channels.router)
    routes.include_router(channels.router)
    if services.settings.debug_counters:
        routes.include_router(debug.router)
    app.include_router(routes)
    _summarize_operations(app)
    document_errors(app)
    _install_docs(app)
    _install_console(app)
    return app


def _summarize_operations(app: FastAPI) -> None:
    """Each operation's OpenAPI summary: the first clause of its route's docstring (the
    description is the whole docstring, FastAPI's default). A route without a docstring keeps
    FastAPI's summary (its function's name) and has no description: a test refuses that."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and operation.get("description"):
                    operation["summary"] = _first_sentence(operation["description"])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _first_sentence(docstring: str) -> str:
    # Up to the first sentence's end or semicolon; Swagger UI shows a summary as plain text.
    paragraph = " ".join(docstring.split("\n\n", 1)[0].split()).replace("``", "")
    return re.split(r"(?<=[.!?])\s|;\s", paragraph, maxsplit=1)[0].rstrip(".")


def _install_docs(app: FastAPI) -> None:
    import swagger_ui_bundle

    app.mount(
        "/api/docs-assets",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="docs-assets",
    )

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="everloop API",
            swagger_js_url="/api/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/api/docs-assets/swagger-ui.css",
            swagger_favicon_url="/api/docs-assets/favicon-32x32.png",
            # A token given to Authorize survives a reload of the page.
            swagger_ui_parameters={"persistAuthorization": True},
        )


# The console's page may load only its own files and talk only to this origin: no inline script,
# no outside host (it works offline, and an injected string cannot run or call out).
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class _ConsoleFiles(StaticFiles):
    """The console's files, revalidated on every load (a 304 when unchanged): after an upgrade
    the page never runs a cached module of the previous version beside new ones."""

    def file_response(
        self,
        full_path: str | PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def _install_console(app: FastAPI) -> None:
    from everloop.console import ASSETS

    app.mount("/console", _ConsoleFiles(directory=ASSETS), name="console")

    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(
            ASSETS / "index.html",
            headers={"Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-cache"},
        )


__all__ = ["Any", "create_app"]
