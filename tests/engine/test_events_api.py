"""GET /v1/sessions/{id}/events: the parameters of everruns-sdk's events.list."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import Api
from tests.engine.conftest import events, new_session, send, wait_turns_ended

pytestmark = pytest.mark.timeout(60)


async def listed(api: Api, sid: str, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get(f"/v1/sessions/{sid}/events", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


@pytest.fixture
async def two_turns(engine: Api) -> tuple[str, list[dict[str, Any]], list[str]]:
    sid = await new_session(engine, {"response": {"type": "fixed", "text": "ok"}})
    first = await send(engine, sid, "one")
    second = await send(engine, sid, "two")
    await wait_turns_ended(engine, sid, count=2)
    return sid, await events(engine, sid), [first["turn_id"], second["turn_id"]]


async def test_cursors_and_limits(engine: Api, two_turns: Any) -> None:
    sid, full, _ = two_turns
    seqs = [e["sequence"] for e in full]
    assert seqs == list(range(1, len(full) + 1))
    after = await listed(engine, sid, after_sequence=5)
    assert [e["sequence"] for e in after] == seqs[5:]
    since = await listed(engine, sid, since_id=full[4]["id"])
    assert since == after
    before = await listed(engine, sid, before_sequence=4)
    assert [e["sequence"] for e in before] == [1, 2, 3]
    last = await listed(engine, sid, limit=3)
    assert [e["sequence"] for e in last] == seqs[-3:]
    newest = await listed(engine, sid, order_desc="true", limit=2)
    assert [e["sequence"] for e in newest] == [seqs[-1], seqs[-2]]
    page = await listed(engine, sid, after_sequence=2, limit=2)
    assert [e["sequence"] for e in page] == [3, 4]


async def test_type_and_turn_filters(engine: Api, two_turns: Any) -> None:
    sid, full, turn_ids = two_turns
    only = await listed(engine, sid, types=["turn.started", "turn.completed"])
    assert [e["type"] for e in only] == ["turn.started", "turn.completed"] * 2
    without = await listed(engine, sid, exclude=["llm.generation", "output.message.delta"])
    assert {e["type"] for e in without}.isdisjoint({"llm.generation", "output.message.delta"})
    assert len(without) == len(
        [e for e in full if e["type"] not in ("llm.generation", "output.message.delta")]
    )
    second = await listed(engine, sid, turn_id=turn_ids[1])
    assert second and all(e["context"]["turn_id"] == turn_ids[1] for e in second)


async def test_bad_event_queries(engine: Api, two_turns: Any) -> None:
    sid, _, _ = two_turns
    unknown = await engine.client.get(
        f"/v1/sessions/{sid}/events", params={"since_id": "event_" + "0" * 32}
    )
    assert unknown.status_code == 404
    malformed = await engine.client.get(f"/v1/sessions/{sid}/events", params={"since_id": "x"})
    assert malformed.status_code == 422
    negative = await engine.client.get(f"/v1/sessions/{sid}/events", params={"limit": 0})
    assert negative.status_code == 422
    other = await engine.client.get("/v1/sessions/session_00000000000000000000000000000000/events")
    assert other.status_code == 404
