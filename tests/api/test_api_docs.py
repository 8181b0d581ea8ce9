"""``/api/docs`` is usable: the bearer scheme is declared and applied, and every operation says
what it does (a summary and a description)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from everloop.api.app import create_app
from everloop.api.deps import caller
from everloop.api.routes.channels import channel_call
from everloop.bootstrap import build_services
from everloop.config import Settings
from tests.conftest import Api

METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    # Every route there is, the opt-in ones too.
    services = build_services(settings.model_copy(update={"debug_counters": True}))
    try:
        yield create_app(services)
    finally:
        await services.close()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """The documented routes, each with its full path."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            assert context.path_format is not None
            found.append((context.path_format, route))
    return found


def needs_caller(route: APIRoute, dependency: object = caller) -> bool:
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call is dependency:
            return True
        pending.extend(dependant.dependencies)
    return False


def test_every_operation_has_a_summary_and_a_description(app: FastAPI) -> None:
    schema = app.openapi()
    found = operations(schema)
    assert len(found) > 100
    missing = [
        f"{method.upper()} {path}"
        for method, path, operation in found
        if not operation.get("summary", "").strip() or not operation.get("description", "").strip()
    ]
    assert missing == []


def test_summaries_come_from_the_docstrings(app: FastAPI) -> None:
    # The summary is the docstring's first clause; the description all of it.
    schema = app.openapi()
    routes = api_routes(app)
    assert len(routes) > 100
    for path, route in routes:
        docstring = inspect.getdoc(route.endpoint)
        assert docstring, f"{path} {route.name} has no docstring"
        for method in route.methods:
            operation = schema["paths"][path][method.lower()]
            assert operation["description"] == docstring.split("\f")[0].strip()
            first = operation["summary"]
            assert first and not first.endswith((".", ";")) and "\n" not in first
            assert " ".join(docstring.replace("``", "").split()).startswith(first), (path, first)
    registered = schema["paths"]["/api/v1/mcp-servers"]["post"]
    assert registered["summary"] == "Register an MCP server (its URL, transport and headers)"
    assert " ".join(registered["description"].split()).endswith("sealed and never returned.")


def test_the_bearer_scheme_is_declared_and_applied(app: FastAPI) -> None:
    schema = app.openapi()
    scheme = schema["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "Authorization: Bearer" in scheme["description"]
    routes = api_routes(app)
    authenticated = [path for path, route in routes if needs_caller(route)]
    assert len(authenticated) > 100
    for path, route in routes:
        for method in route.methods:
            operation = schema["paths"][path][method.lower()]
            expected = [{"bearerAuth": []}] if needs_caller(route) else None
            if needs_caller(route, channel_call):  # the Agent Execution API's credentials
                expected = [{"agentAuth": []}]
            assert operation.get("security") == expected, (method, path)
    # The header is the scheme's: not a parameter Swagger UI would ask for a second time.
    for _method, _path, operation in operations(schema):
        names = {p["name"].lower() for p in operation.get("parameters", [])}
        assert "authorization" not in names


async def test_the_authorize_button_token_is_what_the_api_takes(api: Api) -> None:
    # Swagger UI sends the token of the bearer scheme as "Authorization: Bearer <token>".
    async with api.anonymous() as anonymous:
        refused = await anonymous.get("/v1/harnesses")
        assert refused.status_code == 401
        accepted = await anonymous.get(
            "/v1/harnesses", headers={"Authorization": f"Bearer {api.token}"}
        )
        assert accepted.status_code == 200, accepted.text
        page = await anonymous.get("/docs")
        assert page.status_code == 200 and "/api/openapi.json" in page.text
        assert '"persistAuthorization": true' in page.text
        served = (await anonymous.get("/openapi.json")).json()
    assert served["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_a_validation_error_documents_its_details(app: FastAPI) -> None:
    components = app.openapi()["components"]["schemas"]
    body = components["ErrorBody"]["properties"]
    assert "details" in body
    assert set(components["ErrorDetail"]["properties"]) == {"field", "message"}
