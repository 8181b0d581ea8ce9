"""Whatever the API accepts it can read back: a value it could not store or return unchanged
(nested too deep, a lone surrogate, a number JSON has no room for) is a 422 naming the field,
and the request writes nothing, so the org's lists and the session's events stay readable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from everloop.api.app import create_app
from everloop.bootstrap import build_services
from everloop.config import Settings
from everloop.errors import InvalidInput
from tests.api.conftest import assert_error, create_session
from tests.conftest import Api

LONE = "\ud800"  # a UTF-16 high surrogate with no low one after it: not Unicode text
TEXT = {"message": {"content": [{"type": "text", "text": "hi"}]}}


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def send(api: Api, method: str, path: str, body: Any) -> httpx.Response:
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it (httpx's
    # own encoder refuses to), and writes NaN/Infinity, which Python's parser takes.
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    return await api.client.request(method, path, content=raw, headers=headers)


async def readable(api: Api, session_id: str) -> list[Any]:
    """The org's session list and the session's events and messages: all must be 200."""
    answers = [
        await api.client.get("/v1/sessions"),
        await api.client.get(f"/v1/sessions/{session_id}"),
        await api.client.get(f"/v1/sessions/{session_id}/events"),
        await api.client.get(f"/v1/sessions/{session_id}/messages"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
    return [answer.json() for answer in answers]


async def test_hints_nested_300_deep_are_422_and_create_no_session(api: Api) -> None:
    session = await create_session(api, title="kept")
    before = await readable(api, session["id"])
    response = await send(api, "POST", "/v1/sessions", {"title": "deep", "hints": nested(300)})
    error = assert_error(response, 422, "validation_error", field="hints")
    assert "deeper than 32 levels" in error["message"]
    assert await readable(api, session["id"]) == before


@pytest.mark.parametrize(
    ("metadata", "needle"),
    [
        ({"note": LONE}, "lone UTF-16 surrogate"),
        ({LONE: "as a key"}, "lone UTF-16 surrogate"),
        ({"list": [1, {"deep": f"x{LONE}y"}]}, "at list.1.deep"),
        (nested(300), "deeper than 32 levels"),
    ],
)
async def test_message_metadata_that_could_not_be_read_back_is_422(
    api: Api, metadata: dict[str, Any], needle: str
) -> None:
    session = await create_session(api)
    before = await readable(api, session["id"])
    body = {**TEXT, "metadata": metadata}
    response = await send(api, "POST", f"/v1/sessions/{session['id']}/messages", body)
    error = assert_error(response, 422, "validation_error", field="metadata")
    assert needle in error["message"]
    assert await readable(api, session["id"]) == before


# (method, path, body, field): a lone surrogate or a number JSON cannot hold, in every kind of
# field: plain text, a list of text, typed maps, free-form JSON, extra fields of open models.
REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/v1/sessions", {"title": f"a{LONE}"}, "title"),
    ("POST", "/v1/sessions", {"tags": ["ok", LONE]}, "tags.1"),
    ("POST", "/v1/sessions", {"blueprint_config": {"k": LONE}}, "blueprint_config"),
    ("POST", "/v1/sessions", {"hints": {"n": 2**64}}, "hints"),
    ("POST", "/v1/sessions", {"hints": {"n": float("nan")}}, "hints"),
    ("POST", "/v1/sessions", {"capabilities": [{"ref": "r", "config": {"x": float("inf")}}]},
     "capabilities.0.config"),
    ("POST", "/v1/sessions", {"mcpServers": {"m": {"url": "http://x", "extra": LONE}}},
     "mcpServers.m.extra"),
    ("PATCH", "/v1/sessions/{session}", {"title": LONE}, "title"),
    ("POST", "/v1/sessions/{session}/messages",
     {"message": {"content": [{"type": "text", "text": f"hi {LONE}"}]}},
     "message.content.0.text"),
    ("POST", "/v1/sessions/{session}/messages",
     {**TEXT, "controls": {"hints": {"k": [LONE]}}}, "controls.hints"),
    ("POST", "/v1/sessions/{session}/messages",
     {**TEXT, "controls": {"custom": -(2**63) - 1}}, "controls.custom"),
    ("POST", "/v1/agents", {"name": "a", "system_prompt": f"p{LONE}"}, "system_prompt"),
    ("POST", "/v1/harnesses", {"name": "h", "embedder_metadata": {"k": LONE}},
     "embedder_metadata.k"),
    ("PUT", "/v1/sessions/{session}/storage/secrets", {"secrets": {"a": "v", "b": LONE}},
     "secrets.b"),
    ("POST", "/v1/sessions/{session}/fs/notes.txt", {"content": LONE}, "content"),
    ("POST", "/v1/providers", {"name": "p", "driver": "openai", "settings": {"t": 1e400}},
     "settings"),
    ("POST", "/v1/auth/api-keys", {"name": LONE}, "name"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "field"), REFUSED)
async def test_unstorable_values_anywhere_are_422_naming_the_field(
    api: Api, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    session = await create_session(api, title="kept")
    before = await readable(api, session["id"])
    response = await send(api, method, path.format(session=session["id"]), body)
    assert_error(response, 422, "validation_error", field=field)
    assert await readable(api, session["id"]) == before


async def test_a_key_the_client_sent_is_named_shortened_in_the_error(api: Api) -> None:
    # The error names the field by the client's own key, which may be long and not text.
    key = LONE + "k" * 10_000
    body = {"name": "h", "embedder_metadata": {key: "v" * 1001}}
    response = await send(api, "POST", "/v1/harnesses", body)
    error = assert_error(response, 422, "validation_error")
    assert error["field"].startswith("embedder_metadata.")
    assert error["field"].endswith("...") and len(error["field"]) < 100


async def test_out_of_range_event_sequences_are_422(api: Api) -> None:
    session = await create_session(api)
    base = f"/v1/sessions/{session['id']}"
    huge = "99999999999999999999"
    for path, name in [
        (f"{base}/events", "after_sequence"),
        (f"{base}/events", "before_sequence"),
        (f"{base}/sse", "after_sequence"),
    ]:
        response = await api.client.get(path, params={name: huge})
        assert_error(response, 422, "validation_error", field=name)
    largest = await api.client.get(f"{base}/events", params={"after_sequence": 2**63 - 1})
    assert largest.status_code == 200, largest.text
    assert largest.json()["data"] == []


async def test_free_form_values_at_the_limits_round_trip(api: Api) -> None:
    hints = {"deep": nested(31), "big": "x" * (256 * 1024 - 1000), "n": 2**63 - 1, "f": 1e308}
    session = await create_session(api, hints=hints)
    assert (await api.client.get(f"/v1/sessions/{session['id']}")).json()["hints"] == hints
    over = {"deep": nested(32)}
    assert_error(await send(api, "POST", "/v1/sessions", {"hints": over}), 422, field="hints")
    too_big = {"big": "x" * 256 * 1024}
    response = await send(api, "POST", "/v1/sessions", {"hints": too_big})
    error = assert_error(response, 422, "validation_error", field="hints")
    assert "the limit is 262144" in error["message"]


@pytest.fixture
async def strict_api(settings: Settings, api: Api) -> AsyncIterator[httpx.AsyncClient]:
    strict = settings.model_copy(update={"max_json_depth": 3, "max_json_bytes": 100})
    services = build_services(strict)
    app = create_app(services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://everloop.test/api",
        headers={"Authorization": f"Bearer {api.token}"},
    ) as client:
        yield client
    await services.close()


async def test_the_limits_are_settings(api: Api, strict_api: httpx.AsyncClient) -> None:
    fits = await strict_api.post("/v1/sessions", json={"hints": {"a": {"b": {}}}})
    assert fits.status_code == 201, fits.text
    deep = await strict_api.post("/v1/sessions", json={"hints": {"a": {"b": {"c": {}}}}})
    assert_error(deep, 422, "validation_error", field="hints")
    big = await strict_api.post("/v1/sessions", json={"hints": {"a": "x" * 100}})
    assert_error(big, 422, "validation_error", field="hints")
    # Stored values are not held to limits lowered later: the default app reads them all.
    listed = (await api.client.get("/v1/sessions")).json()["data"]
    assert [s["hints"] for s in listed] == [{"a": {"b": {}}}]
    assert (await strict_api.get("/v1/sessions")).status_code == 200


async def test_the_store_refuses_json_it_could_not_read_back(api: Api) -> None:
    # Below the API: the store writes only what it reads back, inside the transaction.
    caller = await api.services.auth.authenticate(f"Bearer {api.token}", None)
    session = await create_session(api, title="kept")
    before = await readable(api, session["id"])
    with pytest.raises(InvalidInput):
        await api.services.sessions.create(caller, {"hints": {"k": LONE}})
    with pytest.raises(InvalidInput):
        await api.services.turns.post_message(
            caller, session["id"], [{"type": "text", "text": "hi"}], metadata={"k": LONE}
        )
    assert await readable(api, session["id"]) == before
