"""``GET /v1/sessions/{id}/messages``: every message names its turn, pages by offset and limit
(all of them without a limit, as ``everruns-sdk`` reads it); ``turn.completed`` carries the
turn's duration from its ``turn.started``."""

from __future__ import annotations

from typing import Any

import pytest

from everloop.domain.timestamps import ms_between
from tests.api.conftest import OtherOrg, assert_error
from tests.conftest import Api
from tests.engine.conftest import new_session, send, wait_turns_ended

pytestmark = pytest.mark.timeout(60)

ADDING = {
    "response": {"type": "echo"},
    "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
}


async def messages(api: Api, session_id: str, **params: Any) -> dict[str, Any]:
    listed = await api.client.get(f"/v1/sessions/{session_id}/messages", params=params)
    assert listed.status_code == 200, listed.text
    return dict(listed.json())


async def test_every_message_names_its_turn_and_pages_join_up(api: Api) -> None:
    await api.services.start_engine()
    sid = await new_session(api, ADDING, capabilities=[{"ref": "test_math"}])
    first = await send(api, sid, "please add these")
    await wait_turns_ended(api, sid)
    second = await send(api, sid, "thanks")
    await wait_turns_ended(api, sid, count=2)

    everything = await messages(api, sid)
    found = everything["data"]
    assert [(m["role"], m["turn_id"]) for m in found] == [
        ("user", first["turn_id"]),
        ("agent", first["turn_id"]),
        ("tool_result", first["turn_id"]),
        ("agent", first["turn_id"]),
        ("user", second["turn_id"]),
        ("agent", second["turn_id"]),
    ]
    assert (everything["total"], everything["offset"], everything["limit"]) == (6, 0, 6)
    assert [m["sequence"] for m in found] == sorted(m["sequence"] for m in found)

    pages = [await messages(api, sid, offset=offset, limit=4) for offset in (0, 4, 8)]
    assert [len(p["data"]) for p in pages] == [4, 2, 0]
    assert all(p["total"] == 6 and p["limit"] == 4 for p in pages)
    assert [m for p in pages for m in p["data"]] == found
    assert (await messages(api, sid, offset=5))["data"] == found[5:]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"offset": -1}, "offset")],
)
async def test_paging_out_of_range_is_refused_naming_the_parameter(
    api: Api, params: dict[str, int], field: str
) -> None:
    sid = await new_session(api)
    response = await api.client.get(f"/v1/sessions/{sid}/messages", params=params)
    assert_error(response, 422, field=field)


async def test_another_orgs_messages_are_not_found(api: Api, other_org: OtherOrg) -> None:
    sid = await new_session(api)
    response = await other_org.client.get(f"/v1/sessions/{sid}/messages")
    assert response.status_code == 404, response.text


async def test_turn_completed_carries_the_duration_from_turn_started(api: Api) -> None:
    await api.services.start_engine()
    sid = await new_session(api, ADDING, capabilities=[{"ref": "test_math"}])
    await send(api, sid, "please add these")
    found = await wait_turns_ended(api, sid)
    by_type = {e["type"]: e for e in found}
    started, completed = by_type["turn.started"], by_type["turn.completed"]
    duration = completed["data"]["duration_ms"]
    assert isinstance(duration, int)
    # Measured at the end step: no earlier than the last event before it, no later than the
    # terminal event's own time (timestamps have millisecond precision, as duration_ms).
    before_end = by_type["act.completed"]
    assert before_end["sequence"] < completed["sequence"]
    assert ms_between(started["ts"], before_end["ts"]) <= duration
    assert duration <= ms_between(started["ts"], completed["ts"])
