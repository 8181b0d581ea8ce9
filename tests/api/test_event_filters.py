"""GET /v1/sessions/{id}/events: the debug filters of everruns-sdk's ``events.list`` (``q``,
``tool_name``, ``trace_id``, ``exec_id``, ``tags``, ``from_ts``/``to_ts``, ``around``/``window``)
on real turns (llmsim), composed with the other filters; unknown parameters refused. Runs on
SQLite, and on PostgreSQL with EVERLOOP_TEST_POSTGRES_URL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.api.conftest import assert_error
from tests.conftest import Api
from tests.engine.conftest import events, new_session, wait_turns_ended

pytestmark = pytest.mark.timeout(90)

SCRIPT = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
}


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


@dataclass
class Log:
    sid: str
    full: list[dict[str, Any]]
    turns: list[str]


async def post(api: Api, sid: str, text: str, tags: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message": {"role": "user", "content": [{"type": "text", "text": text}]}
    }
    if tags is not None:
        body["tags"] = tags
    posted = await api.client.post(f"/v1/sessions/{sid}/messages", json=body)
    assert posted.status_code == 201, posted.text
    return dict(posted.json())


@pytest.fixture
async def log(engine: Api) -> Log:
    """Two turns: one calls the ``add`` tool (its message tagged), one talks about zebras."""
    sid = await new_session(engine, SCRIPT, capabilities=[{"ref": "test_math"}])
    first = await post(engine, sid, "please add these numbers", tags=["billing", "urgent"])
    await wait_turns_ended(engine, sid, count=1)
    second = await post(engine, sid, "tell me about Zebras and their stripes")
    await wait_turns_ended(engine, sid, count=2)
    return Log(sid, await events(engine, sid), [first["turn_id"], second["turn_id"]])


async def listed(api: Api, sid: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get(f"/v1/sessions/{sid}/events", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def ids_of(found: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in found]


def words(value: Any) -> set[str]:
    """The case-folded words of every string in ``value`` (what the search indexes)."""
    if isinstance(value, str):
        return set(re.findall(r"[^\W_]+", value.lower()))
    if isinstance(value, dict):
        return set().union(*(words(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(words(v) for v in value))
    return set()


# What the search leaves out: deltas, and events carrying only ids, counters or the prompt.
UNSEARCHED = {
    "llm.generation",
    "turn.started",
    "turn.completed",
    "turn.cancelled",
    "reason.started",
    "reason.completed",
    "output.message.started",
    "act.started",
    "act.completed",
    "session.started",
    "session.activated",
    "session.idled",
}


def searchable(event: dict[str, Any], *wanted: str) -> bool:
    if event["type"].endswith(".delta") or event["type"] in UNSEARCHED:
        return False
    return set(wanted) <= words(event["data"])


async def test_q_searches_the_text_of_events(engine: Api, log: Log) -> None:
    zebras = await listed(engine, log.sid, q="zebras")
    expected = [e for e in log.full if searchable(e, "zebras")]
    assert ids_of(zebras) == ids_of(expected)
    # The message and its answer (echoed); never a delta, nor the model call's prompt.
    assert {e["type"] for e in zebras} == {"input.message", "output.message.completed"}
    assert all(e["context"]["turn_id"] == log.turns[1] for e in zebras)
    assert ids_of(await listed(engine, log.sid, q="ZEBRAS")) == ids_of(zebras)
    # Every word must occur; a quoted phrase as written.
    both = await listed(engine, log.sid, q="zebras stripes")
    assert ids_of(both) == ids_of([e for e in log.full if searchable(e, "zebras", "stripes")])
    assert ids_of(await listed(engine, log.sid, q='"about zebras"')) == ids_of(zebras)
    assert await listed(engine, log.sid, q='"zebras about"') == []
    assert await listed(engine, log.sid, q="zebras giraffes") == []
    # Tool results and arguments are text too (the add call's result {"result":5}).
    result = await listed(engine, log.sid, q="result", types=["tool.completed"])
    assert [e["data"]["tool_name"] for e in result] == ["add"]
    # Composes with the other filters; punctuation alone matches nothing, and is no error.
    only = await listed(engine, log.sid, q="zebras", types=["input.message"])
    assert [e["type"] for e in only] == ["input.message"]
    newest = await listed(engine, log.sid, q="zebras", order_desc="true", limit=2)
    assert ids_of(newest) == ids_of(expected[::-1][:2])
    assert await listed(engine, log.sid, q='!!! "" - (*)') == []
    empty = await engine.client.get(f"/v1/sessions/{log.sid}/events", params={"q": ""})
    assert_error(empty, 422, field="q")


async def test_tool_name(engine: Api, log: Log) -> None:
    found = await listed(engine, log.sid, tool_name="add")
    kinds = [e["type"] for e in found]
    assert {"act.started", "tool.started", "tool.completed", "llm.generation"} <= set(kinds)
    assert all(e["context"]["turn_id"] == log.turns[0] for e in found)
    # The llm.generation is the one whose model called the tool (not the one after it).
    generations = [e for e in found if e["type"] == "llm.generation"]
    assert [[c["name"] for c in g["data"]["output"]["tool_calls"]] for g in generations] == [
        ["add"]
    ]
    assert await listed(engine, log.sid, tool_name="divide") == []
    completed = await listed(engine, log.sid, tool_name="add", types=["tool.completed"])
    assert [e["data"]["tool_name"] for e in completed] == ["add"]


async def test_trace_exec_and_tags(engine: Api, log: Log) -> None:
    second = log.turns[1]
    traced = await listed(engine, log.sid, trace_id=second)
    assert ids_of(traced) == ids_of([e for e in log.full if e["context"]["trace_id"] == second])
    assert ids_of(traced) == ids_of(await listed(engine, log.sid, turn_id=second))
    assert await listed(engine, log.sid, trace_id=second, turn_id=log.turns[0]) == []
    # Everloop's events carry no exec id: the filter is honest and matches none.
    assert all(e["context"]["exec_id"] is None for e in log.full)
    assert await listed(engine, log.sid, exec_id="exec_" + "0" * 32) == []

    tagged = await listed(engine, log.sid, tags=["urgent"])
    assert [(e["type"], e["tags"]) for e in tagged] == [("input.message", ["billing", "urgent"])]
    assert ids_of(await listed(engine, log.sid, tags=["nope", "billing"])) == ids_of(tagged)
    assert await listed(engine, log.sid, tags=["nope"]) == []
    assert await listed(engine, log.sid, tags=["urgent"], turn_id=log.turns[1]) == []


async def test_time_bounds(engine: Api, log: Log) -> None:
    start = next(e for e in log.full if e["type"] == "input.message" and e["sequence"] > 2)
    after = await listed(engine, log.sid, from_ts=start["ts"])
    assert ids_of(after) == ids_of([e for e in log.full if e["ts"] >= start["ts"]])
    before = await listed(engine, log.sid, to_ts=start["ts"])
    assert ids_of(before) == ids_of([e for e in log.full if e["ts"] <= start["ts"]])
    # Any offset, same moment.
    moment = datetime.fromisoformat(start["ts"]).astimezone(timezone(timedelta(hours=2)))
    assert ids_of(await listed(engine, log.sid, from_ts=moment.isoformat())) == ids_of(after)
    # A bound between two milliseconds keeps only the events inside it.
    later = (datetime.fromisoformat(start["ts"]) + timedelta(microseconds=400)).isoformat()
    assert ids_of(await listed(engine, log.sid, from_ts=later)) == ids_of(
        [e for e in log.full if e["ts"] > start["ts"]]
    )
    both = await listed(engine, log.sid, from_ts=start["ts"], to_ts=start["ts"], q="zebras")
    assert all(e["ts"] == start["ts"] for e in both) and start["id"] in ids_of(both)
    assert await listed(engine, log.sid, from_ts="2999-01-01T00:00:00Z") == []
    for field, value in (
        ("from_ts", "yesterday"),
        ("from_ts", "2026-01-01T00:00:00"),  # no offset
        ("to_ts", "2026-13-01T00:00:00Z"),
        ("to_ts", "2026-01-01"),
    ):
        bad = await engine.client.get(f"/v1/sessions/{log.sid}/events", params={field: value})
        assert_error(bad, 422, field=field)


async def test_around_a_window(engine: Api, log: Log) -> None:
    full = log.full
    middle = full[len(full) // 2]
    at = full.index(middle)
    window = await listed(engine, log.sid, around=middle["id"], window=2)
    assert ids_of(window) == ids_of(full[at - 2 : at + 3])
    assert ids_of(await listed(engine, log.sid, around=middle["id"], window=0)) == [middle["id"]]
    newest = await listed(engine, log.sid, around=middle["id"], window=2, order_desc="true")
    assert ids_of(newest) == ids_of(full[at - 2 : at + 3][::-1])
    # Default window: 50 each side, more than this log has.
    assert ids_of(await listed(engine, log.sid, around=middle["id"])) == ids_of(full)
    # After the other filters: the anchor's neighbours among the matching events, the anchor
    # itself only when it matches.
    kept = [e for e in full if e["type"] != "output.message.delta"]
    anchor = next(e for e in kept[3:] if e["type"] != middle["type"])
    filtered = await listed(
        engine, log.sid, around=anchor["id"], window=3, exclude=["output.message.delta"]
    )
    k = kept.index(anchor)
    assert ids_of(filtered) == ids_of(kept[max(0, k - 3) : k + 4])
    other = await listed(engine, log.sid, around=anchor["id"], window=1, types=[middle["type"]])
    same_type = [e for e in full if e["type"] == middle["type"]]
    below = [e for e in same_type if e["sequence"] < anchor["sequence"]][-1:]
    above = [e for e in same_type if e["sequence"] > anchor["sequence"]][:1]
    assert ids_of(other) == ids_of(below + above)

    url = f"/v1/sessions/{log.sid}/events"
    unknown = await engine.client.get(url, params={"around": "event_" + "0" * 32})
    assert_error(unknown, 404)
    assert_error(await engine.client.get(url, params={"around": "x"}), 422, field="around")
    for field, value in (
        ("limit", 5),
        ("since_id", full[0]["id"]),
        ("after_sequence", 1),
        ("before_sequence", 9),
    ):
        mixed = await engine.client.get(url, params={"around": middle["id"], field: value})
        assert_error(mixed, 422, field=field)
    assert_error(await engine.client.get(url, params={"window": 3}), 422, field="window")
    too_big = await engine.client.get(url, params={"around": middle["id"], "window": 501})
    assert_error(too_big, 422, field="window")


async def test_unknown_parameters_are_refused(engine: Api, log: Log) -> None:
    url = f"/v1/sessions/{log.sid}/events"
    typo = await engine.client.get(url, params={"type": "turn.started"})
    error = assert_error(typo, 422, field="type")
    assert "types" in error["message"]
    assert_error(await engine.client.get(url, params={"limit": 2, "x": ""}), 422, field="x")
    sse = await engine.client.get(f"/v1/sessions/{log.sid}/sse", params={"q": "zebras"})
    assert_error(sse, 422, field="q")
    # Every parameter the SDK's events.list sends is taken (its None values are not sent).
    every = {
        "since_id": None,
        "types": ["turn.started"],
        "exclude": ["turn.completed"],
        "limit": 10,
        "before_sequence": 10_000,
        "after_sequence": 0,
        "from_ts": "2000-01-01T00:00:00Z",
        "to_ts": "2999-01-01T00:00:00Z",
        "turn_id": log.turns[0],
        "trace_id": log.turns[0],
        "tags": ["x"],
        "tool_name": "add",
        "q": "add",
        "order_desc": "false",
    }
    response = await engine.client.get(
        url, params={k: v for k, v in every.items() if v is not None}
    )
    assert response.status_code == 200, response.text
