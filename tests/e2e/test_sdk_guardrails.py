"""The published ``everruns-sdk`` against a real ``everloop serve`` (issue 21): the guardrails
gallery and dry run parsed by the SDK's own models, and a guarded agent's answer as an SSE client
sees it: the blocked word in no event, ``output.message.replaced`` before the stored message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from everruns_sdk import Everruns
from everruns_sdk.models import AgentCapabilityConfig

from tests.e2e.conftest import Api, Server

pytestmark = pytest.mark.slow

ANSWER = "Short answer: the deploy went fine, but darn, the cache was cold again."


async def _until_turn_ends(client: Any, session_id: str) -> list[Any]:
    seen: list[Any] = []
    stream = client.events.stream(session_id)
    try:
        async for event in stream:
            seen.append(event)
            if event.type in {"turn.completed", "turn.failed", "turn.cancelled", "turn.sealed"}:
                return seen
    finally:
        await stream.aclose()  # its own HTTP client: closed here, not by the GC later
    raise AssertionError("the stream ended before the turn did")


async def test_the_sdk_reads_the_gallery_the_dry_run_and_a_replaced_answer(
    server: Server, api: Api
) -> None:
    client = Everruns(api_key=server.token, base_url=server.api_url)
    try:
        gallery = await client.capabilities.list_guardrail_examples()
        profanity = next(e for e in gallery.examples if e.name == "profanity")
        assert profanity.check_types == ["blocklist"] and profanity.stages == ["output"]
        run = await client.capabilities.dry_run_guardrails(profanity.config, "output", ANSWER)
        assert run.blocked and [h.matched for h in run.hits] == ["darn"]
        assert run.hits[0].reason_code == "guardrail.blocklist"
        clean = await client.capabilities.dry_run_guardrails(
            profanity.config, "tool_use", "{}", tool_name="bash"
        )
        assert not clean.blocked and clean.hits == []

        script = {"response": {"type": "fixed", "text": ANSWER}, "chunk_chars": 5}
        model_id = await asyncio.to_thread(api.llmsim_model, script)
        agent = await client.agents.create(
            "guarded",
            "Answer briefly.",
            default_model_id=model_id,
            capabilities=[AgentCapabilityConfig(ref="guardrails", config=profanity.config)],
        )
        session = await client.sessions.create(agent_id=agent.id)
        streamed = asyncio.create_task(_until_turn_ends(client, session.id))
        await client.messages.create(session.id, "how did the deploy go?")
        events = await asyncio.wait_for(streamed, 60)
        types = [e.type for e in events]
        assert types[-1] == "turn.completed"
        assert "darn" not in str([e.data for e in events])
        replacement = profanity.config["checks"][0]["replacement"]
        replaced = types.index("output.message.replaced")
        assert replaced < types.index("output.message.completed")
        assert events[replaced].data["replacement"] == replacement
        deltas = "".join(e.data["delta"] for e in events if e.type == "output.message.delta")
        assert ANSWER.startswith(deltas)
        completed = next(e for e in events if e.type == "output.message.completed")
        assert completed.data["message"]["content"][0]["text"] == replacement
    finally:
        await client.close()
