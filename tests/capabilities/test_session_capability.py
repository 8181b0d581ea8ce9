"""The ``session`` capability through real turns (llmsim scripts): ``get_session_info``'s
usage, ``write_session_title`` and its event, the automatic title after the first turn, and
the API's title change recording the same event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import events, new_session, send, wait_turns_ended

from everloop.domain.session_titles import auto_title

SESSION = [{"ref": "session"}]
TITLE_EVENT = "session.title.updated"


@pytest.fixture
async def engine(api: Api) -> AsyncIterator[Api]:
    await api.services.start_engine()
    yield api


def _rule(when: str, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"when": when, "name": tool, "arguments": arguments}


async def _turn(api: Api, session_id: str, text: str, number: int) -> list[dict[str, Any]]:
    """Send ``text``; all the session's events once that turn (the ``number``-th) ended."""
    await send(api, session_id, text)
    return await wait_turns_ended(api, session_id, count=number)


def _completed(found: list[dict[str, Any]], tool: str) -> list[dict[str, Any]]:
    return [e for e in found if e["type"] == "tool.completed" and e["data"]["tool_name"] == tool]


def _result(completed: dict[str, Any]) -> Any:
    assert completed["data"]["success"], completed
    return json.loads(completed["data"]["result"][0]["text"])


def _titles(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in found if e["type"] == TITLE_EVENT]


def final_text(found: list[dict[str, Any]]) -> str:
    """The text of the last message the model wrote."""
    last = [e for e in found if e["type"] == "output.message.completed"][-1]
    return "".join(p.get("text", "") for p in last["data"]["message"]["content"])


def _usage_sum(generations: list[dict[str, Any]]) -> dict[str, int]:
    names = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    return {n: sum(g["data"]["metadata"]["usage"][n] for g in generations) for n in names}


async def test_get_session_info_reports_the_usage_recorded_so_far(engine: Api) -> None:
    api = engine
    script = {
        "response": {"type": "fixed", "text": "ok"},
        "tool_calls": [_rule("^info", "get_session_info")],
    }
    sid = await new_session(api, script, capabilities=SESSION, tags=["alpha"])
    await _turn(api, sid, "hello there", 1)
    after_first = (await api.client.get(f"/v1/sessions/{sid}")).json()["usage"]

    found = await _turn(api, sid, "info please", 2)
    (completed,) = _completed(found, "get_session_info")
    info = _result(completed)
    # Every model call recorded before the tool ran: turn 1's and the call that asked for it.
    before = [
        e for e in found if e["type"] == "llm.generation" and e["sequence"] < completed["sequence"]
    ]
    expected = _usage_sum(before)
    assert {k: info["usage"][k] for k in expected} == expected
    assert info["usage"]["total_tokens"] == sum(expected.values())
    assert info["usage"]["input_tokens"] > after_first["input_tokens"]
    assert info["session_id"] == sid and info["status"] == "active"
    assert info["title"] == "hello there" and info["tags"] == ["alpha"]
    assert info["agent_id"] is None and info["model_id"].startswith("model_")
    assert info["created_at"]
    assert not {"system_prompt", "capabilities", "mcp_servers", "hints"} & set(info)
    final = (await api.client.get(f"/v1/sessions/{sid}")).json()["usage"]
    generations = [e for e in found if e["type"] == "llm.generation"]
    assert {k: final[k] for k in expected} == _usage_sum(generations)


async def test_write_session_title_sets_the_title_with_one_event(engine: Api) -> None:
    api = engine
    script = {
        "response": {"type": "echo"},
        "tool_calls": [
            _rule("^name", "write_session_title", title="  Trip   to\nLisbon "),
            _rule("^blank", "write_session_title", title="   "),
            _rule("^long", "write_session_title", title="x" * 501),
        ],
    }
    sid = await new_session(api, script, capabilities=SESSION, title="Given")
    found = await _turn(api, sid, "name it", 1)
    (named,) = _completed(found, "write_session_title")
    assert _result(named) == {"title": "Trip to Lisbon", "previous_title": "Given", "changed": True}
    assert (await api.client.get(f"/v1/sessions/{sid}")).json()["title"] == "Trip to Lisbon"
    (event,) = [e for e in found if e["type"] == TITLE_EVENT]
    assert event["data"] == {
        "session_id": sid,
        "title": "Trip to Lisbon",
        "previous_title": "Given",
        "source": "tool",
    }
    assert event["context"]["turn_id"] == named["context"]["turn_id"]
    assert event["sequence"] < named["sequence"]

    found = await _turn(api, sid, "blank it", 2)
    (blank,) = _completed(found, "write_session_title")[1:]
    assert not blank["data"]["success"] and blank["data"]["error"] == "title must not be empty"
    found = await _turn(api, sid, "long it", 3)
    (long,) = _completed(found, "write_session_title")[2:]
    assert "at most 500 characters (got 501)" in long["data"]["error"]
    # The model read the errors (echo repeats the tool results).
    answer = final_text(found)
    assert "write_session_title: error: title must be at most 500 characters" in answer
    assert len(_titles(found)) == 1
    assert (await api.client.get(f"/v1/sessions/{sid}")).json()["title"] == "Trip to Lisbon"


async def test_first_turn_titles_an_untitled_session_once(engine: Api) -> None:
    api = engine
    script = {"response": {"type": "fixed", "text": "ok"}}
    first = (
        "  Plan   a  week-long trip through Portugal with stops in Porto, Coimbra and Lisbon\nmore"
    )
    sid = await new_session(api, script, capabilities=SESSION)
    found = await _turn(api, sid, first, 1)
    expected = "Plan a week-long trip through Portugal with stops in Porto,…"
    assert auto_title(first) == expected and len(expected) <= 60
    assert (await api.client.get(f"/v1/sessions/{sid}")).json()["title"] == expected
    assert _titles(found) == [
        {"session_id": sid, "title": expected, "previous_title": None, "source": "auto"}
    ]
    types = [e["type"] for e in found]
    assert types.index("turn.completed") < types.index(TITLE_EVENT) < types.index("session.idled")

    # Later turns leave it, even once it is cleared.
    cleared = await api.client.patch(f"/v1/sessions/{sid}", json={"title": None})
    assert cleared.status_code == 200 and cleared.json()["title"] is None
    found = await _turn(api, sid, "another subject", 2)
    assert [t["source"] for t in _titles(found)] == ["auto", "api"]
    assert (await api.client.get(f"/v1/sessions/{sid}")).json()["title"] is None


async def test_no_automatic_title_when_given_or_without_the_capability(engine: Api) -> None:
    api = engine
    script = {"response": {"type": "fixed", "text": "ok"}}
    titled = await new_session(api, script, capabilities=SESSION, title="Mine")
    plain = await new_session(api, script)
    for sid in (titled, plain):
        found = await _turn(api, sid, "hello world", 1)
        assert _titles(found) == []
    assert (await api.client.get(f"/v1/sessions/{titled}")).json()["title"] == "Mine"
    assert (await api.client.get(f"/v1/sessions/{plain}")).json()["title"] is None


async def test_api_title_change_records_the_event(api: Api) -> None:
    sid = await new_session(api, title="Before")
    patched = await api.client.patch(f"/v1/sessions/{sid}", json={"title": "After"})
    assert patched.status_code == 200, patched.text
    same = await api.client.patch(f"/v1/sessions/{sid}", json={"title": "After"})
    assert same.status_code == 200
    tags_only = await api.client.patch(f"/v1/sessions/{sid}", json={"tags": ["x"]})
    assert tags_only.status_code == 200 and tags_only.json()["title"] == "After"
    assert _titles(await events(api, sid)) == [
        {"session_id": sid, "title": "After", "previous_title": "Before", "source": "api"}
    ]
    listed = await api.client.get(f"/v1/sessions/{sid}/events", params={"types": TITLE_EVENT})
    assert [e["type"] for e in listed.json()["data"]] == [TITLE_EVENT]
    found = await api.client.get("/v1/sessions", params={"search": "after"})
    assert sid in [s["id"] for s in found.json()["data"]]


def test_auto_title_rules() -> None:
    assert auto_title("") is None and auto_title(" \n\t\n") is None
    assert auto_title("\n\n  hi   there \nsecond") == "hi there"
    assert auto_title("x" * 80) == "x" * 59 + "…"
    exact = "word " * 11 + "abcd"  # 59 characters: kept whole
    assert auto_title(exact) == exact.strip()
