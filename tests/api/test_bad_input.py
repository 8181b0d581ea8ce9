"""Bad input for every route: each one is a 4xx with the one error shape and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from everloop import ids
from everloop.api.app import create_app
from everloop.bootstrap import build_services
from everloop.config import Settings
from tests.api.conftest import assert_error, create_agent, create_session, session_total
from tests.conftest import Api

# (method, path template, body) of every route that names one object; {id} is filled in.
BY_ID = [
    ("GET", "/v1/harnesses/{id}", None),
    ("PATCH", "/v1/harnesses/{id}", {"description": "d"}),
    ("DELETE", "/v1/harnesses/{id}", None),
    ("GET", "/v1/agents/{id}", None),
    ("PATCH", "/v1/agents/{id}", {"description": "d"}),
    ("DELETE", "/v1/agents/{id}", None),
    ("GET", "/v1/sessions/{id}", None),
    ("PATCH", "/v1/sessions/{id}", {"title": "t"}),
    ("DELETE", "/v1/sessions/{id}", None),
    ("PUT", "/v1/sessions/{id}/pin", None),
    ("DELETE", "/v1/sessions/{id}/pin", None),
]

PREFIX_OF = {"harnesses": "harness", "agents": "agent", "sessions": "session"}

# (method, path) of every route that takes a JSON body; {id} is an existing object.
WITH_BODY = [
    ("POST", "/v1/harnesses"),
    ("PATCH", "/v1/harnesses/{harness}"),
    ("POST", "/v1/agents"),
    ("PUT", "/v1/agents/{agent}"),
    ("PATCH", "/v1/agents/{agent}"),
    ("POST", "/v1/sessions"),
    ("PATCH", "/v1/sessions/{session}"),
]


def _prefix(path: str) -> ids.Prefix:
    return PREFIX_OF[path.split("/")[2]]  # type: ignore[return-value]


async def _existing(api: Api) -> dict[str, str]:
    harness = await api.client.post("/v1/harnesses", json={"name": "existing"})
    agent = await create_agent(api, "existing")
    session = await create_session(api, title="existing")
    return {"harness": harness.json()["id"], "agent": agent["id"], "session": session["id"]}


async def _snapshot(api: Api) -> list[Any]:
    """Everything the admin can see, to show a failed request changed nothing."""
    return [
        (await api.client.get(path, params={"include_archived": "true"})).json()
        for path in ("/v1/harnesses", "/v1/agents", "/v1/sessions")
    ]


@pytest.mark.parametrize(("method", "path", "body"), BY_ID)
async def test_unknown_id_is_404(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    await _existing(api)
    before = await _snapshot(api)
    unknown = ids.new_id(_prefix(path))
    response = await api.client.request(method, path.format(id=unknown), json=body)
    error = assert_error(response, 404, "not_found")
    assert unknown in error["message"]
    assert await _snapshot(api) == before


MALFORMED = [
    "{prefix}_123",
    "{prefix}_" + "G" * 32,
    "{prefix}_" + "A" * 32,
    "{prefix}_" + "0" * 33,
    "other_" + "0" * 32,
]


@pytest.mark.parametrize(
    ("method", "path", "body", "bad"),
    [
        (*route, bad)
        for route in BY_ID
        for bad in MALFORMED
        # A harness is also addressed by name: a non-harness id is looked up as a name (404).
        if not (route[1].startswith("/v1/harnesses") and bad.startswith("other_"))
    ],
)
async def test_malformed_id_is_422(
    api: Api, method: str, path: str, body: dict[str, Any] | None, bad: str
) -> None:
    malformed = bad.format(prefix=_prefix(path))
    response = await api.client.request(method, path.format(id=malformed), json=body)
    error = assert_error(response, 422, "invalid_id")
    assert malformed in error["message"]


async def test_harness_lookup_by_an_unknown_name_is_404(api: Api) -> None:
    for ref in ("other_" + "0" * 32, "no-such-harness", "Bad_Name"):
        assert_error(await api.client.get(f"/v1/harnesses/{ref}"), 404, "not_found")


async def test_malformed_id_in_a_query_or_body_is_422(api: Api) -> None:
    for params in ({"agent_id": "agent_1"}, {"agent_id": "session_" + "0" * 32}):
        response = await api.client.get("/v1/sessions", params=params)
        assert_error(response, 422, "invalid_id", field="agent_id")
    for field in ("agent_id", "harness_id", "model_id", "agent_identity_id", "id"):
        response = await api.client.post("/v1/sessions", json={field: "nope_1"})
        assert_error(response, 422, "invalid_id", field=field)
    assert await session_total(api) == 0


@pytest.mark.parametrize(("method", "path"), WITH_BODY)
@pytest.mark.parametrize("raw", [b"{", b'{"title": }', b"not json", b'{"a": 1,}', b"\xff\xfe"])
async def test_invalid_json_is_400(api: Api, method: str, path: str, raw: bytes) -> None:
    existing = await _existing(api)
    before = await _snapshot(api)
    response = await api.client.request(
        method,
        path.format(**existing),
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "malformed_json")
    assert await _snapshot(api) == before


@pytest.mark.parametrize(("method", "path"), WITH_BODY)
async def test_a_body_that_is_not_an_object_is_422(api: Api, method: str, path: str) -> None:
    existing = await _existing(api)
    for body in ([], "text", 5, None):
        response = await api.client.request(method, path.format(**existing), json=body)
        assert_error(response, 422, "validation_error")


WRONG_TYPES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v1/harnesses", {"name": 5}, "name"),
    ("POST", "/v1/harnesses", {"name": "h", "tags": "x"}, "tags"),
    ("POST", "/v1/harnesses", {"name": "h", "capabilities": [{"ref": 1}]}, "capabilities.0.ref"),
    ("POST", "/v1/harnesses", {"name": "h", "parallel_tool_calls": "often"}, "parallel_tool_calls"),
    ("PATCH", "/v1/harnesses/{harness}", {"tags": {"a": 1}}, "tags"),
    ("PATCH", "/v1/harnesses/{harness}", {"status": "deleted"}, "status"),
    ("POST", "/v1/agents", {"name": "a", "system_prompt": ["p"]}, "system_prompt"),
    (
        "POST",
        "/v1/agents",
        {"name": "a", "system_prompt": "p", "max_iterations": "x"},
        "max_iterations",
    ),
    (
        "POST",
        "/v1/agents",
        {"name": "a", "system_prompt": "p", "max_iterations": 0},
        "max_iterations",
    ),
    ("POST", "/v1/agents", {"name": "a", "system_prompt": "p", "tools": [{}]}, "tools.0.name"),
    ("PUT", "/v1/agents/{agent}", {"name": "a", "system_prompt": 1}, "system_prompt"),
    ("PATCH", "/v1/agents/{agent}", {"tools": "none"}, "tools"),
    ("POST", "/v1/sessions", {"title": 5}, "title"),
    ("POST", "/v1/sessions", {"tags": [1]}, "tags.0"),
    ("POST", "/v1/sessions", {"tags": "a"}, "tags"),
    ("POST", "/v1/sessions", {"hints": "fast"}, "hints"),
    ("POST", "/v1/sessions", {"max_iterations": 1.5}, "max_iterations"),
    ("POST", "/v1/sessions", {"mcpServers": {"s": {"headers": {}}}}, "mcpServers.s.url"),
    (
        "POST",
        "/v1/sessions",
        {"initial_files": [{"path": "a", "content": "c", "encoding": "zip"}]},
        "initial_files.0.encoding",
    ),
    ("PATCH", "/v1/sessions/{session}", {"tags": [None]}, "tags.0"),
    ("PATCH", "/v1/sessions/{session}", {"locale": 12}, "locale"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), WRONG_TYPES)
async def test_wrong_types_are_422_naming_the_field(
    api: Api, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    existing = await _existing(api)
    before = await _snapshot(api)
    response = await api.client.request(method, path.format(**existing), json=body)
    error = assert_error(response, 422, "validation_error", field=field)
    assert field in error["message"]
    assert await _snapshot(api) == before


OVER_LONG: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v1/sessions", {"title": "t" * 501}, "title"),
    ("POST", "/v1/sessions", {"system_prompt": "p" * 200_001}, "system_prompt"),
    ("POST", "/v1/sessions", {"tags": ["t" * 101]}, "tags.0"),
    ("POST", "/v1/sessions", {"tags": [f"t{i}" for i in range(51)]}, "tags"),
    ("POST", "/v1/sessions", {"locale": "en-" + "a" * 40}, "locale"),
    ("POST", "/v1/sessions", {"blueprint_id": "b" * 201}, "blueprint_id"),
    ("PATCH", "/v1/sessions/{session}", {"title": "t" * 501}, "title"),
    ("PATCH", "/v1/sessions/{session}", {"tags": ["t" * 101]}, "tags.0"),
    ("POST", "/v1/harnesses", {"name": "h", "display_name": "d" * 201}, "display_name"),
    ("POST", "/v1/harnesses", {"name": "h", "system_prompt": "p" * 200_001}, "system_prompt"),
    ("PATCH", "/v1/harnesses/{harness}", {"description": "d" * 200_001}, "description"),
    ("POST", "/v1/agents", {"name": "a", "system_prompt": "p" * 200_001}, "system_prompt"),
    ("PUT", "/v1/agents/{agent}", {"name": "a" * 65, "system_prompt": "p"}, "name"),
    ("PATCH", "/v1/agents/{agent}", {"display_name": "d" * 201}, "display_name"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), OVER_LONG)
async def test_over_long_strings_are_422(
    api: Api, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    existing = await _existing(api)
    before = await _snapshot(api)
    response = await api.client.request(method, path.format(**existing), json=body)
    assert_error(response, 422, "validation_error", field=field)
    assert await _snapshot(api) == before


NULLED: list[tuple[str, str]] = [
    ("/v1/harnesses/{harness}", field)
    for field in ("name", "tags", "capabilities", "initial_files", "mcpServers", "status")
] + [
    ("/v1/agents/{agent}", field)
    for field in ("name", "system_prompt", "tags", "tools", "capabilities", "mcpServers")
]


@pytest.mark.parametrize(("path", "field"), NULLED)
async def test_patch_null_for_a_required_field_is_422(api: Api, path: str, field: str) -> None:
    existing = await _existing(api)
    before = await _snapshot(api)
    response = await api.client.patch(path.format(**existing), json={field: None})
    assert_error(response, 422, "validation_error", field=field)
    assert await _snapshot(api) == before


async def test_patch_null_clears_an_optional_field(api: Api) -> None:
    agent = await create_agent(api, "clearable", description="some")
    response = await api.client.patch(f"/v1/agents/{agent['id']}", json={"description": None})
    assert response.status_code == 200, response.text
    assert response.json()["description"] is None
    assert response.json()["system_prompt"] == agent["system_prompt"]


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("POST", "/v1/sessions", {"title": "a\u0000b"}, None),
        ("POST", "/v1/sessions", {"hints": {"k": "a\u0000b"}}, None),
        ("POST", "/v1/agents", {"name": "n", "system_prompt": "a\u0000b"}, None),
        ("PATCH", "/v1/sessions/{session}", {"title": "\u0000"}, None),
        ("GET", "/v1/harnesses/a%00b", None, None),
        ("GET", "/v1/sessions", None, {"search": "a\u0000"}),
        ("GET", "/v1/sessions", None, {"tags": "a\u0000"}),
        ("GET", "/v1/agents", None, {"search": "a\u0000"}),
        ("GET", "/v1/harnesses", None, {"search": "a\u0000"}),
    ],
)
async def test_nul_characters_are_never_a_server_error(
    api: Api, method: str, path: str, body: dict[str, Any] | None, params: dict[str, str] | None
) -> None:
    # SQLite stores NUL; PostgreSQL refuses it: either way the caller gets an answer, not a 500.
    existing = await _existing(api)
    response = await api.client.request(method, path.format(**existing), json=body, params=params)
    if response.status_code >= 400:
        assert_error(response, response.status_code)
        assert response.status_code < 500, response.text


async def test_longest_accepted_strings_round_trip(api: Api) -> None:
    session = await create_session(api, title="t" * 500, tags=["g" * 100])
    fetched = (await api.client.get(f"/v1/sessions/{session['id']}")).json()
    assert fetched["title"] == "t" * 500
    assert fetched["tags"] == ["g" * 100]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing-here"),
        ("GET", "/v2/sessions"),
        ("POST", "/v1/sessions/stats/extra"),
        ("GET", "/nothing"),
        ("GET", "/api"),
    ],
)
async def test_unknown_route_is_404(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/sessions"),
        ("DELETE", "/v1/harnesses"),
        ("PATCH", "/v1/agents"),
        ("POST", "/v1/sessions/stats"),
        ("POST", "/v1/agents/{agent}"),
        ("GET", "/v1/sessions/{session}/pin"),
    ],
)
async def test_wrong_method_is_405(api: Api, method: str, path: str) -> None:
    existing = await _existing(api)
    response = await api.client.request(method, path.format(**existing))
    assert_error(response, 405, "method_not_allowed")


@pytest.fixture
async def small_body_api(settings: Settings, api: Api) -> AsyncIterator[httpx.AsyncClient]:
    small = settings.model_copy(update={"max_body_bytes": 1024})
    services = build_services(small)
    app = create_app(services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://everloop.test/api",
        headers={"Authorization": f"Bearer {api.token}"},
    ) as client:
        yield client
    await services.close()


async def test_body_over_the_limit_is_413(api: Api, small_body_api: httpx.AsyncClient) -> None:
    fits = await small_body_api.post("/v1/sessions", json={"title": "t" * 400})
    assert fits.status_code == 201, fits.text
    response = await small_body_api.post("/v1/sessions", json={"title": "t" * 2000})
    assert_error(response, 413, "payload_too_large")
    session_id = fits.json()["id"]
    patch = await small_body_api.patch(f"/v1/sessions/{session_id}", json={"tags": ["t" * 90] * 20})
    assert_error(patch, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit must hold on the bytes actually received.
        yield b'{"title": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    streamed = await small_body_api.post(
        "/v1/sessions", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(streamed, 413, "payload_too_large")
    listed = (await api.client.get("/v1/sessions")).json()
    assert [s["id"] for s in listed["data"]] == [session_id]
    assert listed["data"][0]["tags"] == []
