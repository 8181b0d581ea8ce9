"""everruns-sdk's ``events.list`` with each of its filters against a real ``everloop serve``
(SQLite, or PostgreSQL with EVERLOOP_TEST_POSTGRES_URL): the server applies every one."""

from __future__ import annotations

import asyncio

import pytest
from everruns_sdk import Everruns
from everruns_sdk.errors import ApiError
from everruns_sdk.models import AgentCapabilityConfig

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow


async def test_every_filter_of_events_list(server: Server, api: Api) -> None:
    model_id = await asyncio.to_thread(
        api.llmsim_model,
        {
            "response": {"type": "echo"},
            "tool_calls": [{"when": "add", "name": "add", "arguments": {"a": 2, "b": 3}}],
        },
    )
    client = Everruns(api_key=server.token, base_url=server.api_url)
    try:
        session = await client.sessions.create(
            model_id=model_id, capabilities=[AgentCapabilityConfig(ref="test_math")]
        )
        # The SDK's messages.create sends no tags: the first message goes over HTTP.
        body = {
            "message": {"role": "user", "content": [{"type": "text", "text": "please add"}]},
            "tags": ["billing"],
        }
        await asyncio.to_thread(
            api.ok, api.http.post(f"sessions/{session.id}/messages", json=body), 201
        )
        await asyncio.to_thread(api.wait_type, session.id, "session.idled")
        await client.messages.create(session.id, "tell me about zebras")
        full = await asyncio.to_thread(api.wait_type, session.id, "session.idled", 2)
        events = client.events
        assert [e.id for e in await events.list(session.id)] == [e["id"] for e in full]
        started = [e for e in full if e["type"] == "turn.started"]
        first_turn, second_turn = [e["data"]["turn_id"] for e in started]

        zebras = await events.list(session.id, q="zebras", types=["input.message"])
        assert [e.data["message"]["content"][0]["text"] for e in zebras] == ["tell me about zebras"]
        tools = await events.list(session.id, tool_name="add")
        assert {"act.started", "tool.started", "tool.completed", "llm.generation"} <= {
            e.type for e in tools
        }
        assert await events.list(session.id, tool_name="divide") == []
        traced = await events.list(session.id, trace_id=second_turn)
        assert traced and {e.context.trace_id for e in traced} == {second_turn}
        assert [e.id for e in traced] == [
            e.id for e in await events.list(session.id, turn_id=second_turn)
        ]
        assert await events.list(session.id, exec_id="exec_" + "0" * 32) == []
        tagged = await events.list(session.id, tags=["nope", "billing"])
        assert [(e.type, e.tags, e.context.turn_id) for e in tagged] == [
            ("input.message", ["billing"], first_turn)
        ]

        middle = full[len(full) // 2]
        window = await events.list(session.id, around=middle["id"], window=1)
        at = full.index(middle)
        assert [e.id for e in window] == [e["id"] for e in full[at - 1 : at + 2]]
        newest = await events.list(session.id, around=middle["id"], window=1, order_desc=True)
        assert [e.id for e in newest] == [e.id for e in reversed(window)]
        since = await events.list(session.id, from_ts=middle["ts"], to_ts=full[-1]["ts"])
        assert [e.id for e in since] == [e["id"] for e in full if e["ts"] >= middle["ts"]]
        paged = await events.list(
            session.id, after_sequence=2, before_sequence=9, limit=3, exclude=["turn.started"]
        )
        kept = [e for e in full if 2 < e["sequence"] < 9 and e["type"] != "turn.started"]
        assert [e.id for e in paged] == [e["id"] for e in kept[:3]]

        with pytest.raises(ApiError) as bad:
            await events.list(session.id, from_ts="last tuesday")
        assert bad.value.status_code == 422 and "from_ts" in bad.value.message
        with pytest.raises(ApiError) as missing:
            await events.list(session.id, around="event_" + "0" * 32)
        assert missing.value.status_code == 404
    finally:
        await client.close()
