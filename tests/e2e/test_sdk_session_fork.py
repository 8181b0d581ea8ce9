"""Session export and fork against a real ``everloop serve``, read with the published
``everruns-sdk`` (``sessions.export`` reads the JSON lines as text; ``Session`` reads a fork's
lineage fields)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from everruns_sdk import Everruns
from everruns_sdk.errors import ApiError
from everruns_sdk.models import Session

from tests.e2e.conftest import Api, Server, wait_for

pytestmark = pytest.mark.slow

REPLIES = {"response": {"type": "sequence", "texts": ["one", "two", "three"]}}


def turns_ended(api: Api, session_id: str, count: int) -> list[dict[str, Any]]:
    """The session's log once ``count`` of its turns have completed."""

    def ended() -> list[dict[str, Any]] | None:
        found = api.events(session_id)
        return found if sum(e["type"] == "turn.completed" for e in found) >= count else None

    result: list[dict[str, Any]] = wait_for(ended, timeout=60, what=f"{count} turns")
    return result


async def test_export_and_fork_through_the_sdk(server: Server, api: Api) -> None:
    model_id = await asyncio.to_thread(api.llmsim_model, REPLIES)
    session_id = await asyncio.to_thread(api.create_session, model_id, title="SDK fork")
    await asyncio.to_thread(api.post_message, session_id, "first")
    await asyncio.to_thread(turns_ended, api, session_id, 1)
    await asyncio.to_thread(api.post_message, session_id, "second")
    found = await asyncio.to_thread(turns_ended, api, session_id, 2)

    client = Everruns(api_key=server.token, base_url=server.api_url)
    try:
        text = await client.sessions.export(session_id)
        records = [json.loads(line) for line in text.splitlines()]
        assert [r["kind"] for r in records] == ["session"] + ["message"] * 4 + ["event"] * len(
            found
        )
        assert Session(**records[0]["data"]).id == session_id
        sdk_messages = await client.messages.list(session_id)
        assert [r["data"]["id"] for r in records if r["kind"] == "message"] == [
            m.id for m in sdk_messages
        ]
        assert [r["data"]["sequence"] for r in records if r["kind"] == "event"] == [
            e["sequence"] for e in found
        ]

        # The SDK has no fork call: POST it, then read the fork with the SDK.
        async with httpx.AsyncClient(
            base_url=f"{server.api_url}/v1/", headers=server.headers, timeout=30.0
        ) as raw:
            forked = await raw.post(f"sessions/{session_id}/fork")
            assert forked.status_code == 201, forked.text
        fork = await client.sessions.get(forked.json()["id"])
        assert fork.forked_from_session_id == session_id
        assert fork.forked_from_sequence == found[-1]["sequence"]
        assert fork.title == "SDK fork (fork)" and fork.status == "idle"
        assert [m.id for m in await client.messages.list(fork.id)] == [m.id for m in sdk_messages]
        fork_export = [
            json.loads(line) for line in (await client.sessions.export(fork.id)).splitlines()
        ]
        assert fork_export[0]["data"]["forked_from_session_id"] == session_id

        other = await client.sessions.get(session_id)
        assert other.forked_from_session_id is None
        with pytest.raises(ApiError):
            await client.sessions.export("session_" + "0" * 32)
    finally:
        await client.close()
