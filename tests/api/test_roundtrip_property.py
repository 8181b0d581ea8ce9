"""Property: whatever a write endpoint accepts, its read endpoints return, unchanged.

For generated JSON-ish values (deep nesting, any code point including lone surrogates, integers
past 64 bits, NaN and infinities, strings around the size limit) posted to the main write
endpoints, either the answer is a 4xx and nothing was written, or it is a 2xx and every read
endpoint answers 200 with the value intact. Never a 5xx.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.api.conftest import create_session
from tests.conftest import Api

# Any code point, lone surrogates included (hypothesis leaves them out unless asked).
CHARS = st.characters(codec=None, exclude_categories=())
TEXT = st.text(CHARS, max_size=20)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and the infinities included
    | TEXT
)
# Strings of any one character repeated around the 256 KiB free-form limit, cheaply.
BIG_TEXT = st.builds(lambda c, n: c * n, CHARS, st.integers(250_000, 270_000))
TREES = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4)
)


def _nest(value: Any, levels: int, as_list: bool) -> Any:
    for _ in range(levels):
        value = [value] if as_list else {"k": value}
    return value


DEEP = st.builds(_nest, TREES, st.integers(1, 120), st.booleans())
VALUES = TREES | DEEP | st.dictionaries(TEXT, BIG_TEXT, max_size=1)
OBJECTS = st.dictionaries(TEXT, VALUES, max_size=3)

_names = itertools.count()


def same(sent: Any, got: Any) -> bool:
    """Equal as JSON: numbers by value (PostgreSQL may hand 1e16 back as 10000000000000000)."""
    if isinstance(sent, (int, float)) and not isinstance(sent, bool):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and _number(sent, got)
    if isinstance(sent, dict):
        return (
            isinstance(got, dict)
            and sent.keys() == got.keys()
            and all(same(v, got[k]) for k, v in sent.items())
        )
    if isinstance(sent, list):
        return isinstance(got, list) and len(sent) == len(got) and all(map(same, sent, got))
    return bool(sent == got)


def _number(sent: float, got: float) -> bool:
    if isinstance(sent, float) or isinstance(got, float):
        return float(sent) == float(got)
    return sent == got


async def send(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    # Python's encoder writes what a hostile client may: NaN, Infinity, "\ud800", huge ints.
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    return await client.post(path, content=raw, headers=headers)


async def ok(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    assert response.status_code == 200, (path, response.text)
    return response.json()


async def everything(api: Api, session_id: str) -> list[Any]:
    """All the reads the writes below could change (each must be 200)."""
    base = f"/v1/sessions/{session_id}"
    paths = ["/v1/sessions?limit=100", "/v1/agents", f"{base}/events", f"{base}/messages"]
    return [await ok(api.client, path) for path in paths]


_PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_PROPERTY
@given(title=TEXT, tags=st.lists(TEXT, max_size=3), hints=OBJECTS)
async def test_a_created_session_reads_back(
    api: Api, title: str, tags: list[str], hints: dict[str, Any]
) -> None:
    anchor = await _anchor(api)
    before = await everything(api, anchor)
    response = await send(
        api.client, "/v1/sessions", {"title": title, "tags": tags, "hints": hints}
    )
    assert response.status_code < 500, response.text
    event(f"answered {response.status_code}")
    if response.status_code >= 400:
        assert await everything(api, anchor) == before
        return
    assert response.status_code == 201
    created = response.json()
    fetched = await ok(api.client, f"/v1/sessions/{created['id']}")
    listed = (await everything(api, anchor))[0]["data"]
    for got in (created, fetched, next(s for s in listed if s["id"] == created["id"])):
        assert same(title, got["title"]) and same(tags, got["tags"]) and same(hints, got["hints"])


@_PROPERTY
@given(text=TEXT, metadata=OBJECTS)
async def test_a_posted_message_reads_back(api: Api, text: str, metadata: dict[str, Any]) -> None:
    anchor = await _anchor(api)
    before = await everything(api, anchor)
    body = {"message": {"content": [{"type": "text", "text": text}]}, "metadata": metadata}
    response = await send(api.client, f"/v1/sessions/{anchor}/messages", body)
    assert response.status_code < 500, response.text
    event(f"answered {response.status_code}")
    if response.status_code >= 400:
        assert await everything(api, anchor) == before
        return
    assert response.status_code == 201
    posted = response.json()
    events = (await everything(api, anchor))[2]["data"]
    messages = (await ok(api.client, f"/v1/sessions/{anchor}/messages"))["data"]
    inputs = [e["data"]["message"] for e in events if e["type"] == "input.message"]
    stored = next(m for m in inputs if m["id"] == posted["id"])
    listed = next(m for m in messages if m["id"] == posted["id"])
    for got in (posted, stored, listed):
        assert same(text, got["content"][0]["text"]) and same(metadata, got["metadata"])


@_PROPERTY
@given(description=TEXT, tags=st.lists(TEXT, max_size=3), config=OBJECTS)
async def test_a_created_agent_reads_back(
    api: Api, description: str, tags: list[str], config: dict[str, Any]
) -> None:
    anchor = await _anchor(api)
    before = await everything(api, anchor)
    body = {
        "name": f"agent-{next(_names)}",
        "system_prompt": "You help.",
        "description": description,
        "tags": tags,
        "capabilities": [{"ref": "current_time", "config": config}],
    }
    response = await send(api.client, "/v1/agents", body)
    assert response.status_code < 500, response.text
    event(f"answered {response.status_code}")
    if response.status_code >= 400:
        assert await everything(api, anchor) == before
        return
    assert response.status_code == 201
    created = response.json()
    fetched = await ok(api.client, f"/v1/agents/{created['id']}")
    listed = (await everything(api, anchor))[1]["data"]
    for got in (created, fetched, next(a for a in listed if a["id"] == created["id"])):
        assert same(description, got["description"]) and same(tags, got["tags"])
        assert same(config, got["capabilities"][0]["config"])


async def _anchor(api: Api) -> str:
    """The session the examples post messages to (created once per test, not per example)."""
    listed = (await api.client.get("/v1/sessions", params={"search": "anchor"})).json()["data"]
    if listed:
        return str(listed[0]["id"])
    return str((await create_session(api, title="anchor"))["id"])
