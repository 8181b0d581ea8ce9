"""``everruns-sdk``'s ``AgentClient``, unchanged, against a real ``everloop serve``: every method
of the Agent Execution API (``/api/v1/channels/{channel_id}``), questions and approvals included,
its answers parsed as the SDK parses them (issue 18)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from everruns_sdk import AgentClient
from everruns_sdk.errors import ApiError
from everruns_sdk.models import Event
from everruns_sdk.sse import EventStream

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow


def _agent_with_channel(api: Api, script: dict[str, Any]) -> tuple[str, str, str]:
    """An agent running an llmsim ``script``, one channel of it, and an agent key holding the
    ``end_user`` permission: (agent id, channel id, key)."""
    model_id = api.llmsim_model(script)
    agent = api.ok(
        api.http.post(
            "agents",
            json={"name": "support", "system_prompt": "You help.", "default_model_id": model_id},
        ),
        201,
    )
    channel = api.ok(api.http.post(f"agents/{agent['id']}/channels", json={}), 201)
    key = api.ok(
        api.http.post(
            f"agents/{agent['id']}/keys", json={"name": "app", "permissions": ["end_user"]}
        ),
        201,
    )
    assert key["key"].startswith("evr_ak_") and channel["id"].startswith("apichan_")
    return agent["id"], channel["id"], key["key"]


async def follow(stream: EventStream, until: Callable[[Event], bool]) -> list[Event]:
    """The stream's events up to the first that ``until`` accepts (within a minute); the stream
    and its connection are closed after."""
    seen: list[Event] = []
    events = stream.__aiter__()
    try:
        async with asyncio.timeout(60):
            async for event in events:
                seen.append(event)
                if until(event):
                    break
    finally:
        stream.stop()
        await events.aclose()
        await stream.aclose()
    return seen


async def test_every_agent_client_method_against_a_real_server(server: Server, api: Api) -> None:
    agent_id, channel_id, key = await asyncio.to_thread(
        _agent_with_channel,
        api,
        {"response": {"type": "fixed", "text": "Order 42 ships today."}, "latency_ms": 20},
    )
    url = f"{server.api_url}/v1/channels/{channel_id}"
    async with AgentClient(agent_url=url, credential=key) as agent:
        card = await agent.card()
        assert card["id"] == channel_id and card["agent_id"] == agent_id
        assert card["name"] == "support" and "text" in card["accepted_input"]["content_types"]
        assert "agent_key" in card["credentials"]

        # run: a session, a message, the stream until the turn completes, the reply.
        reply = await agent.run("What is the status of order 42?")
        assert reply == "Order 42 ships today."

        # create_session with an idempotency key, retried: one session.
        first = await agent.create_session("Order 7", idempotency_key="create-order-7")
        again = await agent.create_session("Order 7", idempotency_key="create-order-7")
        assert again["id"] == first["id"] and first["title"] == "Order 7"
        assert first["agent_id"] == agent_id and first["owner"]["kind"] == "agent_key"
        session_id = first["id"]

        got = await agent.get_session(session_id)
        assert got["id"] == session_id and got["pending_questions"] == []

        # send_message, retried with its idempotency key: posted once.
        sent = await agent.send_message(session_id, "and order 7?", idempotency_key="msg-1")
        resent = await agent.send_message(session_id, "and order 7?", idempotency_key="msg-1")
        assert resent["id"] == sent["id"] and sent["role"] == "user"

        # stream_events replays from the start and follows live until the turn completes.
        seen = await follow(
            agent.stream_events(session_id, after_sequence=0),
            lambda e: e.type == "turn.completed",
        )
        types = [e.type for e in seen]
        assert types[0] == "session.started" and types.count("input.message") == 1
        assert "output.message.completed" in types

        # list_events pages forward by sequence and sees the same log.
        events = await agent.list_events(session_id, limit=2)
        assert [e.sequence for e in events] == [seen[0].sequence, seen[1].sequence]
        rest = await agent.list_events(session_id, after_sequence=events[-1].sequence)
        assert [e.id for e in events + rest][: len(seen)] == [e.id for e in seen]

        # stream_events resumes after an event id without repeating it.
        resumed = await follow(agent.stream_events(session_id, since_id=seen[1].id), bool)
        assert [e.id for e in resumed] == [seen[2].id]

        # list_sessions pages most recently active first, with next_page_token.
        page = await agent.list_sessions(limit=1)
        assert [s["id"] for s in page["data"]] == [session_id]
        assert page["next_page_token"]
        rest_page = await agent.list_sessions(limit=5, page_token=page["next_page_token"])
        assert len(rest_page["data"]) == 1 and rest_page["next_page_token"] is None
        assert rest_page["data"][0]["id"] != session_id

        # cancel: nothing runs now, then a running turn is cancelled.
        assert (await agent.cancel(session_id))["status"] == "no_op"

        # for_end_user: sessions of their own, unseen by the key and by each other.
        alice = agent.for_end_user("customer-42")
        bob = agent.for_end_user("customer-43")
        alices = await alice.create_session("Alice's")
        assert alices["end_user"] == "customer-42" and alices["owner"]["kind"] == "end_user"
        assert [s["id"] for s in (await alice.list_sessions())["data"]] == [alices["id"]]
        assert (await bob.list_sessions())["data"] == []
        with pytest.raises(ApiError) as hidden:
            await bob.get_session(alices["id"])
        assert hidden.value.status_code == 404
        assert alices["id"] not in [s["id"] for s in (await agent.list_sessions())["data"]]
        assert await alice.run("Where is my order?", session_id=alices["id"]) == (
            "Order 42 ships today."
        )

        # runtime_token: a token for Alice's browser, on this channel, as Alice.
        minted = await alice.runtime_token()
        assert minted["token_type"] == "Bearer" and minted["expires_in"] > 0
        assert minted["access_token"].startswith("evr_rt_") and minted["virtual_user_id"]
        async with AgentClient(agent_url=url, credential=minted["access_token"]) as browser:
            mine = await browser.list_sessions()
            assert [s["id"] for s in mine["data"]] == [alices["id"]]
            assert (await browser.get_session(alices["id"]))["end_user"] == "customer-42"
            with pytest.raises(ApiError) as not_bobs:
                await browser.get_session(session_id)
            assert not_bobs.value.status_code == 404


async def test_cancel_stops_a_running_turn(server: Server, api: Api) -> None:
    _agent, channel_id, key = await asyncio.to_thread(
        _agent_with_channel,
        api,
        {"response": {"type": "fixed", "text": "slow"}, "latency_ms": 30_000},
    )
    url = f"{server.api_url}/v1/channels/{channel_id}"
    async with AgentClient(agent_url=url, credential=key) as agent:
        session = await agent.create_session()
        await agent.send_message(session["id"], "take your time")
        cancelled = await agent.cancel(session["id"])
        assert cancelled["status"] == "cancelled" and cancelled["turn_id"]
        seen = await follow(
            agent.stream_events(session["id"], after_sequence=0),
            lambda e: e.type in ("turn.completed", "turn.failed", "turn.cancelled"),
        )
        assert seen[-1].type == "turn.cancelled"


def _hitl_agent(api: Api) -> tuple[str, str]:
    """An agent that asks questions (``ask_user``) and whose ``kv_set`` waits for approval,
    with a channel and an agent key: (channel id, key)."""
    model_id = api.llmsim_model(
        {
            "response": {"type": "echo"},
            "tool_calls": [
                {
                    "when": "plan",
                    "name": "ask_user",
                    "arguments": {"questions": [{"id": "colour", "question": "Which colour?"}]},
                },
                {"when": "save", "name": "kv_set", "arguments": {"key": "k", "value": "v"}},
            ],
        }
    )
    agent = api.ok(
        api.http.post(
            "agents",
            json={
                "name": "careful",
                "system_prompt": "You ask before you act.",
                "default_model_id": model_id,
                "capabilities": [
                    {"ref": "ask_user"},
                    {"ref": "key_value"},
                    {"ref": "tool_approval", "config": {"tools": ["kv_set"]}},
                ],
            },
        ),
        201,
    )
    channel = api.ok(api.http.post(f"agents/{agent['id']}/channels", json={}), 201)
    key = api.ok(api.http.post(f"agents/{agent['id']}/keys", json={"name": "app"}), 201)
    return channel["id"], key["key"]


async def test_questions_and_approvals_through_the_agent_client(server: Server, api: Api) -> None:
    """``answer_questions`` and ``submit_tool_approvals``: the agent asks, the application
    answers; a held-back call is approved once and runs; another is denied and the model sees
    the reason."""
    channel_id, key = await asyncio.to_thread(_hitl_agent, api)
    url = f"{server.api_url}/v1/channels/{channel_id}"
    async with AgentClient(agent_url=url, credential=key) as agent:
        session_id = (await agent.create_session("careful"))["id"]
        await agent.send_message(session_id, "plan the colour")
        await follow(
            agent.stream_events(session_id, after_sequence=0),
            lambda e: e.type == "tool.call_requested",
        )
        waiting = await agent.get_session(session_id)
        (asked,) = waiting["pending_questions"]
        assert asked["questions"][0]["question"] == "Which colour?"
        answered = await agent.answer_questions(
            session_id,
            {
                "tool_call_id": asked["tool_call_id"],
                "answers": [{"question_id": "colour", "answer": "teal"}],
            },
        )
        assert answered["accepted"] == 1
        seen = await follow(
            agent.stream_events(session_id, after_sequence=0),
            lambda e: e.type == "turn.completed",
        )
        final = [e for e in seen if e.type == "output.message.completed"][-1]
        assert "teal" in str(final.data)

        for approve, expected in ((True, '"created":true'), (False, "not now")):
            last = (await agent.list_events(session_id))[-1].sequence
            await agent.send_message(session_id, "save it")
            await follow(
                agent.stream_events(session_id, after_sequence=last),
                lambda e: e.type == "tool.approval_requested",
            )
            (held,) = (await agent.get_session(session_id))["pending_approvals"]
            assert held["tool_name"] == "kv_set"
            decision = {"tool_call_id": held["tool_call_id"], "approved": approve}
            if not approve:
                decision["reason"] = "not now"
            decided = await agent.submit_tool_approvals(session_id, {"decisions": [decision]})
            assert decided["accepted"] == 1
            with pytest.raises(ApiError) as twice:
                await agent.submit_tool_approvals(session_id, {"decisions": [decision]})
            assert twice.value.status_code == 409
            seen = await follow(
                agent.stream_events(session_id, after_sequence=last),
                lambda e: e.type == "turn.completed",
            )
            done = [e.data for e in seen if e.type == "tool.completed"]
            assert len(done) == 1 and expected in str(done[0])
